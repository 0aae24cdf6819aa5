//! Configuration of `hugbucket serve`: one clap definition is the single source of truth.
//!
//! Precedence: command-line flag, then environment variable, then config file
//! (`--config`, TOML), then default. The file layer is applied by making each file key the
//! default of its option before clap parses, so environment variables and flags still win
//! and every option has exactly one name in each layer. Secrets are masked when printed.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Which front-ends `serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// S3 only.
    S3,
    /// FTP only.
    Ftp,
    /// S3 and FTP.
    Both,
}

/// Runtime of the S3 front-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// One pinned glommio (io_uring) executor per core.
    Glommio,
    /// One pinned current-thread tokio runtime per core.
    Tokio,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Anonymous FTP access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Anonymous {
    /// No anonymous login.
    Off,
    /// Anonymous users may read.
    Read,
    /// Anonymous users may read and write.
    Write,
}

/// Visibility of buckets the gateway creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BucketVisibility {
    /// Readable by the owner's namespace only.
    Private,
    /// Readable by anyone.
    Public,
}

impl BucketVisibility {
    /// The upstream client's value.
    pub fn upstream(self) -> hugbucket_upstream::Visibility {
        match self {
            Self::Private => hugbucket_upstream::Visibility::Private,
            Self::Public => hugbucket_upstream::Visibility::Public,
        }
    }
}

