#!/usr/bin/env bash
# Installs what a fresh machine lacks (the wasm targets, the language
# guests' tools, the real wasmtime, Ray) and runs every test: unit tests of
# each crate and the integration binary tests/all, whose guests
# tests/guest-artifacts builds for wasm, with the differential CLI tests
# against wasmtime (which a plain `cargo test` skips); then, around a real
# two-node Ray cluster on loopback, the cluster backend's tests (which a
# plain `cargo test` skips too).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null
# wasmtime 48.0.8 for tests/all/wasmtime_differential.rs. The first time it
# is a long build, so it runs beside the language tools and the tests' build,
# in a session of its own that is ended if this script ends first.
wasmtime_path=$(mktemp)
setsid bash scripts/wasmtime-cli.sh >"$wasmtime_path" &
wasmtime_build=$!
trap 'kill -- -"$wasmtime_build" "$wasmtime_build" 2>/dev/null; rm -f "$wasmtime_path"' EXIT
bash scripts/language-guests.sh && export WMP_LANGUAGE_GUESTS=required  # C, Python and JS guests (tests/all/languages.rs)
cargo test --features cluster --no-run "$@"
wait "$wasmtime_build"
trap - EXIT
WMP_WASMTIME=$(<"$wasmtime_path") && rm "$wasmtime_path" && export WMP_WASMTIME
cargo test --features cluster "$@"   # the default members; guests are built for wasm by tests/guest-artifacts
# Ray runs in namespaces of its own with only loopback: everything is built
# above. The test that removes a node runs last, on a cluster of its own.
removes_a_node=cluster::a_removed_node_ends_its_processes_as_lost
bash scripts/ray-cluster.sh run -- cargo test --features cluster --offline "$@" -- --include-ignored \
  --skip "$removes_a_node" cluster:: backend::remote::
bash scripts/ray-cluster.sh run -- cargo test --features cluster --offline "$@" -- --include-ignored --exact "$removes_a_node"
