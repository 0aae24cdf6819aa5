//! Command-line interface. Each subcommand's options live with the module that runs it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// S3 and FTP gateway to Hugging Face Storage Buckets.
#[derive(Debug, Parser)]
#[command(name = "hugbucket", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Xet file hash of each FILE (`-` for stdin), like b3sum.
    Hash(crate::hashcmd::HashArgs),
    /// Run the embedded HF-compatible Hub + Xet CAS server on its own.
    Hub(hugbucket_hub::HubArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Hash(args) => crate::hashcmd::run(args),
        Command::Hub(args) => hugbucket_hub::run(args),
    }
}
