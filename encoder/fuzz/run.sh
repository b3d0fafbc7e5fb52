#!/usr/bin/env bash
# Runs every hopstack-encoder fuzz target for a bounded time.
#   encoder/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   RUNS=10000000 encoder/fuzz/run.sh 0 [TARGET...]   # a number of executions instead
# (0 seconds: no time limit; with RUNS and a time limit, whichever comes first.)
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The stable toolchain works with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Zsanitizer=address). Findings land in
# encoder/fuzz/artifacts/<target>/; the corpus grows in encoder/fuzz/corpus/<target>/.
# forwarder/fuzz/run.sh runs this same loop in its own crate (FUZZ_DIR).
set -euo pipefail
cd "${FUZZ_DIR:-$(dirname "$0")}"
log_prefix="/tmp/hopstack-$(basename "$(dirname "$PWD")")-fuzz"
secs=${1:-180}
runs=${RUNS:--1}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
python3 make_seeds.py
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
status=0
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s, runs $runs"
    if ! cargo fuzz run -O "$t" -- -max_total_time="$secs" -runs="$runs" -print_final_stats=1 \
        2>&1 | tee "$log_prefix-$t.log" | grep -E 'DONE|stat::number_of_executed_units|stat::average_exec_per_sec|SUMMARY|panicked|Test unit written'; then
        :
    fi
    if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
        echo "!! $t: findings in artifacts/$t (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $t artifacts/$t/<file>)"
        status=1
    fi
done
exit $status
