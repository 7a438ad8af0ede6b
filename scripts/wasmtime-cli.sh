#!/usr/bin/env bash
# The real `wasmtime` CLI, for comparing `wmp run` with `wasmtime run`.
#
#   bash scripts/wasmtime-cli.sh
#       Prints the path of a wasmtime 48.0.8 binary on stdout (nothing else
#       there), building it first if this machine lacks it: wasmtime-cli 48.0.8
#       from crates.io with its default features, `cargo install --locked`,
#       into ${XDG_CACHE_HOME:-$HOME/.cache}/wmp/wasmtime-48.0.8. The first
#       build takes a long while (26 min on 2 cores, niced, beside another
#       build; about 1.5 GB of build files on the way, a 64 MB binary left);
#       later calls are silent and quick.
#
# Only crates.io is reachable here (no release downloads), hence the build.
# It has a target dir of its own under the cache dir, not the project's
# target/, removed once the install succeeds; a failed build keeps it, so a
# retry resumes. A marker written last says the install finished; the binary
# must also still run and say it is 48.0.8. A flock makes a second caller wait
# for the first one's build rather than start its own.
#
#   WASMTIME=$(bash scripts/wasmtime-cli.sh) && "$WASMTIME" run x.wasm
set -euo pipefail

WASMTIME_VERSION=48.0.8 # the wasmtime crates wmp builds on
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/wmp/wasmtime-$WASMTIME_VERSION"
BIN="$DIR/bin/wasmtime"
MARKER="$DIR/.wmp-installed"
BUILD="$DIR/build" # CARGO_TARGET_DIR while building

say() { echo "wasmtime-cli: $*" >&2; }

# True when the install finished and the binary runs as the pinned version
# (`wasmtime --version` prints "wasmtime 48.0.8" and maybe a commit and date).
installed() {
  [[ -f $MARKER && $(<"$MARKER") == "wasmtime-cli@$WASMTIME_VERSION" && -x $BIN ]] &&
    [[ $("$BIN" --version 2>/dev/null | awk 'NR == 1 { print $1 " " $2 }') == "wasmtime $WASMTIME_VERSION" ]]
}

if ! installed; then
  mkdir -p "$DIR"
  # One builder at a time; a second caller waits, then finds it done.
  exec 9>"$DIR.lock"
  flock 9
  if ! installed; then
    say "building wasmtime-cli $WASMTIME_VERSION (crates.io, default features) into $DIR; a long while, once"
    t0=$EPOCHREALTIME
    rm -f "$MARKER"
    # --force: a binary without the marker is from an install that did not finish.
    CARGO_TARGET_DIR="$BUILD" cargo install -q --locked --force --root "$DIR" "wasmtime-cli@$WASMTIME_VERSION"
    version=$("$BIN" --version)
    if [[ $version != "wasmtime $WASMTIME_VERSION"* ]]; then
      say "the installed binary says \"$version\", not wasmtime $WASMTIME_VERSION"
      exit 1
    fi
    rm -rf "$BUILD"
    echo "wasmtime-cli@$WASMTIME_VERSION" >"$MARKER"
    say "built $version in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
  fi
  exec 9>&-
fi
echo "$BIN"
