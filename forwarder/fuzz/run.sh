#!/usr/bin/env bash
# Runs every hopstack-forwarder fuzz target for a bounded time, with encoder/fuzz/run.sh's
# loop (the same arguments):
#   forwarder/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   RUNS=10000000 forwarder/fuzz/run.sh 0 [TARGET...]   # a number of executions instead
# Findings land in forwarder/fuzz/artifacts/<target>/; the corpus grows in
# forwarder/fuzz/corpus/<target>/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
FUZZ_DIR="$here" exec "$here/../../encoder/fuzz/run.sh" "$@"
