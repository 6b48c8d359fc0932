#!/usr/bin/env bash
# The first README command: builds the release preset and runs knhk-bench.
# Arguments are passed to knhk-bench (e.g. --quick, --json FILE).
source "$(dirname "$0")/lib.sh"
knhk_require_packages "${knhk_build_packages[@]}"
cd "$knhk_root"
cmake --preset release
cmake --build --preset release --target knhk-bench -j "$(knhk_jobs)"
exec ./build/release/apps/knhk-bench/knhk-bench "$@"
