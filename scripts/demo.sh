#!/usr/bin/env bash
# Builds wmp and the demo guest (examples/hello) and runs it through `wmp run`.
# The guest prints its process identity and exits with code 3.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null
cargo build --quiet -p wmp
cargo build --quiet -p wmp-example-hello --target wasm32-wasip2
set +e
./target/debug/wmp run target/wasm32-wasip2/debug/hello.wasm demo-arg
code=$?
set -e
echo "wmp run exited with code $code"
[ "$code" -eq 3 ]
