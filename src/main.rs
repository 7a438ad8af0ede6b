//! `wmp`: run WebAssembly programs as processes with the semantics of
//! Python's `multiprocessing.Process`. A thin CLI over `wmp-host`: each
//! subcommand parses its arguments and calls the library.

mod commands;

use clap::Parser;

#[derive(Parser)]
#[command(name = "wmp", version, about = "Run WebAssembly programs as processes (multiprocessing.Process semantics)")]
enum Cli {
    Run(commands::run::RunCommand),
    Compile(commands::compile::CompileCommand),
    Inspect(commands::inspect::InspectCommand),
    Wit(commands::wit::WitCommand),
    #[cfg(feature = "cluster")]
    #[command(hide = true)]
    Agent(commands::agent::AgentCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("WMP_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse() {
        Cli::Run(command) => command.execute(),
        Cli::Compile(command) => command.execute(),
        Cli::Inspect(command) => command.execute(),
        Cli::Wit(command) => command.execute(),
        #[cfg(feature = "cluster")]
        Cli::Agent(command) => command.execute(),
    };
    if let Err(err) = result {
        // One line, no backtrace: these are user errors (a missing or
        // malformed module, a bad directory), not bugs.
        eprintln!("Error: {err:#}");
        std::process::exit(1);
    }
}
