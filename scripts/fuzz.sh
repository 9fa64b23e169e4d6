#!/bin/bash
# fuzz.sh — build the libFuzzer targets (tests/fuzz) and run each for a while.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  how long each target runs (default 600)
#   TARGET   fuzz-image, fuzz-inventory, fuzz-template, fuzz-report (default: all)
#
# Builds build-fuzz with clang, ASan and UBSan (-Dfuzz=true) if it is not there, then runs the
# targets one after the other, one fuzzing process at a time (no -jobs/-fork), so the machine stays
# usable. Each starts from its committed corpus, tests/fuzz/corpus/TARGET, which is only
# read: new inputs go to a scratch dir ($FUZZ_WORK, default build-fuzz/fuzz-work/TARGET)
# that later runs start from too. Crashes, leaks and timeouts go to tests/fuzz/crashes/.
# A finding fixed gets its input committed as tests/fuzz/corpus/TARGET/regress-NAME.
# At the end, per target: the time it ran, execs/s, and libFuzzer's final cov: and ft:.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz-image fuzz-inventory fuzz-template fuzz-report)
BUILD=${FUZZ_BUILD:-build-fuzz}
WORK=${FUZZ_WORK:-$BUILD/fuzz-work}
CRASHES=tests/fuzz/crashes

case $SECONDS_EACH in
'' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number, not '$SECONDS_EACH'" >&2; exit 2 ;;
esac

if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C "$BUILD" -j2 $(printf 'tests/fuzz/%s ' "${TARGETS[@]}")
mkdir -p "$CRASHES"

# Sanitizers: stop at the first error, UBSan included, with a stack trace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LC_ALL=C.UTF-8 TZ=UTC

summary=()
status=0
for t in "${TARGETS[@]}"; do
	exe=$BUILD/tests/fuzz/$t
	corpus=tests/fuzz/corpus/$t
	[ -x "$exe" ] && [ -d "$corpus" ] || { echo "fuzz.sh: no target '$t'" >&2; exit 2; }
	mkdir -p "$WORK/$t"
	log=$WORK/$t.log
	extra=()
	# Images are up to 1 MiB; the rest are small text files.
	[ "$t" = fuzz-image ] && extra=(-max_len=1048576 -rss_limit_mb=4096 -timeout=30)
	[ -f "tests/fuzz/$t.dict" ] && extra+=(-dict="tests/fuzz/$t.dict")
	echo "fuzz.sh: $t for ${SECONDS_EACH}s (log: $log)"
	start=$(date +%s)
	rc=0
	findings=0
	: >"$log"
	# A finding stops libFuzzer: note it and go on for the time left (at most 10 times), so
	# one shallow bug does not hide the deeper ones behind it.
	while :; do
		left=$((SECONDS_EACH - ($(date +%s) - start)))
		[ "$left" -gt 5 ] || break
		r=0
		# One plain process: -jobs=1 would spawn a child logging to ./fuzz-0.log.
		"$exe" -max_total_time="$left" -print_final_stats=1 \
			-artifact_prefix="$CRASHES/$t-" "${extra[@]}" "$WORK/$t" "$corpus" >>"$log" 2>&1 || r=$?
		[ "$r" = 0 ] && break
		rc=$r
		findings=$((findings + 1))
		[ "$findings" -lt 10 ] || break
	done
	ran=$(($(date +%s) - start))
	# The last status line: "#N  DONE  cov: C ft: F corp: ... exec/s: E ...", or the last
	# pulse if it stopped on a finding.
	last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
	# execs/s over the whole time: the sum of the runs' executions.
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{n += $1} END {print n + 0}')
	eps=$((execs / (ran > 0 ? ran : 1)))
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	found=ok
	if [ "$rc" != 0 ]; then
		found="FOUND $findings time(s), first: $(grep -E -m1 'ERROR|SUMMARY|deadly|timeout|leak' "$log" || true)"
		status=1
	fi
	summary+=("$(printf '%-15s %5ss  %9s execs  %6s exec/s  cov: %-5s ft: %-6s %s' "$t" "$ran" \
		"${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$found")")
done

echo
echo "fuzz.sh: results (crashes, if any, in $CRASHES/)"
printf '%s\n' "${summary[@]}"
exit $status
