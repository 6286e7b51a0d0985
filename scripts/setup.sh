#!/usr/bin/env bash
# Installs the Debian packages that hpod needs and configures the build in
# ./build. Safe to run again: packages already present are not reinstalled
# and an existing build folder is reconfigured.
#
#   scripts/setup.sh           build and test dependencies
#   scripts/setup.sh --bench   also what bench/ needs (PyTorch, scikit-learn and
#                              Optuna for comparisons)
#   scripts/setup.sh --fuzz    also clang and libFuzzer for scripts/fuzz.sh
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(
  build-essential meson ninja-build pkg-config
  libgsl-dev libzmq3-dev libcjson-dev libopenblas-dev libsqlite3-dev
  libcmocka-dev libdnnl-dev sqlite3 iproute2
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3 python3-torch python3-numpy python3-sklearn python3-optuna time)
fi
if [[ "${1:-}" == "--fuzz" ]]; then
  packages+=(clang libclang-rt-14-dev libomp-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Warnings are errors in every build that this script makes, CI included.
if [[ -d build ]]; then
  meson setup --reconfigure build -Dwerror=true
else
  meson setup build -Dwerror=true
fi
ninja -C build
