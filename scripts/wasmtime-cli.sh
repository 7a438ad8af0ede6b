#!/usr/bin/env bash
# The real `wasmtime` CLI, for comparing `wmp run` with `wasmtime run`.
#
#   bash scripts/wasmtime-cli.sh
#       Prints the path of a wasmtime 48.0.8 binary on stdout (nothing else
#       there), building it first if this machine lacks it: wasmtime-cli 48.0.8
#       from crates.io, `cargo install --locked --no-default-features` with the
#       features below, into ${XDG_CACHE_HOME:-$HOME/.cache}/wmp/wasmtime-48.0.8-<features>.
#       The first build takes a while (9 min on 2 idle cores, 19 to 26 min
#       beside other builds; a 29 MB binary left); later calls are silent
#       and quick.
#
# The features are `run` and `compile` with the parts of wasmtime that wmp's
# own wasmtime has (the workspace Cargo.toml): cranelift, component-model,
# wat, backtrace, demangle, parallel-compilation, pooling-allocator, async
# (through `run`); and clap's default features, so usage errors and --help
# read as in a release build. Every flag the differential suite
# (tests/all/wasmtime_differential.rs) compares is compiled in, and an
# option for a part both lack (-C cache, -D coredump, -W gc, ...) is refused
# by both. The rest of the default set (serve, explore, wast, wizer,
# objdump, wasi-nn/http/tls/..., winch, pulley, gc, threads, profiling,
# cache, coredump, logging) only lengthens the build.
#
# Only crates.io is reachable here (no release downloads), hence the build.
# It has a target dir of its own under the cache dir, not the project's
# target/, removed once the install succeeds; a failed build keeps it, so a
# retry resumes. The directory's name carries a hash of the feature list and
# a marker written last names version and features: a cache built with other
# features is rebuilt, not trusted; the binary must also still run and say it
# is 48.0.8. A flock makes a second caller wait for the first one's build
# rather than start its own.
#
#   WASMTIME=$(bash scripts/wasmtime-cli.sh) && "$WASMTIME" run x.wasm
set -euo pipefail

WASMTIME_VERSION=48.0.8 # the wasmtime crates wmp builds on
FEATURES=run,compile,cranelift,component-model,wat,backtrace,demangle,parallel-compilation,pooling-allocator,clap/default,clap/wrap_help
INSTALLED="wasmtime-cli@$WASMTIME_VERSION --no-default-features --features $FEATURES" # the marker's text
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/wmp/wasmtime-$WASMTIME_VERSION-$(sha256sum <<<"$FEATURES" | cut -c1-12)"
BIN="$DIR/bin/wasmtime"
MARKER="$DIR/.wmp-installed"
BUILD="$DIR/build" # CARGO_TARGET_DIR while building

say() { echo "wasmtime-cli: $*" >&2; }

# True when the install with these features finished and the binary runs as
# the pinned version (`wasmtime --version` prints "wasmtime 48.0.8" and maybe
# a commit and date).
installed() {
  [[ -f $MARKER && $(<"$MARKER") == "$INSTALLED" && -x $BIN ]] &&
    [[ $("$BIN" --version 2>/dev/null | awk 'NR == 1 { print $1 " " $2 }') == "wasmtime $WASMTIME_VERSION" ]]
}

if ! installed; then
  mkdir -p "$DIR"
  # One builder at a time; a second caller waits, then finds it done.
  exec 9>"$DIR.lock"
  flock 9
  if ! installed; then
    say "building wasmtime-cli $WASMTIME_VERSION (crates.io, features $FEATURES) into $DIR; a while, once"
    t0=$EPOCHREALTIME
    rm -f "$MARKER"
    # --force: a binary without the marker is from an install that did not finish.
    CARGO_TARGET_DIR="$BUILD" cargo install -q --locked --force --root "$DIR" \
      --no-default-features --features "$FEATURES" "wasmtime-cli@$WASMTIME_VERSION"
    version=$("$BIN" --version)
    if [[ $version != "wasmtime $WASMTIME_VERSION"* ]]; then
      say "the installed binary says \"$version\", not wasmtime $WASMTIME_VERSION"
      exit 1
    fi
    rm -rf "$BUILD"
    echo "$INSTALLED" >"$MARKER"
    say "built $version in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
  fi
  exec 9>&-
fi
echo "$BIN"
