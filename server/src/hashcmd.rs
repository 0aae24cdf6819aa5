//! `hugbucket hash FILE...`. TODO (engine issue).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `hugbucket hash`.
#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// Files to hash; `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs `hugbucket hash`.
pub fn run(_args: HashArgs) -> ExitCode {
    eprintln!("hugbucket hash: not implemented yet");
    ExitCode::FAILURE
}
