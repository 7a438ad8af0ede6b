//! Fuzzes reading programs: arbitrary bytes go to `inspect` and to
//! `Runtime::load_bytes`, which must answer with an error, never a panic,
//! and must agree: what loads can be inspected, as the same kind.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wmp_host::Runtime;

/// One runtime for the whole run: building one per input would dwarf the
/// work under test.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("runtime"))
}

fuzz_target!(|bytes: &[u8]| {
    let inspection = wmp_host::inspect::inspect("fuzz.wasm", bytes);
    if let Ok(program) = runtime().load_bytes("fuzz.wasm", bytes) {
        let inspection = inspection.expect("a program that loads can be inspected");
        assert_eq!(inspection.kind, program.kind());
    }
});
