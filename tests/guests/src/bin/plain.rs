//! A plain WASI program (no wmp imports), built for both wasip1 and
//! wasip2, that `wmp run` must run exactly as `wasmtime run` does.
//!
//! Usage: plain COMMAND...
//!   args                 print each argument on its own line
//!   env NAME             print the variable's value (or "<unset>")
//!   read PATH            print the file's contents
//!   write PATH TEXT      write TEXT to the file
//!   exit CODE            std::process::exit(CODE)
//!   trap                 execute `unreachable`
//!   stderr TEXT          print TEXT on stderr
//!   cat                  copy stdin to stdout until its end
//!   connect ADDR         open a TCP connection to ADDR, print "connected"
//!   compute N            sort N pseudo-random numbers, print a checksum

#[path = "../workload.rs"]
mod workload;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "args" => args.iter().for_each(|a| println!("{a}")),
        "env" => println!("{}", std::env::var(arg(2)).unwrap_or_else(|_| "<unset>".into())),
        "read" => match std::fs::read_to_string(arg(2)) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("read {}: {e}", arg(2));
                std::process::exit(2);
            }
        },
        "write" => {
            if let Err(e) = std::fs::write(arg(2), arg(3)) {
                eprintln!("write {}: {e}", arg(2));
                std::process::exit(2);
            }
        }
        "exit" => std::process::exit(arg(2).parse().unwrap_or(1)),
        "trap" => core::arch::wasm32::unreachable(),
        "stderr" => eprintln!("{}", arg(2)),
        "cat" => {
            if let Err(e) = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::stdout().lock()) {
                eprintln!("cat: {e}");
                std::process::exit(2);
            }
        }
        "compute" => println!("checksum={}", workload::sort_checksum(arg(2).parse().unwrap())),
        "connect" => match std::net::TcpStream::connect(arg(2)) {
            Ok(_) => println!("connected"),
            Err(e) => {
                eprintln!("connect {}: {e}", arg(2));
                std::process::exit(2);
            }
        },
        other => {
            eprintln!("plain: unknown command {other:?}");
            std::process::exit(2);
        }
    }
}
