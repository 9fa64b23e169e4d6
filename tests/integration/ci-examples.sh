#!/bin/bash
# The CI examples run as they stand: examples/github-actions.yml and examples/gitlab-ci.yml
# parse (python3-yaml), quote the same piflash commands as the README, mark their artifacts
# as secret-bearing (tests/integration/ci-examples.py), and their batch command — run for two
# shards against a local server, as two runners would — and each file's join script give the
# same SHA256SUMS as one run over every node.
. "$(dirname "$0")/lib.sh"
need jq zip sha256sum cmp zstd
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import yaml' 2>/dev/null ||
	skip "Debian's python3-yaml is not installed (apt-get install python3-yaml)"
export SOURCE_DATE_EPOCH=1700000000 PIFLASH_INSTANCE_ID_SEED=ci-examples-seed

/usr/bin/python3 "$SOURCE_ROOT/tests/integration/ci-examples.py" "$SOURCE_ROOT" "$WORK" ||
	fail "the CI examples do not check out"
pass "both YAML files parse; their piflash commands are the README's; artifacts marked secret"
. "$WORK/vars.sh"
case "$IMAGE_URL_EXAMPLE" in
https://*.zip) pass "the example downloads a real .zip over https" ;;
*) fail "IMAGE_URL is '$IMAGE_URL_EXAMPLE'" ;;
esac

# The runners' view: a checkout with build/piflash and examples/cluster.csv.
mkdir -p "$WORK/www" "$WORK/co/build" "$WORK/co/examples"
ln -s "$PIFLASH" "$WORK/co/build/piflash"
cp "$SOURCE_ROOT/examples/cluster.csv" "$SOURCE_ROOT/examples/operator.pub" "$WORK/co/examples/"
build_image hypriot "$WORK/hypriotos.img" --size 128
(cd "$WORK" && zip -q -1 www/hypriotos.img.zip hypriotos.img)
python3 "$SOURCE_ROOT/tests/integration/httpd.py" "$WORK/www" "$WORK/port" "$WORK/httpd.log" &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || fail "httpd.py did not start"
export IMAGE_URL=http://127.0.0.1:$(cat "$WORK/port")/hypriotos.img.zip
export IMAGE_SHA256
IMAGE_SHA256=$(sha256 "$WORK/www/hypriotos.img.zip")

# Two runners, then one runner for everything.
for k in 1 2; do
	rm -rf "$WORK/co/out"
	(cd "$WORK/co" && SHARD=$k/2 bash -eu "$WORK/batch.sh") >"$WORK/batch.out" 2>&1 || {
		cat "$WORK/batch.out" >&2
		fail "the example's batch command failed for shard $k/2"
	}
	mkdir -p "$WORK/co/shards"
	mv "$WORK/co/out" "$WORK/co/shards/shard-$k"
done
pass "the example's batch command ran for shards 1/2 and 2/2"
(cd "$WORK/co" && SHARD=1/1 bash -eu "$WORK/batch.sh") >/dev/null 2>&1 || fail "the full run failed"
expect_fail 1 "SHA-256 mismatch" bash -c "cd '$WORK/co' && SHARD=1/1 IMAGE_SHA256=${IMAGE_SHA256//?/0} bash -eu '$WORK/batch.sh'"

for ci in github gitlab; do
	rm -rf "$WORK/co/cluster"
	(cd "$WORK/co" && bash -eu "$WORK/join-$ci.sh") >"$WORK/join.out" 2>&1 || {
		cat "$WORK/join.out" >&2
		fail "the $ci join script failed"
	}
	cmp "$WORK/co/out/SHA256SUMS" "$WORK/co/cluster/SHA256SUMS" ||
		fail "$ci: the joined SHA256SUMS differ from one full run's"
	pass "$ci join: SHA256SUMS = one full run's, every artifact checked"
	assert_eq "$ci join: report.json lists every node" "master1 worker1 worker2 worker3 worker4" \
		"$(jq -r '[.nodes[].hostname] | join(" ")' "$WORK/co/cluster/report.json")"
	assert_eq "$ci join: known_hosts has each node" 5 "$(cut -d' ' -f1 "$WORK/co/cluster/known_hosts" | sort -u | wc -l)"
done
finish
