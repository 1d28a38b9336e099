#!/bin/sh
# test/b2mml_validate.sh FILE - used by sql/b2mml_*.sql through psql's \!
#
# Prints the B2MML document in FILE (identifiers that differ from run to run
# masked: BODID's database tag, endpoint and event ids) and validates it with
# xmllint --schema against the wrapper schema mfgsync-b2mml-V0600.xsd.  The
# last line is "valid" or "INVALID" with xmllint's errors, so an invalid
# document fails the regression test.  The schema is the copy of MESA's in
# test/b2mml/xsd/ (or $MFGSYNC_B2MML_XSD).
f=$1
xsd=${MFGSYNC_B2MML_XSD:-$(dirname "$0")/b2mml/xsd/mfgsync-b2mml-V0600.xsd}
if [ ! -s "$f" ]; then
    echo "INVALID: no document"
    exit 0
fi
sed -e 's/<BODID>[0-9a-f]\{8\}-\([0-9a-f]\{4\}-\)\{3\}[0-9a-f]\{12\}<\/BODID>/<BODID>(uuid)<\/BODID>/' \
    -e 's/mfgsync-[0-9]*-[0-9]*</mfgsync-(endpoint)-(event)</' "$f"
if [ ! -f "$xsd" ]; then
    echo "INVALID: schema mfgsync-b2mml-V0600.xsd not found at $xsd"
    exit 0
fi
if out=$(xmllint --noout --schema "$xsd" "$f" 2>&1); then
    echo "valid"
else
    echo "INVALID:"
    echo "$out" | grep -v 'Schemas parser warning\|Skipping import of schema'
fi
rm -f "$f"     # a later render that fails must not validate this one again
