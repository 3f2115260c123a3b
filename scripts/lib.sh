# Shared helpers for scripts/*.sh (sourced, not executed).
# Works as root or via sudo, with no stdin and CI=true.

CKPT_DEBIAN_PACKAGES=(
  cmake g++ make libgtest-dev zlib1g-dev libyaml-dev nlohmann-json3-dev
  libisal-dev libfmt-dev libcli11-dev clang libclang-rt-14-dev
  python3-torch python3-omegaconf python3-pytest python3-yaml python3-numpy
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
  ckpt_log "configure $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" </dev/null || return 1
  ckpt_log "build $dir (-j$CKPT_JOBS)"
  if [ "${CKPT_KEEP_GOING:-0}" = 1 ]; then
    cmake --build "$dir" -j"$CKPT_JOBS" -- -k </dev/null
  else
    cmake --build "$dir" -j"$CKPT_JOBS" </dev/null
  fi
}
