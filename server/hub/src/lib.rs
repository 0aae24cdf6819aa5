//! The embedded HF-compatible Hub + Xet CAS server. TODO (embedded hub issue).

use std::process::ExitCode;

/// Arguments of `hugbucket hub`.
#[derive(Debug, clap::Args)]
pub struct HubArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7860")]
    pub listen: String,
}

/// Runs `hugbucket hub`.
pub fn run(_args: HubArgs) -> ExitCode {
    eprintln!("hugbucket hub: not implemented yet");
    ExitCode::FAILURE
}
