#!/usr/bin/env bash
# Installs what a fresh machine lacks (the wasm targets) and runs every test:
# unit tests of each crate and the integration binary tests/all, whose guests
# tests/guest-artifacts builds for wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null
bash scripts/language-guests.sh && export WMP_LANGUAGE_GUESTS=required  # C, Python and JS guests (tests/all/languages.rs)
cargo test "$@"   # the default members; guests are built for wasm by tests/guest-artifacts
