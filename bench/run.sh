#!/usr/bin/env bash
# The benchmark suite: raise the open-files limit for 100,000 connections, then run the load
# generator on core 1 (each server it starts pins itself to core 0). Arguments go to run.js.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec taskset -c 1 node --max-old-space-size=8192 bench/dist/src/run.js "$@"
