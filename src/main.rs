//! `wmp`: run WebAssembly programs as processes with the semantics of
//! Python's `multiprocessing.Process`. A thin CLI over `wmp-host`: each
//! subcommand parses its arguments and calls the library. As with
//! `wasmtime`, a command line without a subcommand is a `run`.

mod commands;

use clap::{CommandFactory, Parser};

/// The command line: a subcommand, or the arguments of `wmp run`.
#[derive(Parser)]
#[command(
    name = "wmp",
    version,
    about = "Run WebAssembly programs as processes (multiprocessing.Process semantics)",
    after_help = "If a subcommand is not provided, the `run` subcommand is used: `wmp x.wasm ARGS` is `wmp run x.wasm ARGS`.",
    // Parse once for a subcommand and, failing that, as `run`'s arguments.
    args_conflicts_with_subcommands = true,
    // `help` is a subcommand of wmp's own, so that `wmp help --help` works.
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    subcommand: Option<Subcommand>,
    #[command(flatten)]
    run: commands::run::RunCommand,
}

#[derive(clap::Subcommand)]
enum Subcommand {
    /// Run a WebAssembly module or component as the main process.
    Run(commands::run::RunCommand),
    Compile(commands::compile::CompileCommand),
    Inspect(commands::inspect::InspectCommand),
    Cache(commands::cache::CacheCommand),
    Wit(commands::wit::WitCommand),
    #[cfg(feature = "cluster")]
    #[command(hide = true)]
    Agent(commands::agent::AgentCommand),
    Help(HelpCommand),
}

/// Print this message or the help of the given subcommand.
#[derive(clap::Args)]
struct HelpCommand {
    /// The subcommand (and its subcommands) to describe.
    #[arg(value_name = "COMMAND")]
    path: Vec<String>,
}

impl HelpCommand {
    fn execute(self) -> anyhow::Result<()> {
        let mut command = Cli::command();
        command.build(); // names each subcommand's usage `wmp NAME`
        for name in &self.path {
            command = command
                .find_subcommand(name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no such subcommand: {name:?} (see `wmp --help`)"))?;
        }
        match command.print_long_help() {
            // A closed pipe (`wmp help | head`) is not an error.
            Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
            _ => Ok(()),
        }
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("WMP_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.subcommand.unwrap_or(Subcommand::Run(cli.run)) {
        Subcommand::Run(command) => command.execute(),
        Subcommand::Compile(command) => command.execute(),
        Subcommand::Inspect(command) => command.execute(),
        Subcommand::Cache(command) => command.execute(),
        Subcommand::Wit(command) => command.execute(),
        #[cfg(feature = "cluster")]
        Subcommand::Agent(command) => command.execute(),
        Subcommand::Help(command) => command.execute(),
    };
    if let Err(err) = result {
        eprint!("{}", error_report(&err));
        std::process::exit(1);
    }
}

/// An error as wasmtime prints its own: the message, then a "Caused by:"
/// list when it has causes. No backtrace, even under RUST_BACKTRACE: these
/// are the user's errors (a missing or malformed module, a bad flag), not
/// wmp's bugs.
fn error_report(err: &anyhow::Error) -> String {
    let mut report = format!("Error: {err}\n");
    let causes: Vec<_> = err.chain().skip(1).collect();
    if !causes.is_empty() {
        report.push_str("\nCaused by:\n");
        for (n, cause) in causes.iter().enumerate() {
            match causes.len() {
                1 => report.push_str(&format!("    {cause}\n")),
                _ => report.push_str(&format!("    {n}: {cause}\n")),
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::error_report;

    #[test]
    fn an_error_is_reported_as_wasmtime_reports_one() {
        assert_eq!(error_report(&anyhow::anyhow!("alone")), "Error: alone\n");
        let one = anyhow::anyhow!("the cause").context("the error");
        assert_eq!(error_report(&one), "Error: the error\n\nCaused by:\n    the cause\n");
        let two = anyhow::anyhow!("root").context("middle").context("top");
        assert_eq!(error_report(&two), "Error: top\n\nCaused by:\n    0: middle\n    1: root\n");
    }
}
