//! Command-line interface. Each subcommand's options live with the module that runs it.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// S3 and FTP gateway to Hugging Face Storage Buckets.
#[derive(Debug, Parser)]
#[command(name = "hugbucket", version, about)]
pub struct Cli {
    /// The subcommand to run.
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
    Hub(Box<hugbucket_hub::HubArgs>),
}

/// Parses the command line (with the config-file layer of `serve`) and runs the chosen
/// subcommand. Bad configuration: one line naming the option, exit code 2.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = match command_with_config_file(&args) {
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
        Command::Hub(args) => hugbucket_hub::run(*args),
    }
}

/// Finds the config file named by `--config FILE` / `--config=FILE` in `args`, else by
/// `HUGBUCKET_CONFIG`.
fn config_path(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            path = it.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--config=") {
            path = Some(PathBuf::from(v));
        }
    }
    path.or_else(|| std::env::var_os("HUGBUCKET_CONFIG").map(PathBuf::from))
}

/// Builds the clap command with the config-file layer applied: each key of the TOML file
/// becomes the default of its `serve` option, so environment variables and flags still
/// override it. Returns one error line naming the bad file or key.
pub fn command_with_config_file(args: &[std::ffi::OsString]) -> Result<clap::Command, String> {
    let cmd = Cli::command();
    let Some(path) = config_path(args) else {
        return Ok(cmd);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    let serve = cmd
        .find_subcommand("serve")
        .ok_or("internal: no serve subcommand")?;
    let mut defaults: Vec<(clap::Id, Vec<String>)> = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()) && name != "config")
            .ok_or_else(|| format!("config file {}: unknown option {key:?}", path.display()))?;
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            other => Err(format!(
                "config file {}: option {key:?} has an unsupported value {other}",
                path.display()
            )),
        };
        let values = match &value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
            v => vec![scalar(v)?],
        };
        defaults.push((arg.get_id().clone(), values));
    }
    Ok(cmd.mut_subcommand("serve", |mut s| {
        for (id, values) in defaults {
            s = s.mut_arg(id, |a| a.default_values(values));
        }
        s
    }))
}
