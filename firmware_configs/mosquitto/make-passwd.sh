#!/bin/sh
# Create or update the mosquitto password file, one user per device (the user name is the device_id):
#   ./make-passwd.sh [-f PASSWD_FILE] USER [USER...]
# mosquitto_passwd asks for each password (twice); piped in on stdin works too. Passwords never go on a
# command line, where any local user could read them in the process list.
set -eu
PASSWD=/etc/mosquitto/passwd
if [ "${1:-}" = "-f" ]; then
    [ $# -ge 2 ] || { echo "usage: $0 [-f PASSWD_FILE] USER [USER...]" >&2; exit 2; }
    PASSWD=$2
    shift 2
fi
[ $# -ge 1 ] || { echo "usage: $0 [-f PASSWD_FILE] USER [USER...]" >&2; exit 2; }
for user in "$@"; do
    case $user in
        *[!A-Za-z0-9_.-]*|'') echo "$0: user name '$user': letters, digits, '_', '-' or '.' only" >&2; exit 2 ;;
    esac
done
umask 077
for user in "$@"; do
    if [ -f "$PASSWD" ]; then mosquitto_passwd "$PASSWD" "$user"; else mosquitto_passwd -c "$PASSWD" "$user"; fi
done
chown mosquitto:mosquitto "$PASSWD" 2>/dev/null || true
chmod 0640 "$PASSWD"
