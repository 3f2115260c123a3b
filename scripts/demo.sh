#!/usr/bin/env bash
# Installs the build dependencies (apt: a compiler, cmake and six -dev
# packages; no Python, no torch, no test tools), builds ckpt without tests
# into build-demo/, shows the committed example checkpoint and prepares it
# for fine-tuning (the README's edit) into a temporary folder.
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
# The main job: the fine-tuning preparation AudioCraft users write by hand
# (README), into a temporary folder.
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "\$ build-demo/ckpt edit $example -o $out/init.th optim.lr=1e-5 ++dataset.train.path=/data/ft --drop 'condition_provider.*'"
build-demo/ckpt edit "$example" -o "$out/init.th" optim.lr=1e-5 ++dataset.train.path=/data/ft --drop 'condition_provider.*'
echo
echo "\$ build-demo/ckpt cfg $out/init.th optim"
build-demo/ckpt cfg "$out/init.th" optim
echo
echo "Install: cmake --install build-demo   (puts ckpt in /usr/local/bin; --prefix ~/.local for ~/.local/bin)"
