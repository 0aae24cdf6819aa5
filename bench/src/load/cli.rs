//! Command line of `hugbucket-bench` and its entry point.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::ftp::{self, FtpConfig, FtpMode, FtpOp};
use super::report::Report;
use super::s3::{self, S3Config, S3Mode, S3Op};
use super::spec::{Mix, SizeSpec, parse_duration};
use super::{Limit, LoadError};

const AFTER_HELP: &str = "\
Exit status: 0 when every operation succeeded, 1 when any failed (errors > 0), 2 when the
run could not be set up (bad arguments, unreachable server, failed preparation).

Object data is the BLAKE3 XOF of (--seed, key), so `get --verify` (or `retr --verify`)
recomputes what `put` wrote; use --no-prepare to read the objects of an earlier put run
with the same --prefix/--dir, --size and --seed.

JSON report (--json FILE), stable field names:
  tool, protocol (s3|ftp), mode, target, concurrency, size_min, size_max, seed, verify,
  duration_s (measured phase only), ops (successful operations), ops_per_s, bytes,
  mib_per_s, errors (failed operations), error_samples (first few messages),
  latency_ms {p50, p90, p99, max, mean} or null,
  by_op {<op>: {ops, ops_per_s, bytes, mib_per_s, errors, latency_ms}}
  (ops: put, get, list, delete, multipart, part, stor, retr; multipart `part` entries
  are not added to the totals).";

/// Warp-style load generator for the HugBucket S3 and FTP front-ends.
#[derive(Debug, Parser)]
#[command(name = "hugbucket-bench", version, after_long_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Load an S3 endpoint (SigV4, path style).
    S3(S3Args),
    /// Load an FTP server (parallel sessions, passive mode, binary type).
    Ftp(FtpArgs),
}

/// Options shared by both protocols.
#[derive(Debug, Args)]
struct Common {
    /// Object size: fixed (`4KiB`) or uniform over a range (`1MiB-4MiB`).
    #[arg(long)]
    size: Option<SizeSpec>,
    /// Length of the measured phase (`30s`, `500ms`, `2m`); default 10s unless --ops.
    #[arg(long, value_parser = parse_duration, conflicts_with = "ops")]
    duration: Option<Duration>,
    /// Stop after this many operations instead of a duration.
    #[arg(long)]
    ops: Option<u64>,
    /// How many objects get/mixed/list (S3) or retr/mixed (FTP) upload first and read
    /// (default 100); for put/multipart/stor, wrap the written names modulo this.
    #[arg(long)]
    objects: Option<u64>,
    /// Do not upload the objects first: read those an earlier run wrote.
    #[arg(long)]
    no_prepare: bool,
    /// Check every byte read against the expected data (mismatches count as errors).
    #[arg(long)]
    verify: bool,
    /// Seed of the generated object data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Timeout of one operation.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    timeout: Duration,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Allow a non-loopback target.
    #[arg(long)]
    allow_remote: bool,
    /// Client runtime worker threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
}

impl Common {
    fn limit(&self) -> Limit {
        match (self.ops, self.duration) {
            (Some(n), _) => Limit::Ops(n),
            (None, Some(d)) => Limit::Duration(d),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        }
    }
}