/// Options of `hugbucket serve` (each also settable by environment and config file).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML config file; keys are the long option names (e.g. `s3-listen = "0.0.0.0:9000"`).
    #[arg(long, env = "HUGBUCKET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Load and validate the configuration, print the effective values (secrets masked), exit.
    #[arg(long)]
    pub check_config: bool,
    /// Front-ends to run.
    #[arg(
        long,
        env = "MODE",
        value_enum,
        default_value = "both",
        ignore_case = true
    )]
    pub mode: Mode,
    /// Local state: embedded hub data, generated credentials, multipart records, cache.
    #[arg(long, env = "HUGBUCKET_DATA_DIR", default_value = "./hugbucket-data")]
    pub data_dir: PathBuf,
    /// Hugging Face token. With neither this nor --hf-endpoint, the embedded hub is used.
    /// With --hf-endpoint and no token, the token file of huggingface_hub is read
    /// (HF_TOKEN_PATH, else $HF_HOME/token, else ~/.cache/huggingface/token).
    #[arg(long, env = "HF_TOKEN", hide_env_values = true)]
    pub hf_token: Option<String>,
    /// Hub base URL (default `https://huggingface.co` when a token is given).
    #[arg(long, env = "HF_ENDPOINT")]
    pub hf_endpoint: Option<String>,
    /// Address of the embedded hub (only used without HF_TOKEN/HF_ENDPOINT).
    #[arg(long, env = "HUGBUCKET_HUB_LISTEN", default_value = "127.0.0.1:0")]
    pub hub_listen: SocketAddr,
    /// Fault injection rule for the embedded hub, `ROUTE:ACTION[:COUNT]` (repeatable; for
    /// tests; off by default). Grammar: `hugbucket hub --help` / `hugbucket_hub::faults`.
    #[arg(long = "hub-fault", value_name = "RULE")]
    pub hub_fault: Vec<String>,
    /// Lifetime of the embedded hub's fetch URLs (e.g. `2s`; default: one hour). For tests
    /// of URL expiry during downloads.
    #[arg(long, value_name = "DURATION", value_parser = hugbucket_hub::faults::parse_duration_arg)]
    pub hub_fetch_url_ttl: Option<std::time::Duration>,
    /// Visibility of buckets created through S3 CreateBucket and FTP MKD.
    #[arg(
        long,
        env = "HUGBUCKET_BUCKET_VISIBILITY",
        value_enum,
        default_value = "private",
        ignore_case = true
    )]
    pub bucket_visibility: BucketVisibility,
    /// Emulated rate limit of the embedded hub, `CLASS=QUOTA/WINDOW` with CLASS `api`,
    /// `resolvers` or `cas` (repeatable; off by default), e.g. `api=500/300s` as on
    /// huggingface.co. Grammar: `hugbucket_hub::ratelimit`.
    #[arg(
        long = "hub-rate-limit",
        value_name = "RULE",
        env = "HUGBUCKET_HUB_RATE_LIMIT",
        value_delimiter = ','
    )]
    pub hub_rate_limit: Vec<String>,
    /// Seconds a request an S3/FTP client is waiting for may wait for the Hub's rate limit
    /// to reset (429 answers) before the client gets SlowDown (S3) or 451 (FTP). Keep it
    /// below your clients' read timeout (60 s in the AWS SDKs).
    #[arg(long, env = "HUGBUCKET_RATE_LIMIT_WAIT", default_value_t = 50)]
    pub rate_limit_wait: u64,
    /// The same for background work no client waits for (default: a whole 5-minute window
    /// of the Hub, plus margin).
    #[arg(
        long,
        env = "HUGBUCKET_BACKGROUND_RATE_LIMIT_WAIT",
        default_value_t = 330
    )]
    pub background_rate_limit_wait: u64,
    /// S3 listen address.
    #[arg(long, env = "HUGBUCKET_S3_LISTEN", default_value = "0.0.0.0:9000")]
    pub s3_listen: SocketAddr,
    /// PEM certificate chain: serve HTTPS instead of HTTP on the S3 port (with
    /// --s3-tls-key). Reloaded when the files change and on SIGHUP.
    #[arg(long, env = "HUGBUCKET_S3_TLS_CERT")]
    pub s3_tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS on the S3 port.
    #[arg(long, env = "HUGBUCKET_S3_TLS_KEY")]
    pub s3_tls_key: Option<PathBuf>,
    /// Virtual-hosted-style base domain (e.g. `s3.example.com`); path style always works.
    #[arg(long, env = "HUGBUCKET_S3_DOMAIN")]
    pub s3_domain: Option<String>,
    /// S3 access key id (with --secret-access-key). Without any, a pair is generated once.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// More S3 key pairs, `KEY:SECRET` separated by commas.
    #[arg(
        long,
        env = "HUGBUCKET_CREDENTIALS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub credentials: Vec<String>,
    /// Runtime of the S3 front-end.
    #[arg(long, env = "HUGBUCKET_RUNTIME", value_enum, default_value = "glommio")]
    pub runtime: RuntimeKind,
    /// Cores to serve on (default: all available).
    #[arg(long, env = "HUGBUCKET_CORES")]
    pub cores: Option<usize>,
    /// FTP listen address.
    #[arg(long, env = "HUGBUCKET_FTP_LISTEN", default_value = "0.0.0.0:2121")]
    pub ftp_listen: SocketAddr,
    /// FTP user name.
    #[arg(long, env = "FTP_USERNAME")]
    pub ftp_username: Option<String>,
    /// FTP password.
    #[arg(long, env = "FTP_PASSWORD", hide_env_values = true)]
    pub ftp_password: Option<String>,
    /// More FTP users, `USER:PASSWORD` separated by commas.
    #[arg(
        long,
        env = "HUGBUCKET_FTP_USERS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub ftp_users: Vec<String>,
    /// Anonymous FTP access.
    #[arg(
        long,
        env = "HUGBUCKET_FTP_ANONYMOUS",
        value_enum,
        default_value = "off"
    )]
    pub ftp_anonymous: Anonymous,
    /// FTP passive port range `LOW-HIGH`.
    #[arg(long, env = "HUGBUCKET_FTP_PASSIVE_PORTS", default_value = "30000-30099", value_parser = parse_port_range)]
    pub ftp_passive_ports: RangeInclusive<u16>,
    /// Address announced for passive data connections (default: the control connection's).
    #[arg(long, env = "HUGBUCKET_FTP_PUBLIC_HOST")]
    pub ftp_public_host: Option<std::net::IpAddr>,
    /// PEM certificate chain enabling explicit FTPS (AUTH TLS), with --ftp-tls-key.
    #[arg(long, env = "HUGBUCKET_FTP_TLS_CERT")]
    pub ftp_tls_cert: Option<PathBuf>,
    /// PEM private key for FTPS.
    #[arg(long, env = "HUGBUCKET_FTP_TLS_KEY")]
    pub ftp_tls_key: Option<PathBuf>,
    /// Health, readiness and Prometheus metrics listener (`/health`, `/ready`, `/metrics`).
    #[arg(long, env = "HUGBUCKET_ADMIN_LISTEN", default_value = "0.0.0.0:9001")]
    pub admin_listen: SocketAddr,
    /// Chunk cache directory (default: DATA_DIR/cache).
    #[arg(long, env = "HUGBUCKET_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Chunk cache capacity (bytes; K/M/G/T suffixes).
    #[arg(long, env = "HUGBUCKET_CACHE_SIZE", default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// Log format.
    #[arg(
        long,
        env = "HUGBUCKET_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// Fleet mode: this node is one of several behind a load balancer, sharing buckets.
    /// File metadata is never reused from a local cache, so a GET/HEAD through this node
    /// sees a write made through any other node (one paths-info call per GET/HEAD).
    #[arg(long, env = "HUGBUCKET_FLEET")]
    pub fleet: bool,
    /// Milliseconds between the shared `/batch` calls that register multipart part
    /// entries of one bucket (a part is acknowledged once its entry is registered).
    #[arg(
        long,
        env = "HUGBUCKET_PART_RECORD_INTERVAL_MS",
        default_value_t = 1000
    )]
    pub part_record_interval_ms: u64,
    /// Seconds in-flight requests and uploads get to finish on SIGTERM/SIGINT.
    #[arg(long, env = "HUGBUCKET_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
}

