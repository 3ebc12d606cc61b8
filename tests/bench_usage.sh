#!/usr/bin/env bash
# The bench programs are tools people run: --help prints the usage on stdout
# and exits 0; a bad argument exits 2 with a message on stderr; a case this CPU
# cannot run (bf16 LSTM without AVX-512) is a JSON line that says so, exit 0.
# usage: bench_usage.sh BENCH_SIAMESE BENCH_LSTM_FLOOR ENCODE_PAIRS BENCH_ROOFLINE SOURCE_DIR
set -uo pipefail
siamese=$1 floor=$2 encode=$3 roofline=$4
cd "$5"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
expect() {  # expect STATUS TEXT -- PROGRAM ARGS...: the status, and TEXT in stdout+stderr
  local status=$1 text=$2; shift 3
  local out rc
  out=$("$@" 2>&1 </dev/null); rc=$?
  [ "$rc" -eq "$status" ] || fail "$*: exit $rc, expected $status: $out"
  grep -qF -- "$text" <<<"$out" || fail "$*: no '$text' in: $out"
}
for program in "$siamese" "$floor" "$encode" "$roofline"; do
  expect 0 "usage:" -- "$program" --help
  [ -z "$("$program" --help 2>&1 >/dev/null)" ] || fail "$program --help wrote to stderr"
done
expect 2 "expected the spec first" -- "$siamese"
expect 2 "--mode is train or infer, not 'x'" -- "$siamese" graphs/siamese.yaml --mode x
expect 2 "--threads expects a whole number, got 'two'" -- "$siamese" graphs/siamese.yaml --threads two
expect 2 "nope.yaml" -- "$siamese" nope.yaml --mode train
expect 2 "unknown option '--fast'" -- "$floor" --fast 1
expect 2 "--set and --save-batches go with --data" -- "$siamese" graphs/siamese.yaml --set train.epochs=1
expect 2 "use it with --mode train" -- "$siamese" graphs/siamese.yaml --data --mode infer
expect 2 "unknown option '--data' (bench_siamese takes it)" -- "$floor" --data
expect 2 "fewer than --batch 32" -- "$siamese" tests/specs/small_siamese.yaml --data --steps 1000
expect 2 "is not its train.batch_size 32" -- "$siamese" tests/specs/small_siamese.yaml --data --batch 16
expect 2 "--precision is f32 or bf16, not 'f16'" -- "$floor" --precision f16
expect 2 "expected 3 arguments" -- "$encode" only-one
expect 2 "--steps expects a whole number" -- "$roofline" --steps 1.5
expect 2 "no such folder" -- "$encode" --split /nonexistent /tmp/x
# bf16: measured where oneDNN has it, else one line that says why; never a crash.
for program in "$floor" "$siamese graphs/siamese.yaml"; do
  out=$($program --mode infer --threads 1 --batch 2 --steps 1 --warmup 0 --precision bf16 2>&1); rc=$?
  [ "$rc" -eq 0 ] || fail "$program --precision bf16: exit $rc: $out"
  grep -qE '"samples_per_s_median"|"unsupported"' <<<"$out" || fail "$program --precision bf16: no result line: $out"
done
[ "$failures" -eq 0 ] && echo "bench programs: usage and errors as expected"
exit $((failures > 0))
