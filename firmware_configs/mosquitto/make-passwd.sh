#!/bin/sh
# Create or update the mosquitto password file: ./make-passwd.sh DEVICE_ID [more users...]
set -eu
PASSWD=/etc/mosquitto/passwd
for user in "$@"; do
    if [ -f "$PASSWD" ]; then mosquitto_passwd "$PASSWD" "$user"; else mosquitto_passwd -c "$PASSWD" "$user"; fi
done
chown mosquitto:mosquitto "$PASSWD" 2>/dev/null || true
chmod 0640 "$PASSWD"
