//! Paths of the test guests, built for wasm by this crate's build script:
//! `PROBE` (a wmp guest whose targets are the behaviours the tests need),
//! `PLAIN_P1` and `PLAIN_P2` (one plain WASI program built as a preview 1
//! module and as a preview 2 component), and the examples `HELLO` and
//! `TREE`.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
