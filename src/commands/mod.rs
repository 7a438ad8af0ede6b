//! One module per `wmp` subcommand, each a clap `Args` struct with an
//! `execute()`.

#[cfg(feature = "cluster")]
pub mod agent;
pub mod cache;
pub mod compile;
pub mod inspect;
pub mod run;
pub mod wit;