/// Parses `LOW-HIGH`.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected LOW-HIGH, e.g. 30000-30009")?;
    let a: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
    if a == 0 || a > b {
        return Err(format!("empty or invalid port range {a}-{b}"));
    }
    Ok(a..=b)
}

/// Parses a byte size as given to `--cache-size`: a plain number of bytes, or a number
/// followed by `K`, `M`, `G`, `T` (powers of 1024, optionally written `KiB`, `KB`, …;
/// case-insensitive). Fractions such as `1.5G` are accepted.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid byte size {s:?}");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    if num.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = f * (1u64 << shift) as f64;
    if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

impl ServeArgs {
    /// The CPUs the thread-per-core runtimes (S3 cores, key shards) run on: the first
    /// `--cores` of the allowed ones.
    pub fn core_cpus(&self) -> Vec<usize> {
        let allowed = hugbucket_core::affinity::allowed_cpus();
        let n = self.cores.unwrap_or(allowed.len()).max(1);
        allowed.into_iter().take(n).collect()
    }

    /// Cross-option validation; the error names the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err("--access-key-id (AWS_ACCESS_KEY_ID) and --secret-access-key (AWS_SECRET_ACCESS_KEY) must be set together".into());
        }
        for c in &self.credentials {
            if !c.contains(':') {
                return Err(format!(
                    "--credentials (HUGBUCKET_CREDENTIALS): {c:?} is not KEY:SECRET"
                ));
            }
        }
        for u in &self.ftp_users {
            if !u.contains(':') {
                return Err(
                    "--ftp-users (HUGBUCKET_FTP_USERS): entries must be USER:PASSWORD".into(),
                );
            }
        }
        if self.ftp_username.is_some() != self.ftp_password.is_some() {
            return Err("--ftp-username (FTP_USERNAME) and --ftp-password (FTP_PASSWORD) must be set together".into());
        }
        if self.s3_tls_cert.is_some() != self.s3_tls_key.is_some() {
            return Err("--s3-tls-cert and --s3-tls-key must be set together".into());
        }
        if self.ftp_tls_cert.is_some() != self.ftp_tls_key.is_some() {
            return Err("--ftp-tls-cert and --ftp-tls-key must be set together".into());
        }
        for rule in &self.hub_fault {
            rule.parse::<hugbucket_hub::FaultRule>()
                .map_err(|e| format!("--hub-fault: {e}"))?;
        }
        if !self.hub_fault.is_empty() && !self.uses_embedded_hub() {
            return Err(
                "--hub-fault applies to the embedded hub only (no HF_TOKEN/HF_ENDPOINT)".into(),
            );
        }
        if self.hub_fetch_url_ttl.is_some() && !self.uses_embedded_hub() {
            return Err(
                "--hub-fetch-url-ttl applies to the embedded hub only (no HF_TOKEN/HF_ENDPOINT)"
                    .into(),
            );
        }
        for rule in &self.hub_rate_limit {
            rule.parse::<hugbucket_hub::RateLimitRule>()
                .map_err(|e| format!("--hub-rate-limit: {e}"))?;
        }
        if !self.hub_rate_limit.is_empty() && !self.uses_embedded_hub() {
            return Err(
                "--hub-rate-limit applies to the embedded hub only (no HF_TOKEN/HF_ENDPOINT)"
                    .into(),
            );
        }
        if self.cores == Some(0) {
            return Err("--cores (HUGBUCKET_CORES) must be at least 1".into());
        }
        if let Some(e) = &self.hf_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!(
                    "--hf-endpoint (HF_ENDPOINT): {e:?} is not an http(s) URL"
                ));
            }
        }
        Ok(())
    }

    /// Whether the embedded hub is the upstream.
    pub fn uses_embedded_hub(&self) -> bool {
        self.hf_token.is_none() && self.hf_endpoint.is_none()
    }

    /// The effective configuration, one `name = value` line each, secrets masked.
    pub fn describe(&self) -> String {
        let mask = |s: &Option<String>| match s {
            Some(_) => "****".to_string(),
            None => "(unset)".to_string(),
        };
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "(unset)".into());
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or("(unset)".into(), |p| p.display().to_string())
        };
        let lines = [
            ("mode", format!("{:?}", self.mode).to_lowercase()),
            ("data-dir", self.data_dir.display().to_string()),
            (
                "upstream",
                if self.uses_embedded_hub() {
                    "embedded hub".into()
                } else {
                    self.hf_endpoint
                        .clone()
                        .unwrap_or_else(|| "https://huggingface.co".into())
                },
            ),
            ("hf-token", mask(&self.hf_token)),
            ("hub-listen", self.hub_listen.to_string()),
            (
                "hub-fault",
                if self.hub_fault.is_empty() {
                    "(none)".into()
                } else {
                    self.hub_fault.join(" ")
                },
            ),
            (
                "hub-fetch-url-ttl",
                self.hub_fetch_url_ttl
                    .map_or("(default)".into(), |d| format!("{d:?}")),
            ),
            (
                "bucket-visibility",
                format!("{:?}", self.bucket_visibility).to_lowercase(),
            ),
            (
                "hub-rate-limit",
                if self.hub_rate_limit.is_empty() {
                    "(none)".into()
                } else {
                    self.hub_rate_limit.join(",")
                },
            ),
            ("rate-limit-wait", format!("{}s", self.rate_limit_wait)),
            (
                "background-rate-limit-wait",
                format!("{}s", self.background_rate_limit_wait),
            ),
            ("s3-listen", self.s3_listen.to_string()),
            ("s3-tls-cert", path(&self.s3_tls_cert)),
            ("s3-tls-key", path(&self.s3_tls_key)),
            ("s3-domain", opt(&self.s3_domain)),
            ("access-key-id", opt(&self.access_key_id)),
            ("secret-access-key", mask(&self.secret_access_key)),
            (
                "credentials",
                format!("{} extra pair(s)", self.credentials.len()),
            ),
            ("runtime", format!("{:?}", self.runtime).to_lowercase()),
            ("cores", self.cores.map_or("all".into(), |c| c.to_string())),
            ("ftp-listen", self.ftp_listen.to_string()),
            ("ftp-username", opt(&self.ftp_username)),
            ("ftp-password", mask(&self.ftp_password)),
            (
                "ftp-users",
                format!("{} extra user(s)", self.ftp_users.len()),
            ),
            (
                "ftp-anonymous",
                format!("{:?}", self.ftp_anonymous).to_lowercase(),
            ),
            (
                "ftp-passive-ports",
                format!(
                    "{}-{}",
                    self.ftp_passive_ports.start(),
                    self.ftp_passive_ports.end()
                ),
            ),
            (
                "ftp-public-host",
                self.ftp_public_host
                    .map_or("(unset)".into(), |h| h.to_string()),
            ),
            ("ftp-tls-cert", path(&self.ftp_tls_cert)),
            ("ftp-tls-key", path(&self.ftp_tls_key)),
            ("admin-listen", self.admin_listen.to_string()),
            (
                "cache-dir",
                self.cache_dir.as_ref().map_or_else(
                    || self.data_dir.join("cache").display().to_string(),
                    |p| p.display().to_string(),
                ),
            ),
            ("cache-size", self.cache_size.to_string()),
            (
                "log-format",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
            ("fleet", self.fleet.to_string()),
            (
                "part-record-interval-ms",
                self.part_record_interval_ms.to_string(),
            ),
            ("shutdown-timeout", self.shutdown_timeout.to_string()),
        ];
        lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("123").unwrap(), 123);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size(" 2 MB ").unwrap(), 2 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        for bad in ["", "G", "12X", "-1", "1.2.3M", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_port_ranges() {
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12X").is_err());
        assert!(parse_size("G").is_err());
        assert_eq!(parse_port_range("30000-30009").unwrap(), 30000..=30009);
        assert!(parse_port_range("5-1").is_err());
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("100").is_err());
    }
}
