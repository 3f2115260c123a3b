#!/usr/bin/env bash
# Installs the build dependencies (apt: a compiler, cmake and six -dev
# packages; no Python, no torch, no test tools), builds ckpt without tests
# into build-demo/, and shows it on the committed example checkpoint.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/lib.sh

CKPT_DEBIAN_PACKAGES=("${CKPT_BUILD_PACKAGES[@]}")
ckpt_install_deps </dev/null
ckpt_build build-demo -DCKPT_TESTS=OFF
example=examples/musicgen_tiny_training.th
echo "\$ build-demo/ckpt info $example"
build-demo/ckpt info "$example"
echo
echo "\$ build-demo/ckpt tensors $example --group 1"
build-demo/ckpt tensors "$example" --group 1
echo
echo "Install: cmake --install build-demo   (puts ckpt in /usr/local/bin; --prefix ~/.local for ~/.local/bin)"
