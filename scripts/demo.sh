#!/usr/bin/env bash
# Installs dependencies, builds build/, and shows ckpt on the committed example.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/lib.sh

ckpt_install_deps </dev/null
ckpt_build build
example=examples/musicgen_tiny_training.th
echo "\$ build/ckpt info $example"
build/ckpt info "$example"
echo
echo "\$ build/ckpt tensors $example | head"
# head closes the pipe early: ignore the writer's SIGPIPE status.
build/ckpt tensors "$example" | head || true
