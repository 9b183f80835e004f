#!/bin/sh
# A private certificate authority and a server certificate for the broker, with the names clients use
# to reach it in subjectAltName (host names and IP addresses; clients check them).
#   ./make-certs.sh [-d DIR] NAME [NAME|IP...]      e.g. ./make-certs.sh broker.local 10.0.0.5
# DIR defaults to /etc/mosquitto/certs. An existing CA there is reused, so devices that trust it keep
# working; the server key and certificate are made anew. Copy DIR/ca.crt (never ca.key) to each device
# as broker.tls.ca_file (/etc/edge-vad/ca.crt in the shipped device.yaml).
set -eu
DIR=/etc/mosquitto/certs
DAYS=825
if [ "${1:-}" = "-d" ]; then
    [ $# -ge 2 ] || { echo "usage: $0 [-d DIR] NAME [NAME|IP...]" >&2; exit 2; }
    DIR=$2
    shift 2
fi
[ $# -ge 1 ] || { echo "usage: $0 [-d DIR] NAME [NAME|IP...]" >&2; exit 2; }
SAN=""
for name in "$@"; do
    case $name in
        *[!A-Za-z0-9.:-]*|'') echo "$0: '$name' is not a host name or IP address" >&2; exit 2 ;;
    esac
    if printf '%s' "$name" | grep -Eq '^[0-9.]+$|:'; then entry="IP:$name"; else entry="DNS:$name"; fi
    SAN="${SAN:+$SAN,}$entry"
done
umask 077
mkdir -p "$DIR"
chmod 0755 "$DIR"  # mosquitto (its own user) must reach server.crt and server.key
if [ ! -f "$DIR/ca.key" ]; then
    openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 -subj "/CN=edge-vad private CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
fi
EXT=$(mktemp)
trap 'rm -f "$EXT" "$DIR/server.csr"' EXIT
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    "$SAN" > "$EXT"
openssl req -newkey rsa:3072 -sha256 -nodes -subj "/CN=$1" -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
openssl x509 -req -sha256 -days "$DAYS" -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
    -CAcreateserial -extfile "$EXT" -out "$DIR/server.crt" 2>/dev/null
chmod 0644 "$DIR/ca.crt" "$DIR/server.crt"
chmod 0640 "$DIR/server.key"
chown root:mosquitto "$DIR/server.key" 2>/dev/null || true
echo "$DIR: ca.crt (give to devices), server.crt and server.key (mosquitto) for $SAN"
