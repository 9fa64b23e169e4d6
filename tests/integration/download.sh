#!/bin/bash
# Images the way users have them: an http:// URL (downloaded into the cache, resumed after a
# dropped connection with a Range request only when the server answers 206 from where it
# stopped, revalidated with If-None-Match) or standard input, and --sha256 checked before
# anything is written. Served by tests/integration/httpd.py (python's http.server does no
# ranges), whose request log says what piflash asked for. Every output is compared with cmp
# to the one made from the same image as a local file.
. "$(dirname "$0")/lib.sh"
need sfdisk jq xz cmp sha256sum python3 mtype
export SOURCE_DATE_EPOCH=1700000000 PIFLASH_INSTANCE_ID_SEED=download-test-seed

IMG=$WORK/hypriot.img
build_image hypriot "$IMG" --size 128 --fill 4
mkdir "$WORK/www"
xz -0 -T1 -c "$IMG" >"$WORK/www/h.img.xz"
for n in drop norange wrong batch; do cp "$WORK/www/h.img.xz" "$WORK/www/$n.img.xz"; done
SHA=$(sha256 "$WORK/www/h.img.xz")
ZERO=0000000000000000000000000000000000000000000000000000000000000000
CACHE=$XDG_CACHE_HOME/piflash
LOG=$WORK/httpd.log
: >"$LOG"

python3 "$SOURCE_ROOT/tests/integration/httpd.py" "$WORK/www" "$WORK/port" "$LOG" &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || fail "httpd.py did not start"
URL=http://127.0.0.1:$(cat "$WORK/port")

NODE=(--node worker3 --no-login --ip 10.0.0.13/24 --gateway 10.0.0.1)
# requests PATH: the log lines of PATH, "range=... status=..." each.
requests() {
	grep " /$1 " "$LOG" | cut -d' ' -f3-4 | tr '\n' ';'
}

# The reference: the same .xz as a local file.
"$PIFLASH" -q "${NODE[@]}" "$WORK/www/h.img.xz" "$WORK/ref.img"
"$PIFLASH" inspect --json "$WORK/www/h.img.xz" | jq -S 'del(.image, .source.cache)' >"$WORK/ref.json"

# A URL: downloaded, then the same image as from the file.
"$PIFLASH" -q "${NODE[@]}" "$URL/h.img.xz" "$WORK/url.img"
cmp "$WORK/ref.img" "$WORK/url.img" || fail "the image from the URL differs from the file's"
pass "main job from $URL/h.img.xz = from the file (cmp)"
assert_eq "one GET, whole file" "range=- status=200;" "$(requests h.img.xz)"
"$PIFLASH" inspect --json "$URL/h.img.xz" | jq -S 'del(.image, .source.cache)' >"$WORK/url.json"
cmp "$WORK/ref.json" "$WORK/url.json" || fail "inspect --json of the URL differs"
pass "inspect --json of the URL = of the file"
assert_eq "second run revalidates: 304, nothing sent" "range=- status=200;range=- status=304;" \
	"$(requests h.img.xz)"
"$PIFLASH" plan "${NODE[@]}" "$URL/h.img.xz" >/dev/null
"$PIFLASH" ls "$URL/h.img.xz" root:/etc >/dev/null
assert_eq "cat through the URL" "black-pearl" "$("$PIFLASH" cat "$URL/h.img.xz" root:/etc/hostname)"
"$PIFLASH" verify -q "${NODE[@]}" "$URL/h.img.xz" "$WORK/url.img"
pass "plan, ls, cat, verify take the URL"
: >"$LOG"
"$PIFLASH" cat --sha256 "$SHA" "$URL/h.img.xz" root:/etc/hostname >/dev/null
assert_eq "--sha256 matching the recorded download: the server is not asked" "" \
	"$(requests h.img.xz)"
assert_eq "cache: the download and its image, both from the URL" "2" \
	"$("$PIFLASH" cache | grep -c "from $URL/h.img.xz, used")"

# --sha256 before anything is written: a file, a URL, standard input.
expect_fail 1 "SHA-256 mismatch: expected $ZERO, got $SHA" \
	"$PIFLASH" "${NODE[@]}" --sha256 "$ZERO" "$WORK/www/h.img.xz" "$WORK/bad.img"
[ ! -e "$WORK/bad.img" ] || fail "an output was written despite the mismatch"
expect_fail 1 "SHA-256 mismatch: expected $ZERO, got $SHA" \
	"$PIFLASH" inspect --sha256 "$ZERO" - <"$WORK/www/h.img.xz"
expect_fail 2 "--sha256 'abc': expected 64 hexadecimal digits" "$PIFLASH" ls --sha256 abc "$URL/h.img.xz" /
"$PIFLASH" -q "${NODE[@]}" --sha256 "${SHA^^}" "$WORK/www/h.img.xz" "$WORK/ok.img"
pass "--sha256 in upper case matches"

# A fresh download that does not match is not kept.
rm -rf "$CACHE"
expect_fail 1 "SHA-256 mismatch: expected $ZERO, downloaded $SHA" \
	"$PIFLASH" inspect --sha256 "$ZERO" "$URL/h.img.xz"
assert_eq "nothing left in the cache after a mismatch" "" "$(cache_files)"

