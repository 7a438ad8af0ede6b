#!/usr/bin/env bash
# Builds the C, Python and JavaScript guests of examples/{c,python,js} into
# target/language-guests/ (one .wasm each), installing the pinned toolchains
# a machine lacks first: clang and wasi-libc from Debian, wit-bindgen and
# wasm-tools from crates.io, componentize-py from PyPI, componentize-js from
# npm. Tools are kept in $WMP_LANGUAGE_TOOLS (default ~/.cache/wmp-language-
# tools), so later runs and fresh clones on the same machine reuse them. A
# guest is rebuilt only when its inputs (sources, WIT, tool versions) change.
set -euo pipefail
cd "$(dirname "$0")/.."

WIT_BINDGEN=0.61.1      # wit-bindgen-cli: C bindings
WASM_TOOLS=1.263.0      # wasm-tools: core module -> component
ADAPTER=48.0.8          # wasi-preview1-component-adapter-provider: wasmtime 48's p1 -> p2 adapter
COMPONENTIZE_PY=0.25.1  # componentize-py; componentize-js is pinned in examples/js/package-lock.json
DEBIAN_PACKAGES=(clang lld wasi-libc libclang-rt-14-dev-wasm32)

TOOLS=${WMP_LANGUAGE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/wmp-language-tools}
OUT=target/language-guests
mkdir -p "$TOOLS" "$OUT"
SECONDS=0
say() { echo "language-guests: $*" >&2; }

# --- toolchains ---------------------------------------------------------

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (Debian)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# cargo_tool CRATE VERSION BINARY FEATURES: installs a crate's binary into $TOOLS/bin.
cargo_tool() {
    if ! "$TOOLS/bin/$3" --version 2>/dev/null | grep -q " $2"; then
        say "building $1 $2 (crates.io; a few minutes, once)"
        cargo install -q --locked --root "$TOOLS" "$1@$2" --no-default-features --features "$4"
    fi
}
cargo_tool wit-bindgen-cli "$WIT_BINDGEN" wit-bindgen c
cargo_tool wasm-tools "$WASM_TOOLS" wasm-tools component

# The adapter is the artefact a crates.io crate carries: fetch the crate
# through a throwaway manifest and unpack it from cargo's cache.
ADAPTER_DIR="$TOOLS/wasi-preview1-component-adapter-provider-$ADAPTER"
if [ ! -f "$ADAPTER_DIR/artefacts/wasi_snapshot_preview1.reactor.wasm" ]; then
    say "fetching the WASI preview 1 adapter $ADAPTER (crates.io)"
    fetch="$TOOLS/adapter-fetch"
    mkdir -p "$fetch/src" && : > "$fetch/src/lib.rs"
    printf '[package]\nname = "adapter-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwasi-preview1-component-adapter-provider = "=%s"\n' "$ADAPTER" > "$fetch/Cargo.toml"
    cargo fetch -q --manifest-path "$fetch/Cargo.toml"
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"wasi-preview1-component-adapter-provider-$ADAPTER.crate" | head -1)
    tar -xzf "$crate" -C "$TOOLS"
fi

VENV="$TOOLS/componentize-py-$COMPONENTIZE_PY"
if [ ! -x "$VENV/bin/componentize-py" ]; then
    say "installing componentize-py $COMPONENTIZE_PY (PyPI)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi

# node_modules stays in the work tree (gitignored); reinstalled when the lock file changes.
if ! cmp -s examples/js/package-lock.json examples/js/node_modules/.wmp-installed-lock; then
    say "installing componentize-js (npm)"
    (cd examples/js && npm ci -s --no-audit --no-fund && cp package-lock.json node_modules/.wmp-installed-lock)
fi

# --- guests -------------------------------------------------------------

VERSIONS="$WIT_BINDGEN $WASM_TOOLS $ADAPTER $COMPONENTIZE_PY $(clang --version | head -1)"

