//! The embedded HF-compatible Hub (bucket API) + Xet CAS server: persisted, verifying.
//!
//! Library use (what `hugbucket serve` and other crates' tests do):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let dir = std::path::PathBuf::from("/tmp/hub-data");
//! let hub = hugbucket_hub::start(hugbucket_hub::HubConfig::new("127.0.0.1:0".parse()?, dir)).await?;
//! let endpoint = hub.url();            // e.g. http://127.0.0.1:41234 (HF_ENDPOINT)
//! let token = hub.token().to_string(); // Hub token (HF_TOKEN)
//! # let _ = (endpoint, token);
//! hub.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! One port serves the Hub API (`/api/...`, `/buckets/.../resolve/...`), the CAS API
//! (`/v1/...`, `/v2/...`; `casUrl` = the hub's own base URL) and signed xorb fetch URLs
//! (`/fetch/xorbs/{hash}?X-Xet-Signed-Range=..&Expires=..&Signature=..`, each valid for
//! exactly the byte ranges it was issued for). Counters: `GET /api/_hugbucket/stats`.
//!
//! Access follows the Hub: a bucket created without `visibility` is public; a private
//! bucket is visible only to tokens of its namespace (anonymous callers get 401, other
//! users' tokens 404, both `X-Error-Code: RepoNotFound`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub mod auth;
pub mod body;
mod cas;
mod ctx;
pub mod error;
pub mod faults;
mod hubapi;
pub mod ratelimit;
pub mod request;
mod server;
pub mod stats;
pub mod store;
mod util;
pub mod xorbfiles;

pub use error::HubError;
pub use faults::{FaultRule, Faults};
pub use ratelimit::RateLimitRule;
pub use stats::{Route, Stats};

use auth::Keys;
use store::{Meta, SledKv};
use xorbfiles::XorbFiles;

/// Arguments of `hugbucket hub`.
#[derive(Debug, clap::Args)]
pub struct HubArgs {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:7860")]
    pub listen: SocketAddr,
    /// Directory holding xorbs, metadata and secrets (created if missing).
    #[arg(long, default_value = "hugbucket-data")]
    pub data_dir: PathBuf,
    /// Accepted Hub token (repeatable). Without any, one is generated at first start, stored
    /// in the data dir and printed.
    #[arg(long = "token", env = "HUGBUCKET_HUB_TOKENS", value_delimiter = ',')]
    pub tokens: Vec<String>,
    /// User name answered by whoami and used for the `me` namespace.
    #[arg(long, default_value = "hugbucket")]
    pub namespace: String,
    /// Lifetime of xet access tokens and fetch URLs, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
    /// Base URL clients reach this hub at (default: from each request's Host header).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Fault injection rule `ROUTE:ACTION[:COUNT]` (repeatable; off without any). ROUTE is a
    /// route name as in the stats endpoint or `*`; ACTION is a status (`503`), `delay=200ms`,
    /// `reset=BYTES`, `truncate=BYTES`, `trickle=BYTES_PER_S` or `expired` (see
    /// `hugbucket_hub::faults`).
    #[arg(long = "fault", alias = "faults")]
    pub faults: Vec<String>,
    /// Another user, `NAMESPACE:TOKEN` (repeatable): its token acts for that namespace only,
    /// so private buckets of other namespaces are invisible to it (for access tests).
    #[arg(long = "user", value_name = "NS:TOKEN")]
    pub users: Vec<String>,
    /// Lifetime of fetch URLs (e.g. `2s`, `500ms`; default: --token-ttl). Short values
    /// emulate presigned URLs expiring during a download.
    #[arg(long, value_parser = faults::parse_duration_arg)]
    pub fetch_url_ttl: Option<Duration>,
    /// Report a batch `deleteFile` of a missing path as a failed operation ("not found")
    /// instead of a success.
    #[arg(long)]
    pub strict_deletes: bool,
    /// Emulated rate limit `CLASS=QUOTA/WINDOW` (repeatable; off without any), with the
    /// real Hub's `RateLimit` / `RateLimit-Policy` / `Retry-After` headers and 429s. CLASS is
    /// `api`, `resolvers` or `cas`; e.g. `api=500/300s` (see `hugbucket_hub::ratelimit`).
    #[arg(long = "rate-limit", value_name = "RULE")]
    pub rate_limits: Vec<String>,
}