# Standard input: copied once, cached by its content.
"$PIFLASH" -q "${NODE[@]}" - "$WORK/stdin.img" <"$WORK/www/h.img.xz"
cmp "$WORK/ref.img" "$WORK/stdin.img" || fail "the image from standard input differs"
pass "main job from standard input = from the file (cmp)"
n=$(cache_files | wc -l)
"$PIFLASH" -q "${NODE[@]}" --sha256 "$SHA" - "$WORK/stdin2.img" <"$WORK/www/h.img.xz"
cmp "$WORK/ref.img" "$WORK/stdin2.img" || fail "second standard input run differs"
assert_eq "standard input again: the entry is reused" "$n" "$(cache_files | wc -l)"
"$PIFLASH" -q "${NODE[@]}" - "$WORK/raw.img" <"$IMG"
cmp "$WORK/ref.img" "$WORK/raw.img" || fail "a raw image on standard input differs"
pass "a raw image on standard input"
expect_fail 1 "standard input is a terminal|is empty" "$PIFLASH" inspect - </dev/null

# Resume: the first GET is cut off halfway, the next run asks for the rest.
echo drop-once >"$WORK/www/.mode"
expect_fail 1 "download stopped after [0-9]+ bytes.*run again to resume" \
	"$PIFLASH" -q "${NODE[@]}" "$URL/drop.img.xz" "$WORK/drop.img"
[ ! -e "$WORK/drop.img" ] || fail "an output was written after the failed download"
ls "$CACHE"/*.download.partial >/dev/null 2>&1 || fail "no partial download was kept"
half=$(stat -c %s "$CACHE"/*.download.partial)
ls "$CACHE" | grep -q '\.download$' && fail "the interrupted download looks complete"
"$PIFLASH" cache | grep -q "drop.img.xz" && fail "piflash cache lists the partial download"
pass "interrupted download: a partial file, no entry ($half bytes kept)"
"$PIFLASH" -q "${NODE[@]}" "$URL/drop.img.xz" "$WORK/drop.img"
cmp "$WORK/ref.img" "$WORK/drop.img" || fail "the resumed download gives another image"
assert_eq "resumed with a Range request, answered 206" \
	"range=- status=0;range=bytes=$half- status=206;" "$(requests drop.img.xz)"
ls "$CACHE"/*.partial >/dev/null 2>&1 && fail "a partial file is left after the download"
pass "no partial file left"

# A server that ignores the range: the download starts over (200), still the right image.
expect_fail 1 "download stopped" "$PIFLASH" inspect "$URL/norange.img.xz"
echo no-range >"$WORK/www/.mode"
"$PIFLASH" -q "${NODE[@]}" "$URL/norange.img.xz" "$WORK/norange.img"
cmp "$WORK/ref.img" "$WORK/norange.img" || fail "restarted download gives another image"
assert_eq "range ignored: whole file again" "range=- status=0;range=bytes=$half- status=200;" \
	"$(requests norange.img.xz)"

# A server answering the range with other bytes (206 from 0): not appended, started over.
echo drop-once >"$WORK/www/.mode"
expect_fail 1 "download stopped" "$PIFLASH" inspect "$URL/wrong.img.xz"
echo wrong-range >"$WORK/www/.mode"
"$PIFLASH" -q "${NODE[@]}" "$URL/wrong.img.xz" "$WORK/wrong.img"
cmp "$WORK/ref.img" "$WORK/wrong.img" || fail "a wrong 206 was appended"
assert_eq "wrong 206 refused, whole file fetched" \
	"range=- status=0;range=bytes=$half- status=206;range=- status=200;" \
	"$(requests wrong.img.xz)"
echo normal >"$WORK/www/.mode"

# Errors name the URL and the status; nothing is left behind.
expect_fail 1 "'$URL/missing.img.xz': HTTP 404" "$PIFLASH" inspect "$URL/missing.img.xz"
ls "$CACHE" | grep -q partial && fail "a 404 left a partial file"
expect_fail 1 "'http://127.0.0.1:1/x.img': download stopped after 0 bytes" \
	"$PIFLASH" inspect "http://127.0.0.1:1/x.img"

# batch from a URL: the same artifact as from the file.
printf 'hostname,ip\nworker3,10.0.0.13/24\n' >"$WORK/c.csv"
expect_fail 1 "SHA-256 mismatch: expected $ZERO, downloaded $SHA" \
	"$PIFLASH" batch --inventory "$WORK/c.csv" --out-dir "$WORK/nope" --sha256 "$ZERO" "$URL/batch.img.xz"
[ ! -e "$WORK/nope/worker3.img" ] || fail "batch wrote an artifact despite the mismatch"
"$PIFLASH" batch -q --inventory "$WORK/c.csv" --no-login --gateway 10.0.0.1 --out-dir "$WORK/b1" "$WORK/www/h.img.xz"
"$PIFLASH" batch -q --inventory "$WORK/c.csv" --no-login --gateway 10.0.0.1 --out-dir "$WORK/b2" \
	--sha256 "$SHA" "$URL/batch.img.xz"
cmp "$WORK/b1/worker3.img" "$WORK/b2/worker3.img" || fail "batch from the URL differs"
pass "batch from a URL = from the file"
"$PIFLASH" --no-cache -q "${NODE[@]}" "$URL/h.img.xz" "$WORK/nocache.img"
cmp "$WORK/ref.img" "$WORK/nocache.img" || fail "--no-cache download differs"
pass "--no-cache download"

finish
