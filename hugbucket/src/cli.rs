//! Command-line interface. Each subcommand's options live with the module that runs it.

use std::process::ExitCode;

use clap::{FromArgMatches, Parser, Subcommand};

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
    /// Run the gateway (S3 and/or FTP) on the embedded hub or on huggingface.co.
    Serve(Box<crate::config::ServeArgs>),
    /// Exit 0 when `URL` (plain http) answers 200 within 3 s: the container health probe.
    Healthcheck {
        /// e.g. `http://127.0.0.1:9001/health`.
        url: String,
    },
    /// Print the Xet file hash of each FILE (`-` for stdin), like b3sum.
    Hash(crate::hashcmd::HashArgs),
    /// Run the embedded HF-compatible Hub + Xet CAS server on its own.
    Hub(hugbucket_hub::HubArgs),
}

/// Parses the command line (with the config-file layer of `serve`) and runs the chosen
/// subcommand. Bad configuration: one line naming the option, exit code 2.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = match crate::config::command_with_config_file(&args) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("hugbucket: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = cmd.get_matches_from(args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Serve(args) => crate::serve::run(*args),
        Command::Healthcheck { url } => match crate::serve::probe(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hugbucket healthcheck: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Hash(args) => crate::hashcmd::run(args),
        Command::Hub(args) => hugbucket_hub::run(args),
    }
}
