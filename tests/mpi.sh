#!/bin/bash
# Data-parallel training under MPI (mpirun --oversubscribe -np 2): the same
# weights as one process with the whole batch (to 1e-5 relative), --resume
# under MPI, and a failing rank stops every rank with its message, no hang.
# Usage: tests/mpi.sh GRAPHRUN_BINARY COMPARE_CHECKPOINTS_BINARY SOURCE_DIR   (ctest runs it)
set -u
graphrun=$1
compare=$2
src=$3
program=$graphrun
source "$(dirname "$0")/expect.sh"
cd "$src"
if ! "$graphrun" --version | grep -q "^MPI: Open MPI"; then
    # Without Open MPI on the machine there is nothing to test; with it, a build without MPI is a fault.
    if command -v mpirun >/dev/null; then
        echo "FAIL: mpirun is installed but graphrun was built without MPI: $("$graphrun" --version | tail -1)"
        exit 1
    fi
    # ctest counts exit status 77 as skipped (SKIP_RETURN_CODE), never as passed.
    echo "SKIPPED: no mpirun here and graphrun was built without MPI (apt-get install libopenmpi-dev openmpi-bin)"
    exit 77
fi
mpirun=(mpirun --oversubscribe -np 2)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)  # containers and CI run as root
run=(tests/specs/small_siamese.yaml --threads 1 --set train.epochs=2 --set data.synthetic.samples=600)

# One process, batch 32; two ranks of 16 rows each: the same data order.
"$graphrun" "${run[@]}" --out "$work/one" >/dev/null 2>&1 || fail "the one-process run failed"
timeout 120 "${mpirun[@]}" "$graphrun" "${run[@]}" --out "$work/two" >"$work/two.log" 2>&1 || fail "the 2-rank run failed: $(tail -3 "$work/two.log")"
grep -q "on 2 ranks" "$work/two.log" || fail "the 2-rank run does not say it ran on 2 ranks"
[ "$(grep -c '^epoch [0-9]  train_loss' "$work/two.log")" = 2 ] || fail "rank 0 alone should print the 2 epochs' lines"
grep -q '"ranks":2' "$work/two/metrics.jsonl" && grep -q '"allreduce_s_per_step"' "$work/two/metrics.jsonl" || fail "metrics.jsonl lacks ranks or allreduce time"
"$compare" "$work/one/checkpoint.safetensors" "$work/two/checkpoint.safetensors" 1e-5 && echo "ok: 2 ranks = 1 process to 1e-5" ||
    fail "2 ranks and 1 process disagree"

# Under MPI too, the threads decide nothing: 2 ranks with 2 threads each give the bytes of 2 ranks with 1.
timeout 120 "${mpirun[@]}" "$graphrun" tests/specs/small_siamese.yaml --threads 2 --set train.epochs=2 --set data.synthetic.samples=600 \
    --out "$work/two_threads" >/dev/null 2>&1 || fail "the 2-rank run with 2 threads each failed"
cmp -s "$work/two/checkpoint.safetensors" "$work/two_threads/checkpoint.safetensors" && echo "ok: 2 ranks, 1 or 2 threads each: the same bytes" ||
    fail "2 ranks give other bytes with 2 threads each than with 1"

# --resume under MPI: stopped after epoch 1, resumed, the bytes of the uninterrupted 2-rank run.
timeout 120 "${mpirun[@]}" "$graphrun" "${run[@]}" --set train.epochs=1 --out "$work/resumed" >/dev/null 2>&1 || fail "the 1-epoch 2-rank run failed"
timeout 120 "${mpirun[@]}" "$graphrun" "${run[@]}" --resume --out "$work/resumed" >/dev/null 2>&1 || fail "the 2-rank --resume failed"
cmp -s "$work/two/checkpoint.safetensors" "$work/resumed/checkpoint.safetensors" && echo "ok: --resume under MPI" ||
    fail "--resume under MPI ends elsewhere than the uninterrupted run"

# A loss that overflows: every rank stops, the message names the node, mpirun exits non-zero, in time.
timeout 120 "${mpirun[@]}" "$graphrun" tests/specs/overflow.yaml --threads 1 --out "$work/failed" >"$work/failed.log" 2>&1
status=$?
[ "$status" != 0 ] && [ "$status" != 124 ] && echo "ok: a failing run ends every rank (status $status)" || fail "a failing 2-rank run gave status $status (124: it hung)"
grep -q "node 'overflowed' (mul)" "$work/failed.log" || fail "the failing rank's message is missing: $(tail -3 "$work/failed.log")"

# SIGUSR1 to mpirun: every rank stops after the same step, rank 0 checkpoints, and --resume ends as never stopped.
timeout 120 "${mpirun[@]}" "$graphrun" "${run[@]}" --set train.epochs=40 --out "$work/usr1_whole" >/dev/null 2>&1 || fail "the 40-epoch run failed"
# (mpirun itself in the background: `timeout` would not pass SIGUSR1 on; ctest's timeout guards this one.)
"${mpirun[@]}" "$graphrun" "${run[@]}" --set train.epochs=40 --out "$work/usr1" >"$work/usr1.log" 2>&1 &
mpirun_pid=$!
wait_for "$work/usr1.log" "epoch 2/40 step"  # rank 0's progress: training has begun, 38 epochs to go
kill -USR1 "$mpirun_pid"
wait "$mpirun_pid"
grep -q "interrupted: stopped" "$work/usr1.log" && grep -q "mpirun -np 2 graphrun train" "$work/usr1.log" ||
    fail "SIGUSR1 did not stop the ranks with a checkpoint: $(tail -3 "$work/usr1.log")"
timeout 120 "${mpirun[@]}" "$graphrun" "${run[@]}" --set train.epochs=40 --resume --out "$work/usr1" >/dev/null 2>&1 || fail "--resume after SIGUSR1 failed"
cmp -s "$work/usr1_whole/checkpoint.safetensors" "$work/usr1/checkpoint.safetensors" && echo "ok: SIGUSR1 under mpirun, then --resume" ||
    fail "after SIGUSR1 and --resume the checkpoint differs from the uninterrupted run's"

# One rank alone fails before training (its data file is missing) while rank 0
# waits in the first allreduce: the failing rank's abort ends rank 0 too.
one_rank=(--oversubscribe)
[ "$(id -u)" = 0 ] && one_rank+=(--allow-run-as-root)
files=(tests/bad_inputs/files_base.yaml --threads 1 --out "$work/shard")
timeout 120 mpirun "${one_rank[@]}" -np 1 "$graphrun" "${files[@]}" : -np 1 "$graphrun" "${files[@]}" --set data.files.inputs.x1=missing.npy \
    >"$work/shard.log" 2>&1
status=$?
[ "$status" != 0 ] && [ "$status" != 124 ] && echo "ok: one failing rank ends the run (status $status)" || fail "one failing rank gave status $status (124: a hang)"
grep -q "rank 1 of 2" "$work/shard.log" && grep -q "missing.npy" "$work/shard.log" || fail "the failing rank's message is missing: $(tail -3 "$work/shard.log")"
finish
