//! `hugbucket serve`: the gateway. Starts the upstream (the embedded hub unless HF_TOKEN /
//! HF_ENDPOINT say otherwise), the core, the front-ends chosen by MODE and the admin
//! listener (`/health`, `/ready`, `/metrics`), then waits for SIGTERM/SIGINT and shuts down
//! gracefully. TLS certificates are reloaded on SIGHUP and when their files change.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hugbucket_core::{CoreConfig, Gateway};
use hugbucket_tls::CertStore;
use hugbucket_upstream::{HubClient, UpstreamConfig};
use tokio::sync::watch;

use crate::config::{LogFormat, ServeArgs};
use crate::credentials::credentials;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // libunftp logs whole session states at info; the embedded hub logs every request.
        tracing_subscriber::EnvFilter::new(
            "info,sled=warn,libunftp=warn,hugbucket_hub::server=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// The running upstream: its URL, the token to use, and the embedded hub if we started one.
struct Upstream {
    endpoint: String,
    token: Option<String>,
    embedded: Option<hugbucket_hub::RunningHub>,
}

async fn start_upstream(args: &ServeArgs) -> anyhow::Result<Upstream> {
    if !args.uses_embedded_hub() {
        let endpoint = args
            .hf_endpoint
            .clone()
            .unwrap_or_else(|| "https://huggingface.co".into());
        tracing::info!(%endpoint, "using the Hugging Face Hub");
        // HF_TOKEN (the flag's env) first, then huggingface_hub's token file.
        let token = args
            .hf_token
            .clone()
            .or_else(hugbucket_upstream::discover_hf_token);
        if token.is_none() {
            tracing::warn!("no Hub token (HF_TOKEN or a token file): anonymous access only");
        }
        return Ok(Upstream {
            endpoint,
            token,
            embedded: None,
        });
    }
    let dir = args.data_dir.join("hub");
    let mut config = hugbucket_hub::HubConfig::new(args.hub_listen, dir.clone());
    for rule in &args.hub_fault {
        config.faults.push(
            rule.parse()
                .map_err(|e| anyhow::anyhow!("--hub-fault: {e}"))?,
        );
    }
    if !config.faults.is_empty() {
        tracing::warn!(rules = ?args.hub_fault, "fault injection enabled in the embedded hub");
    }
    config.fetch_url_ttl = args.hub_fetch_url_ttl;
    for rule in &args.hub_rate_limit {
        config.rate_limits.push(
            rule.parse()
                .map_err(|e| anyhow::anyhow!("--hub-rate-limit: {e}"))?,
        );
    }
    if !config.rate_limits.is_empty() {
        tracing::info!(rules = ?args.hub_rate_limit, "rate limits emulated by the embedded hub");
    }
    let hub = hugbucket_hub::start(config)
        .await
        .with_context(|| format!("starting the embedded hub in {}", dir.display()))?;
    tracing::info!(
        url = %hub.url(),
        data_dir = %dir.display(),
        "no HF_TOKEN/HF_ENDPOINT: using the embedded hub"
    );
    // For huggingface_hub users: where the embedded hub is (the token is not printed).
    println!(
        "Embedded hub: HF_ENDPOINT={} (HF_TOKEN in {})",
        hub.url(),
        dir.join("hub_token").display()
    );
    Ok(Upstream {
        endpoint: hub.url(),
        token: Some(hub.token().to_string()),
        embedded: Some(hub),
    })
}

/// Shared state of the admin endpoints.
struct Admin {
    gateway: Gateway,
    /// Every metric family (`/metrics`).
    metrics: crate::metrics::Metrics,
}

async fn admin_response(admin: &Admin, path: &str) -> (u16, &'static str, String) {
    match path {
        "/health" => (200, "text/plain", "ok\n".into()),
        // Ready = the upstream answers an uncached, authenticated call.
        "/ready" => {
            match tokio::time::timeout(Duration::from_secs(5), admin.gateway.list_buckets()).await {
                Ok(Ok(_)) => (200, "text/plain", "ready\n".into()),
                Ok(Err(e)) => (503, "text/plain", format!("upstream not ready: {e}\n")),
                Err(_) => (503, "text/plain", "upstream not ready: timeout\n".into()),
            }
        }
        "/metrics" => (200, crate::metrics::CONTENT_TYPE, admin.metrics.encode()),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

async fn serve_admin(
    listener: tokio::net::TcpListener,
    admin: Arc<Admin>,
    mut stop: watch::Receiver<bool>,
) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let admin = admin.clone();
                async move {
                    let (status, ctype, body) = admin_response(&admin, req.uri().path()).await;
                    let resp = hyper::Response::builder()
                        .status(status)
                        .header("content-type", ctype)
                        .body(Full::new(bytes::Bytes::from(body)))
                        .expect("static response parts");
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// How often the TLS certificate files are checked for changes.
const CERT_POLL: Duration = Duration::from_secs(2);

/// The process signals `serve` handles, registered before it reports ready.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT. SIGHUP (systemd's `ExecReload`) reloads the TLS
    /// certificates and keeps waiting.
    async fn wait_for_stop(&mut self, certificates: &[Arc<CertStore>]) {
        loop {
            tokio::select! {
                _ = self.term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    return;
                }
                _ = self.int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    return;
                }
                _ = self.hup.recv() => {
                    tracing::info!(certificates = certificates.len(), "SIGHUP: reloading");
                    for store in certificates {
                        if let Err(e) = store.reload() {
                            tracing::warn!(error = %e, "TLS certificate reload failed; serving the previous one");
                        }
                    }
                }
            }
        }
    }
}

/// Reloads each certificate whose files changed, every [`CERT_POLL`], until `stop`.
async fn watch_certificates(certificates: Vec<Arc<CertStore>>, mut stop: watch::Receiver<bool>) {
    if certificates.is_empty() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CERT_POLL) => {}
            _ = stop.changed() => return,
        }
        let stores = certificates.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for store in &stores {
                if let Err(e) = store.reload_if_changed() {
                    tracing::warn!(error = %e, "TLS certificate changed but does not load; serving the previous one");
                }
            }
        })
        .await;
    }
}

