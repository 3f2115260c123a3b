# Shared helpers for scripts/*.sh (sourced, not executed).
# Works as root or via sudo, with no stdin and CI=true.

# What building ckpt needs (README, scripts/demo.sh); the rest is for the tests.
CKPT_BUILD_PACKAGES=(
  cmake g++ make pkg-config zlib1g-dev libyaml-dev nlohmann-json3-dev libisal-dev libcli11-dev
  libcurl4-openssl-dev
)
CKPT_DEBIAN_PACKAGES=(
  "${CKPT_BUILD_PACKAGES[@]}"
  libgtest-dev libfmt-dev clang libclang-rt-14-dev
  python3-torch python3-omegaconf python3-pytest python3-yaml python3-numpy
  zsh fish
  nginx-light openssl
  ccache
)

# Build parallelism: the machines are small and shared.
CKPT_JOBS="${CKPT_JOBS:-2}"

ckpt_log() { printf '== %s\n' "$*" >&2; }

# Installs the Debian packages from CKPT_DEBIAN_PACKAGES that are not installed
# yet; runs apt-get update once, only when something is missing.
ckpt_install_deps() {
  local missing=() pkg
  for pkg in "${CKPT_DEBIAN_PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    ckpt_log "Debian packages: all present"
    return 0
  fi
  ckpt_log "Debian packages missing: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo -n)
    else
      ckpt_log "not root and no sudo: install ${missing[*]} by hand"
      return 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q </dev/null || return 1
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null || return 1
}

# ckpt_build DIR [extra cmake args...]: configures and builds DIR. With
# CKPT_KEEP_GOING=1, builds every target it can even after one fails (so the
# tests of the layers that did build can still run); the status is still 1.
ckpt_build() {
  local dir="$1"
  shift
  # Through ccache when it is there: the release, sanitizer and wheel builds
  # compile the same sources, and a rerun recompiles only what changed.
  local launcher=()
  if [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] && command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  ckpt_log "configure $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@" </dev/null || return 1
  ckpt_log "build $dir (-j$CKPT_JOBS)"
  if [ "${CKPT_KEEP_GOING:-0}" = 1 ]; then
    cmake --build "$dir" -j"$CKPT_JOBS" -- -k </dev/null
  else
    cmake --build "$dir" -j"$CKPT_JOBS" </dev/null
  fi
}

# The torch 2.x test environment: a virtual environment with the pinned
# packages of tests/requirements-torch2.txt (torch 2.13.0's CPU wheel, omegaconf
# 2.3, hydra-core, safetensors). CKPT_TORCH2_VENV picks its folder (default
# .venv-torch2 in the repository). Prints the venv's python on success.
# Debian's torch 1.13 + omegaconf 2.2 (/usr/bin/python3) is the other side of
# the test matrix.
ckpt_torch2_python() {
  printf '%s/bin/python\n' "${CKPT_TORCH2_VENV:-$PWD/.venv-torch2}"
}

ckpt_setup_torch2_venv() {
  ckpt_setup_venv "${CKPT_TORCH2_VENV:-$PWD/.venv-torch2}" "$PWD/tests/requirements-torch2.txt" "torch 2.x venv"
}

# The Python package's run without torch: numpy and pytest only
# (tests/requirements-python.txt). CKPT_NUMPY_VENV picks its folder (default
# .venv-numpy in the repository).
ckpt_numpy_python() {
  printf '%s/bin/python\n' "${CKPT_NUMPY_VENV:-$PWD/.venv-numpy}"
}

ckpt_setup_numpy_venv() {
  ckpt_setup_venv "${CKPT_NUMPY_VENV:-$PWD/.venv-numpy}" "$PWD/tests/requirements-python.txt" "numpy-only venv"
}

# ckpt_setup_venv VENV REQUIREMENTS LABEL: a virtual environment with the
# pinned packages of REQUIREMENTS, remade only when they change.
ckpt_setup_venv() {
  local venv="$1" req="$2" label="$3"
  local stamp="$venv/.ckpt-requirements"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
    ckpt_log "$label: $venv up to date"
    return 0
  fi
  # A Python 3.11 with venv and pip: the machine's own python3 (pyenv) first,
  # Debian's (with python3-venv) otherwise.
  local py
  for py in python3.11 python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      break
    fi
    py=""
  done
  if [ -z "$py" ]; then
    ckpt_log "$label: no Python 3.11 with venv/ensurepip found"
    return 1
  fi
  ckpt_log "$label: creating $venv with $py"
  rm -rf "$venv"
  "$py" -m venv "$venv" </dev/null || return 1
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" </dev/null || return 1
  cp "$req" "$stamp"
}

# ckpt_build_wheel PYTHON DIR: the Python package's wheel (pyproject.toml,
# scikit-build-core) built with PYTHON's pip into DIR, through ccache when it
# is installed (the build folder build-wheel/ is kept between runs too).
# Prints the wheel's path on success.
ckpt_build_wheel() {
  local python="$1" dir="$2"
  if [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] && command -v ccache >/dev/null 2>&1; then
    export CMAKE_CXX_COMPILER_LAUNCHER=ccache
  fi
  rm -rf "$dir"
  ckpt_log "python: pip wheel . -w $dir"
  CMAKE_BUILD_PARALLEL_LEVEL="$CKPT_JOBS" "$python" -m pip wheel . --no-deps -q --disable-pip-version-check \
    -w "$dir" </dev/null >&2 || return 1
  ls "$dir"/ckpt-*.whl
}
