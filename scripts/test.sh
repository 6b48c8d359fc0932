#!/usr/bin/env bash
# The second README command: builds and runs every test under the release (g++), asan
# (g++: ASan + UBSan + LeakSanitizer) and tsan (clang++ 14: ThreadSanitizer) presets.
# The release run also installs the library and builds an outside project against it.
source "$(dirname "$0")/lib.sh"
knhk_require_packages "${knhk_build_packages[@]}" clang libclang-rt-14-dev
cd "$knhk_root"
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(release asan tsan)
for preset in "${presets[@]}"; do
  echo "=== preset $preset: configure, build, test"
  cmake --preset "$preset"
  cmake --build --preset "$preset" -j "$(knhk_jobs)"
  ctest --preset "$preset" -j "$(knhk_jobs)"
done
echo "=== all presets passed: ${presets[*]}"