async fn run_async(args: ServeArgs) -> anyhow::Result<()> {
    let upstream = start_upstream(&args).await?;
    let mut upstream_config = UpstreamConfig::default();
    upstream_config.retry.rate_limit_budget = Duration::from_secs(args.rate_limit_wait);
    upstream_config.retry.background_rate_limit_budget =
        Duration::from_secs(args.background_rate_limit_wait);
    let hub = HubClient::new(&upstream.endpoint, upstream.token.clone(), upstream_config)
        .context("building the upstream client")?;
    let mut core = CoreConfig::new(args.data_dir.clone());
    core.cache_dir = Some(
        args.cache_dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("cache")),
    );
    core.cache_capacity = args.cache_size;
    core.key_shard_cpus = args.core_cpus();
    core.bucket_visibility = args.bucket_visibility.upstream();
    if args.fleet {
        // Another node may have written any key a moment ago: no metadata reuse.
        core.metadata_ttl = Duration::ZERO;
    }
    core.part_record_interval = Duration::from_millis(args.part_record_interval_ms);
    let gateway = Gateway::new(core, hub)
        .await
        .context("opening the gateway state and chunk cache")?;
    let credentials = credentials(&args)?;
    let embedded = upstream.embedded;

    let (stop_tx, stop_rx) = watch::channel(false);
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("--admin-listen {}", args.admin_listen))?;
    let admin_addr: SocketAddr = admin_listener.local_addr()?;
    tracing::info!(%admin_addr, "admin endpoints /health /ready /metrics");
    let admin = Arc::new(Admin {
        gateway: gateway.clone(),
        // The hub's counters, not the hub: serve shuts the hub down by value.
        metrics: crate::metrics::Metrics::new(
            &gateway,
            embedded.as_ref().map(|h| h.shared_stats()),
        ),
    });
    let admin_task = tokio::spawn(serve_admin(admin_listener, admin.clone(), stop_rx.clone()));

    // Housekeeping: multipart uploads past their expiry are cleaned at start and every
    // hour; the chunk cache's recency is persisted every minute.
    let house_gw = gateway.clone();
    let mut house_stop = stop_rx.clone();
    let expiry_task = tokio::spawn(async move {
        let mut tick = 0u64;
        loop {
            if tick % 60 == 0 {
                match house_gw.expire_multipart().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "expired multipart uploads"),
                    Err(e) => tracing::warn!(error = %e, "multipart expiry"),
                }
            }
            if let Some(cache) = house_gw.cache() {
                let cache = cache.clone();
                let _ = tokio::task::spawn_blocking(move || cache.flush()).await;
            }
            tick += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = house_stop.changed() => return,
            }
        }
    });

    let mut fronts =
        crate::frontends::start(&args, &credentials, gateway.clone(), stop_rx.clone()).await?;
    if let Some(stats) = &fronts.s3_stats {
        admin.metrics.add_s3(stats);
    }
    let cert_task = tokio::spawn(watch_certificates(
        fronts.certificates.clone(),
        stop_rx.clone(),
    ));
    let mut signals = Signals::register().context("installing signal handlers")?;
    println!("hugbucket is ready");

    signals.wait_for_stop(&fronts.certificates).await;
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(args.shutdown_timeout);
    if tokio::time::timeout(grace, fronts.wait()).await.is_err() {
        tracing::warn!(
            seconds = args.shutdown_timeout,
            "shutdown timeout: abandoning in-flight requests"
        );
    }
    let _ = admin_task.await;
    let _ = expiry_task.await;
    let _ = cert_task.await;
    if let Some(cache) = gateway.cache() {
        if let Err(e) = cache.flush() {
            tracing::warn!(error = %e, "flushing the chunk cache");
        }
    }
    if let Some(hub) = embedded {
        hub.shutdown().await;
        tracing::info!("embedded hub stopped");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs `hugbucket serve`.
pub fn run(args: ServeArgs) -> ExitCode {
    if let Err(e) = args.validate() {
        eprintln!("hugbucket serve: {e}");
        return ExitCode::from(2);
    }
    if args.check_config {
        print!("{}", args.describe());
        return ExitCode::SUCCESS;
    }
    init_logging(args.log_format);
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("hugbucket-core")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hugbucket serve: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hugbucket serve: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// GETs a plain-http `url` and succeeds on status 200 (the container health probe; no
/// HTTP client dependency, no TLS).
pub fn probe(url: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let timeout = Duration::from_secs(3);
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).map_err(|e| format!("{url}: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    if line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "{url}: {}",
            line.lines().next().unwrap_or("no answer")
        ))
    }
}
