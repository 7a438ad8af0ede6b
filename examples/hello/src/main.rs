//! The demo guest: a process that says who it is, then exits with code 3.
//!
//!     cargo run -- run target/wasm32-wasip2/debug/hello.wasm

fn main() {
    let me = wmp_guest::current_process();
    println!("hello from {me}");
    println!("  name     = {}", me.name());
    println!("  pid      = {}", me.pid().unwrap().unwrap());
    println!("  identity = {:?}", me.identity());
    println!("  authkey  = {:?} ({} bytes)", me.authkey(), me.authkey().as_bytes().len());
    println!("  args     = {:?}", std::env::args().collect::<Vec<_>>());
    println!("exiting with code 3");
    wmp_guest::exit(3);
}