/// Configuration of a hub instance.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Address to bind (port 0 allowed).
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Accepted Hub tokens; empty = generate/load one from the data dir.
    pub tokens: Vec<String>,
    /// whoami name and `me` namespace.
    pub namespace: String,
    /// Xet token / fetch URL lifetime.
    pub token_ttl: Duration,
    /// Base URL for generated URLs (default: from the Host header).
    pub public_url: Option<String>,
    /// Fault rules.
    pub faults: Vec<FaultRule>,
    /// Other users: `(namespace, token)`. The main tokens act for `namespace` and every
    /// namespace not listed here (as a member of every organisation).
    pub users: Vec<(String, String)>,
    /// Fetch URL lifetime (default: `token_ttl`).
    pub fetch_url_ttl: Option<Duration>,
    /// A `deleteFile` of a missing path fails ("not found").
    pub strict_deletes: bool,
    /// Emulated rate limits (none by default).
    pub rate_limits: Vec<RateLimitRule>,
}

impl HubConfig {
    /// Defaults: generated token, namespace `hugbucket`, TTL 1 h, no faults.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            tokens: Vec::new(),
            namespace: "hugbucket".into(),
            token_ttl: Duration::from_secs(3600),
            public_url: None,
            faults: Vec::new(),
            users: Vec::new(),
            fetch_url_ttl: None,
            strict_deletes: false,
            rate_limits: Vec::new(),
        }
    }
}

/// Shared state of a running hub.
/// Fetch read pieces kept for reuse (a few responses' worth of `body::STREAM_PIECE`s).
const READ_PIECES: usize = 64;

pub(crate) struct Hub {
    pub namespace: String,
    pub tokens: Vec<String>,
    /// Other users' `(namespace, token)`.
    pub users: Vec<(String, String)>,
    pub token_ttl: u64,
    /// Fetch URL lifetime in milliseconds.
    pub fetch_url_ttl_ms: u64,
    pub strict_deletes: bool,
    pub public_url: Option<String>,
    pub keys: Keys,
    pub meta: Meta,
    pub xorbs: XorbFiles,
    pub stats: Arc<Stats>,
    pub faults: Faults,
    pub limits: ratelimit::Limiter,
    pub totals: store::TotalsCache,
    /// Buffers xorb fetch responses are read into, reused across fetches.
    pub read_pieces: Arc<hugbucket_engine::buffers::BufferPool>,
}

