#!/bin/sh
# mkcert.sh DIR - write a self-signed, CA-style certificate (CN=127.0.0.1,
# subjectAltName IP:127.0.0.1 and DNS:localhost, EC P-256, 10 years) to
# DIR/cert.pem and its private key to DIR/key.pem, using the openssl CLI.
# The certificate is its own trust anchor: verify with ca_file=DIR/cert.pem
# (curl --cacert DIR/cert.pem).
set -eu
if [ "$#" -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
umask 077
if ! openssl req -x509 -new -nodes -sha256 -days 3650 \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" \
    -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -addext "keyUsage=critical,digitalSignature,keyCertSign" \
    -addext "extendedKeyUsage=serverAuth" 2>"$dir/openssl.err"; then
    cat "$dir/openssl.err" >&2
    exit 1
fi
rm -f "$dir/openssl.err"
chmod 0644 "$dir/cert.pem.tmp"
mv -f "$dir/key.pem.tmp" "$dir/key.pem"
mv -f "$dir/cert.pem.tmp" "$dir/cert.pem"
