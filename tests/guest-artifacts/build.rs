//! Builds the test guests (tests/guests) and the example guests for wasm,
//! and writes their paths as
//! constants, so the tests find them without knowing how they are built
//! (as wasmtime's test-programs/artifacts does).

use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, package, binary, target triple)
const GUESTS: &[(&str, &str, &str, &str)] = &[
    ("PROBE", "wmp-test-guest-programs", "probe", "wasm32-wasip2"),
    ("MINIMAL", "wmp-test-guest-programs", "minimal", "wasm32-wasip2"),
    ("POLYGLOT", "wmp-test-guest-programs", "polyglot", "wasm32-wasip2"),
    ("SYNC", "wmp-test-guest-programs", "sync", "wasm32-wasip2"),
    ("PLAIN_P2", "wmp-test-guest-programs", "plain", "wasm32-wasip2"),
    ("PLAIN_P1", "wmp-test-guest-programs", "plain", "wasm32-wasip1"),
    ("HELLO", "wmp-example-hello", "hello", "wasm32-wasip2"),
    ("TREE", "wmp-example-tree", "tree", "wasm32-wasip2"),
    ("PLUGIN", "wmp-example-plugin", "plugin", "wasm32-wasip2"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().and_then(Path::parent).unwrap().to_owned();
    for watched in ["tests/guests", "examples", "guest-sdk", "core", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // A target dir of its own: the outer cargo holds the lock on target/.
    let target_dir = root.join("target").join("wasm-guests");
    let mut code = String::new();
    for triple in ["wasm32-wasip2", "wasm32-wasip1"] {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&root).args(["build", "--release", "--target", triple]).arg("--target-dir").arg(&target_dir);
        for (_, package, bin, _) in GUESTS.iter().filter(|g| g.3 == triple) {
            cmd.args(["--package", package, "--bin", bin]);
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("CARGO_PROFILE_")
                || key.starts_with("CARGO_BUILD_")
                || matches!(key.as_str(), "CARGO_ENCODED_RUSTFLAGS" | "RUSTFLAGS" | "CARGO_TARGET_DIR")
            {
                cmd.env_remove(key);
            }
        }
        let status = cmd.status().expect("running cargo to build the test guests");
        assert!(
            status.success(),
            "building the test guests for {triple} failed (is the target installed? `rustup target add {triple}`)"
        );
    }
    for (constant, _, bin, triple) in GUESTS {
        let path = target_dir.join(triple).join("release").join(format!("{bin}.wasm"));
        assert!(path.exists(), "{} was not built", path.display());
        code.push_str(&format!("pub const {constant}: &str = {:?};\n", path.display().to_string()));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(out, code).unwrap();
}
