#!/bin/sh
# Check proctor evidence with nothing but POSIX tools and openssl (the steps of AUDITORS.md).
#   verify_with_openssl.sh PUBLIC_KEY.pem CERT.cal [PREVIOUS_CERT.cal]
#   verify_with_openssl.sh PUBLIC_KEY.pem --log-line N audit.jsonl
# Exit 0 when every check passes.
set -eu
key=$1; shift
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# The key's fingerprint, as certificates and checkpoints name it.
fp=$(openssl pkey -pubin -in "$key" -outform DER | sha256sum | cut -d' ' -f1)

# A canonical JSON object with one member removed is still canonical, so the signed bytes are
# the line with its "signature" member (and for log lines its "hash_self" member) cut out.
check_signed() { # FILE_WITH_ONE_JSON_LINE
    grep -q "\"key_fingerprint\":\"$fp\"" "$1" || { echo "signed by another key than $fp"; exit 1; }
    grep -o '"signature":"[A-Za-z0-9+/=]*"' "$1" | cut -d'"' -f4 | base64 -d > "$work/sig"
    sed -e 's/"signature":"[A-Za-z0-9+\/=]*",//' -e 's/,"hash_self":"[0-9a-f]*"//' "$1" > "$work/signed"
    openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$work/signed" -sigfile "$work/sig"
}

if [ "$1" = --log-line ]; then
    n=$2; log=$3
    sed -n "${n}p" "$log" | tr -d '\n' > "$work/line"
    # hash_self is the SHA-256 of the line without it.
    want=$(grep -o '"hash_self":"[0-9a-f]*"' "$work/line" | cut -d'"' -f4)
    got=$(sed 's/,"hash_self":"[0-9a-f]*"//' "$work/line" | tr -d '\n' | sha256sum | cut -d' ' -f1)
    [ "$want" = "$got" ] || { echo "line $n: hash_self mismatch"; exit 1; }
    echo "line $n: hash_self OK"
    if grep -q '"type":"checkpoint"' "$work/line"; then check_signed "$work/line"; fi
    exit 0
fi

cert=$1
head -c -1 "$cert" > "$work/cert"   # the file is one line of canonical JSON and a newline
check_signed "$work/cert"
if [ $# -ge 2 ]; then
    prev=$(sha256sum "$2" | cut -d' ' -f1)
    grep -q "\"prev_sha256\":\"$prev\"" "$cert" || { echo "prev_sha256 does not match $2"; exit 1; }
    echo "follows $2"
fi
