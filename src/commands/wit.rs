//! `wmp wit`: print the `wmp:process` WIT package guests import.

/// Print the wmp:process WIT interface that guests import.
#[derive(clap::Args)]
pub struct WitCommand {}

impl WitCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        print!("{}", wmp_host::WIT);
        Ok(())
    }
}