#[derive(Debug, Args)]
struct S3Args {
    /// S3 endpoint, `http://host:port`.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    /// Access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    /// Secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    /// Bucket.
    #[arg(long)]
    bucket: String,
    /// Create the bucket first (an existing one is fine).
    #[arg(long)]
    create_bucket: bool,
    /// What to do.
    #[arg(long, value_enum, default_value = "put")]
    mode: S3Mode,
    /// Parallel requests (and keep-alive connections).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Key prefix.
    #[arg(long, default_value = "bench/")]
    prefix: String,
    /// Operation weights of `--mode mixed`.
    #[arg(long, default_value = "put=30,get=60,list=5,delete=5")]
    mix: Mix<S3Op>,
    /// Part size of `--mode multipart`.
    #[arg(long, default_value = "64MiB")]
    part_size: SizeSpec,
    /// Page size of ListObjectsV2 (list and mixed modes list every page).
    #[arg(long, default_value_t = 1000)]
    max_keys: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct FtpArgs {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Control port.
    #[arg(long, default_value_t = 2121)]
    port: u16,
    /// User name.
    #[arg(long, env = "FTP_USERNAME")]
    user: String,
    /// Password.
    #[arg(long, env = "FTP_PASSWORD", hide_env_values = true)]
    password: String,
    /// Directory of the files: `/bucket` or `/bucket/prefix`.
    #[arg(long)]
    dir: String,
    /// MKD the directory and its parents first (errors ignored).
    #[arg(long)]
    create_dir: bool,
    /// What to do.
    #[arg(long, value_enum, default_value = "stor")]
    mode: FtpMode,
    /// Parallel sessions (control connections).
    #[arg(long, default_value_t = 16)]
    sessions: usize,
    /// Operation weights of `--mode mixed`.
    #[arg(long, default_value = "stor=50,retr=50")]
    mix: Mix<FtpOp>,
    /// Use PASV instead of EPSV for data connections.
    #[arg(long)]
    pasv: bool,
    #[command(flatten)]
    common: Common,
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, LoadError> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build().map_err(LoadError::Runtime)
}

fn execute(cli: Cli) -> Result<Report, LoadError> {
    let (report, json) = match cli.cmd {
        Cmd::S3(a) => {
            let part_size = a.part_size.min;
            if a.part_size.min != a.part_size.max {
                return Err(LoadError::Usage("--part-size must be a single size".into()));
            }
            let cfg = S3Config {
                endpoint: a.endpoint,
                allow_remote: a.common.allow_remote,
                access_key: a.access_key,
                secret_key: a.secret_key,
                bucket: a.bucket,
                create_bucket: a.create_bucket,
                mode: a.mode,
                size: a.common.size.unwrap_or(SizeSpec::fixed(4096)),
                concurrency: a.concurrency,
                limit: a.common.limit(),
                prefix: a.prefix,
                mix: a.mix,
                objects: a.common.objects,
                no_prepare: a.common.no_prepare,
                part_size,
                max_keys: a.max_keys,
                verify: a.common.verify,
                seed: a.common.seed,
                timeout: a.common.timeout,
                quiet: a.common.quiet,
            };
            let rt = runtime(a.common.threads)?;
            (rt.block_on(s3::run(cfg))?, a.common.json)
        }
        Cmd::Ftp(a) => {
            let cfg = FtpConfig {
                host: a.host,
                port: a.port,
                allow_remote: a.common.allow_remote,
                user: a.user,
                password: a.password,
                dir: a.dir,
                create_dir: a.create_dir,
                mode: a.mode,
                size: a.common.size.unwrap_or(SizeSpec::fixed(1 << 20)),
                sessions: a.sessions,
                limit: a.common.limit(),
                mix: a.mix,
                objects: a.common.objects,
                no_prepare: a.common.no_prepare,
                verify: a.common.verify,
                seed: a.common.seed,
                timeout: a.common.timeout,
                pasv: a.pasv,
                quiet: a.common.quiet,
            };
            let rt = runtime(a.common.threads)?;
            (rt.block_on(ftp::run(cfg))?, a.common.json)
        }
    };
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| LoadError::Setup(format!("JSON report: {e}")))?;
        std::fs::write(&path, text + "\n").map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(report)
}

/// Parses the command line, runs, prints the report; returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(report) => {
            print!("{}", report.to_text());
            i32::from(report.errors > 0)
        }
        Err(e) => {
            eprintln!("hugbucket-bench: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_s3_and_ftp_arguments() {
        let cli = Cli::try_parse_from([
            "hugbucket-bench",
            "s3",
            "--access-key",
            "k",
            "--secret-key",
            "s",
            "--bucket",
            "b",
            "--mode",
            "get",
            "--size",
            "1MiB-4MiB",
            "--ops",
            "5",
            "--verify",
        ])
        .unwrap();
        let Cmd::S3(a) = cli.cmd else {
            panic!("not s3")
        };
        assert_eq!(a.mode, S3Mode::Get);
        assert_eq!(a.common.limit(), Limit::Ops(5));
        assert_eq!(a.common.size.unwrap().max, 4 << 20);
        assert_eq!(a.part_size, SizeSpec::fixed(64 << 20));
        let cli = Cli::try_parse_from([
            "hugbucket-bench",
            "ftp",
            "--user",
            "u",
            "--password",
            "p",
            "--dir",
            "/b/p",
            "--duration",
            "3s",
        ])
        .unwrap();
        let Cmd::Ftp(a) = cli.cmd else {
            panic!("not ftp")
        };
        assert_eq!(a.common.limit(), Limit::Duration(Duration::from_secs(3)));
        assert_eq!(a.sessions, 16);
        // --duration and --ops exclude each other; bad sizes are refused.
        assert!(
            Cli::try_parse_from([
                "hugbucket-bench",
                "ftp",
                "--user",
                "u",
                "--password",
                "p",
                "--dir",
                "/b",
                "--duration",
                "3s",
                "--ops",
                "3",
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "hugbucket-bench",
                "ftp",
                "--user",
                "u",
                "--password",
                "p",
                "--dir",
                "/b",
                "--size",
                "3Q",
            ])
            .is_err()
        );
    }
}
