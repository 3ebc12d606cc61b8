#!/bin/bash
# A training run killed at any moment (SIGKILL, several times, some kills
# landing while a checkpoint is written) leaves a checkpoint that loads, and
# --resume ends with the bytes of a run that was never interrupted. SIGINT
# stops after the current step with a checkpoint and exit status 130.
# Usage: tests/kill.sh GRAPHRUN_BINARY SOURCE_DIR   (ctest runs it)
set -u
graphrun=$1
src=$2
program=$graphrun
source "$(dirname "$0")/expect.sh"
cd "$src"

# Many short epochs, so checkpoints are written often and kills land during writes.
run=(tests/specs/small_siamese.yaml --set train.epochs=60 --set data.synthetic.samples=600 --threads 2)
"$graphrun" "${run[@]}" --out "$work/whole" >/dev/null 2>&1 || fail "the uninterrupted run failed"

# SIGKILL at several moments; after each, the checkpoint (if any yet) must load: resuming from it is the check.
kills=0
for delay in 0.05 0.15 0.3 0.45 0.6 0.8 1.0 1.3; do
    if [ -e "$work/killed/checkpoint.safetensors" ]; then resume=(--resume); else resume=(); fi
    "$graphrun" "${run[@]}" "${resume[@]}" --out "$work/killed" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
    wait "$pid" 2>/dev/null
    if [ -e "$work/killed/checkpoint.safetensors" ]; then
        # Loading it is the check: x1 gets a wrong-shaped file on purpose, so predict stops
        # right after the checkpoint loaded (exit 2 naming the .npy); a torn checkpoint fails first, naming itself.
        msg=$("$graphrun" predict tests/specs/small_siamese.yaml --checkpoint "$work/killed/checkpoint.safetensors" \
            --input x1=tests/io_data/i32_3.npy --output left_dense --out "$work/probe" 2>&1)
        grep -q "checkpoint.safetensors" <<<"$msg" && fail "after a kill at ${delay}s the checkpoint does not load: $msg"
    fi
done
echo "ok: killed $kills times; the checkpoint loaded after each"
[ -e "$work/killed/checkpoint.safetensors" ] && resume=(--resume) || resume=()
"$graphrun" "${run[@]}" "${resume[@]}" --out "$work/killed" >/dev/null 2>&1 || fail "the final --resume failed"
cmp -s "$work/whole/checkpoint.safetensors" "$work/killed/checkpoint.safetensors" && echo "ok: killed and resumed = never interrupted" ||
    fail "the resumed run's checkpoint differs from the uninterrupted run's"

# SIGINT: a checkpoint after the current step, exit 130, and how to go on.
"$graphrun" "${run[@]}" --out "$work/interrupted" >"$work/sigint.log" 2>&1 &
pid=$!
wait_for "$work/sigint.log" "epoch 2/60 step"  # training has begun, 58 epochs to go
kill -INT "$pid"
wait "$pid"
status=$?
[ "$status" = 130 ] && echo "ok: SIGINT -> 130" || fail "SIGINT gave exit status $status, expected 130: $(tail -2 "$work/sigint.log")"
grep -q "interrupted: stopped" "$work/sigint.log" && grep -q -- "--resume --out $work/interrupted" "$work/sigint.log" ||
    fail "SIGINT's message lacks where it stopped or how to resume: $(tail -2 "$work/sigint.log")"
"$graphrun" "${run[@]}" --resume --out "$work/interrupted" >/dev/null 2>&1 || fail "--resume after SIGINT failed"
cmp -s "$work/whole/checkpoint.safetensors" "$work/interrupted/checkpoint.safetensors" && echo "ok: interrupted and resumed = never interrupted" ||
    fail "after SIGINT and --resume the checkpoint differs from the uninterrupted run's"
finish
