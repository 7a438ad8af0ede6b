//! `wmp agent` (feature `cluster`): the node agent that a runtime's
//! cluster starts on a node through Ray. Not for people to run: its
//! runtime writes its command line.

use wmp_host::agent::{AgentOptions, run_agent};

/// Serve a runtime's processes on this node (started through Ray by that runtime).
#[derive(clap::Args)]
pub struct AgentCommand {
    /// The runtime's address, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// The SHA-256 of the runtime's certificate, in hex.
    #[arg(long, value_name = "HEX")]
    pin: String,
    /// Names the token to the runtime.
    #[arg(long, value_name = "ID")]
    token_id: String,
    /// The one-time token, in hex.
    #[arg(long, value_name = "HEX")]
    token: String,
}

impl AgentCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let AgentCommand { connect, pin, token_id, token } = self;
        run_agent(&AgentOptions { connect, pin, token_id, token })?;
        Ok(())
    }
}
