#!/bin/sh
# Regenerates the OpenSSL-made EF.SOD used by lds::sod's tests: an independent encoder of CMS
# SignedData (OpenSSL) around an LDSSecurityObject written with `openssl asn1parse -genconf`,
# signed by a throwaway brainpoolP256r1 Document Signer. Run from this directory.
set -eu
# DG1: ICAO 9303-5's TD1 example MRZ in 61 { 5F1F }.
printf '\x61\x5d\x5f\x1f\x5a%s' 'I<UTOD231458907<<<<<<<<<<<<<<<7408122F1204159UTO<<<<<<<<<<<6ERIKSSON<<ANNA<MARIA<<<<<<<<<<' > dg1.bin
# DG15: any bytes will do for the hash.
printf '\x6f\x03\x05\x01\x00' > dg15.bin
h1=$(openssl dgst -sha256 -r dg1.bin | cut -d' ' -f1)
h15=$(openssl dgst -sha256 -r dg15.bin | cut -d' ' -f1)
cat > lso.cnf <<CNF
asn1=SEQUENCE:lso
[lso]
version=INTEGER:0
alg=SEQUENCE:alg
hashes=SEQUENCE:hashes
[alg]
oid=OID:sha256
[hashes]
a=SEQUENCE:dg1
b=SEQUENCE:dg15
[dg1]
n=INTEGER:1
h=FORMAT:HEX,OCTETSTRING:$h1
[dg15]
n=INTEGER:15
h=FORMAT:HEX,OCTETSTRING:$h15
CNF
openssl asn1parse -genconf lso.cnf -out lso.der -noout
rm lso.cnf
openssl ecparam -name brainpoolP256r1 -genkey -noout -out ds.key
openssl req -new -x509 -key ds.key -subj "/C=VN/O=Test only/CN=Test Document Signer" -days 3650 -out ds.pem
openssl x509 -in ds.pem -outform DER -out ds.der
openssl cms -sign -in lso.der -binary -nodetach -econtent_type 2.23.136.1.1.1 -signer ds.pem \
  -inkey ds.key -md sha256 -outform DER -out content_info.der
openssl x509 -in ds.pem -pubkey -noout > ds_pub.pem
rm ds.key ds.pem
python3 - <<'PY'
ci = open('content_info.der', 'rb').read()
n = len(ci)
length = bytes([n]) if n < 0x80 else bytes([0x82, n >> 8, n & 0xFF])
open('sod.bin', 'wb').write(b'\x77' + length + ci)
PY
rm content_info.der