/// A started hub. Dropping it without [`RunningHub::shutdown`] aborts the server task.
pub struct RunningHub {
    addr: SocketAddr,
    hub: Arc<Hub>,
    generated_token: bool,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningHub {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://{local_addr}` (or the configured public URL): the `HF_ENDPOINT`.
    pub fn url(&self) -> String {
        self.hub
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }
    /// The first accepted Hub token (`HF_TOKEN`).
    pub fn token(&self) -> &str {
        &self.hub.tokens[0]
    }
    /// All accepted Hub tokens.
    pub fn tokens(&self) -> &[String] {
        &self.hub.tokens
    }
    /// True when the token was generated by this start (first start of the data dir).
    pub fn token_was_generated(&self) -> bool {
        self.generated_token
    }
    /// Live counters.
    pub fn stats(&self) -> &Stats {
        &self.hub.stats
    }
    /// The live counters, for holders that must not keep the hub itself alive (so that
    /// [`RunningHub::shutdown`] can take it).
    pub fn shared_stats(&self) -> Arc<Stats> {
        self.hub.stats.clone()
    }
    /// Fault rules (add some at run time with [`Faults::push`]).
    pub fn faults(&self) -> &Faults {
        &self.hub.faults
    }
    /// Stops accepting, lets in-flight requests finish (up to 10 s), flushes metadata.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = self.hub.meta.flush();
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Opens the data dir and starts serving on `config.listen`.
pub async fn start(config: HubConfig) -> anyhow::Result<RunningHub> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let keys = Keys::load_or_create(&config.data_dir).context("loading secret.key")?;
    let (tokens, generated_token) = if config.tokens.is_empty() {
        let (t, new) =
            auth::load_or_create_hub_token(&config.data_dir).context("loading hub_token")?;
        (vec![t], new)
    } else {
        (config.tokens.clone(), false)
    };
    let kv = SledKv::open(&config.data_dir.join("meta")).context("opening metadata store")?;
    let xorbs = XorbFiles::open(&config.data_dir).context("opening xorb directory")?;
    let hub = Arc::new(Hub {
        namespace: config.namespace.clone(),
        tokens,
        users: config.users.clone(),
        token_ttl: config.token_ttl.as_secs().max(1),
        fetch_url_ttl_ms: config
            .fetch_url_ttl
            .unwrap_or(config.token_ttl)
            .as_millis()
            .clamp(1, u128::from(u64::MAX)) as u64,
        strict_deletes: config.strict_deletes,
        public_url: config
            .public_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_string()),
        keys,
        meta: Meta::new(Box::new(kv)),
        xorbs,
        stats: Arc::default(),
        faults: Faults::new(config.faults.clone()),
        limits: ratelimit::Limiter::new(&config.rate_limits),
        totals: store::TotalsCache::default(),
        read_pieces: Arc::new(hugbucket_engine::buffers::BufferPool::new(READ_PIECES)),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(server::serve(listener, hub.clone(), rx));
    Ok(RunningHub {
        addr,
        hub,
        generated_token,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Runs `hugbucket hub` until SIGINT/SIGTERM.
pub fn run(args: HubArgs) -> ExitCode {
    let mut faults = Vec::new();
    for f in &args.faults {
        match f.parse::<FaultRule>() {
            Ok(r) => faults.push(r),
            Err(e) => {
                eprintln!("hugbucket hub: --fault: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut users = Vec::new();
    for u in &args.users {
        match u.split_once(':') {
            Some((ns, tok)) if !ns.is_empty() && !tok.is_empty() => {
                users.push((ns.to_string(), tok.to_string()));
            }
            _ => {
                eprintln!("hugbucket hub: --user: {u:?} is not NAMESPACE:TOKEN");
                return ExitCode::from(2);
            }
        }
    }
    let mut rate_limits = Vec::new();
    for r in &args.rate_limits {
        match r.parse::<RateLimitRule>() {
            Ok(r) => rate_limits.push(r),
            Err(e) => {
                eprintln!("hugbucket hub: --rate-limit: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let tokens_generated = args.tokens.is_empty();
    let token_file = args.data_dir.join("hub_token");
    let config = HubConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        tokens: args.tokens,
        namespace: args.namespace,
        token_ttl: Duration::from_secs(args.token_ttl),
        public_url: args.public_url,
        faults,
        users,
        fetch_url_ttl: args.fetch_url_ttl,
        strict_deletes: args.strict_deletes,
        rate_limits,
    };
    // Log to stderr unless the caller already installed a subscriber (RUST_LOG overrides).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hugbucket hub: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let hub = match start(config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("hugbucket hub: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        // Machine-readable startup lines (scripts parse these).
        println!("HF_ENDPOINT={}", hub.url());
        // A generated token is printed once (first start of the data dir); configured tokens
        // are never echoed. Its file is named on every start.
        if hub.token_was_generated() {
            println!("HF_TOKEN={}", hub.token());
        }
        if tokens_generated {
            println!("HF_TOKEN_FILE={}", token_file.display());
        }
        println!("LISTENING={}", hub.local_addr());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        tracing::info!(addr = %hub.local_addr(), "hub listening");
        wait_for_signal().await;
        tracing::info!("shutting down");
        hub.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