# build NAME INPUT... -- COMMAND...: runs COMMAND, which writes $OUT/NAME.wasm,
# unless the inputs (files or directories) are as they were at its last build.
build() {
    local name=$1 inputs=()
    shift
    while [ "$1" != -- ]; do inputs+=("$1"); shift; done
    shift
    local stamp="$OUT/$name.inputs" sum
    sum=$( { echo "$VERSIONS"; find -L "${inputs[@]}" -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum)
    if [ -f "$OUT/$name.wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
        return
    fi
    say "building $OUT/$name.wasm"
    rm -f "$stamp"
    "$@"
    echo "$sum" > "$stamp"
}

WIT=(examples/wit wit)
CLANG=(clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug)

# c_guest NAME SOURCE...: builds the C sources, with the wrapper examples/c/multiprocessing.c and the bindings of
# wmp:guests/command, into the reactor component $OUT/NAME.wasm.
c_guest() {
    local name=$1 gen="$OUT/c-bindings-$1"
    shift
    rm -rf "$gen"
    "$TOOLS/bin/wit-bindgen" c examples/wit --world wmp:guests/command --out-dir "$gen" >/dev/null
    "${CLANG[@]}" -mexec-model=reactor -I"$gen" -Iexamples/c -o "$OUT/$name.core.wasm" \
        "$@" examples/c/multiprocessing.c "$gen/command.c" "$gen/command_component_type.o"
    "$TOOLS/bin/wasm-tools" component new "$OUT/$name.core.wasm" -o "$OUT/$name.wasm" \
        --adapt wasi_snapshot_preview1="$ADAPTER_DIR/artefacts/wasi_snapshot_preview1.reactor.wasm"
}
C_WRAPPER=(examples/c/multiprocessing.h examples/c/multiprocessing.c)
build c-guest examples/c/guest.c "${C_WRAPPER[@]}" "${WIT[@]}" -- c_guest c-guest examples/c/guest.c
build c-scenarios tests/scenarios/c "${C_WRAPPER[@]}" "${WIT[@]}" -- c_guest c-scenarios tests/scenarios/c/*.c
build c-plain examples/c/plain.c -- "${CLANG[@]}" -o "$OUT/c-plain.wasm" examples/c/plain.c

# py OUT APP WORLD DIR...: componentizes the app module APP, found in the
# DIRs, into $OUT/OUT.wasm. wmp's `multiprocessing` (guest-python/) comes
# first, so it is the one the program imports.
py() {
    local out=$1 app=$2 world=$3 paths=()
    shift 3
    for dir in guest-python "$@"; do paths+=(-p "$dir"); done
    "$VENV/bin/componentize-py" -d examples/wit -w "$world" componentize "${paths[@]}" "$app" -o "$OUT/$out.wasm" >/dev/null
}
build python-guest examples/python/guest.py guest-python "${WIT[@]}" -- py python-guest guest command examples/python
build python-scenarios tests/scenarios/*.py guest-python "${WIT[@]}" -- py python-scenarios wmp_main command tests/scenarios
build python-plain examples/python/plain.py "${WIT[@]}" -- py python-plain plain wasi:cli/command@0.2.12 examples/python

# js OUT SOURCE WORLD: componentizes SOURCE into $OUT/OUT.wasm (no HTTP: wmp grants none). componentize-js
# follows SOURCE's relative imports (the wrapper examples/js/multiprocessing.js) inside the directory it runs in.
js() {
    examples/js/node_modules/.bin/componentize-js "$2" --wit examples/wit --world-name "$3" \
        --disable http fetch-event -o "$OUT/$1.wasm" >/dev/null
}
JS=(examples/js/multiprocessing.js examples/js/package-lock.json "${WIT[@]}")
build js-guest examples/js/guest.js "${JS[@]}" -- js js-guest examples/js/guest.js wmp:guests/command
build js-scenarios tests/scenarios/js "${JS[@]}" -- js js-scenarios tests/scenarios/js/main.js wmp:guests/command
build js-plain examples/js/plain.js examples/js/package-lock.json "${WIT[@]}" -- js js-plain examples/js/plain.js \
    wasi:cli/command@0.2.12

say "ready in $OUT (${SECONDS}s)"
