# Shared by scripts/bench.sh and scripts/test.sh: make sure the Debian packages a step needs are
# installed. As root, installs what is missing (apt-get); otherwise stops and names the packages.
set -euo pipefail

knhk_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

knhk_require_packages() {
  local missing=()
  local package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "knhk: missing Debian packages: ${missing[*]}" >&2
    echo "knhk: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "knhk: installing Debian packages: ${missing[*]}"
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

# What every build of the project needs (the normal build also builds knhk-bench, the
# Google Benchmark suite and the tests; the telemetry tests read YAML and JSON).
knhk_build_packages=(cmake ninja-build g++ libgtest-dev libbenchmark-dev libtbb-dev libyaml-cpp-dev nlohmann-json3-dev)

knhk_jobs() { nproc 2>/dev/null || echo 2; }
