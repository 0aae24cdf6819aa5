//! The FTP/FTPS front-end of HugBucket: a [libunftp] server whose storage back-end is the
//! gateway core, with paths `/<bucket>/<key>`.
//!
//! - `/` lists the buckets; `MKD /name` creates a bucket and `RMD /name` deletes an empty
//!   one; deeper `MKD` creates a folder marker, deeper `RMD` removes an empty folder.
//! - `STOR` streams the data connection into the core's put in 256 KiB reads (bounded
//!   memory); the object appears only when the whole transfer went through, so a broken
//!   transfer leaves the previous version. Stream mode ends a file with the data
//!   connection's EOF, so "went through" means: no read error (a reset, a TLS stream cut
//!   without close_notify) and the client still holds its control connection at the EOF
//!   (a killed client closes both). `REST` + `STOR` and `APPE` onto a non-empty file
//!   get 502 before any byte is read: objects are written whole. `APPE` of a new or
//!   empty file is a `STOR`.
//! - `RETR` honours `REST` with a range read, so interrupted downloads resume.
//! - libunftp keeps a `REST` offset until a transfer succeeds, so after a failed transfer
//!   that used `REST n` the next transfer at offset `n` (which may be that leftover, not a
//!   new `REST`) gets 502 instead of running at a guessed offset; a new `REST` (`REST 0`)
//!   or reconnecting clears it.
//! - `RNFR`/`RNTO` copy by content hash (no bytes move) and delete the source; folders are
//!   renamed key by key.
//! - Core errors become reply codes in one place, [`error`].
//! - Shutdown drains: new connections and new transfers are refused, transfers in flight
//!   run to their end (see `drain`), then the remaining sessions are closed.
//!
//! Start it with [`start`] (returns a handle with the bound address) or [`serve`] (runs until
//! a shutdown future resolves). It runs on the calling tokio runtime.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
mod backend;
mod drain;
pub mod error;
pub mod metrics;
mod passive;
pub mod path;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hugbucket_core::Gateway;
use libunftp::options::{FtpsRequired, PassiveHost};
use libunftp::{Server, ServerBuilder};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use auth::FtpUser;
pub use backend::{GatewayStorage, Meta};
pub use error::FtpError;

use backend::{ControlWatch, StaleRestart};
use drain::Drain;

/// Whether anonymous logins (`anonymous`, `ftp`) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// Refused (530), the default.
    #[default]
    Off,
    /// Accepted with any password; may only list and download.
    ReadOnly,
    /// Accepted with any password and may write. Only for closed networks.
    ReadWrite,
}

impl std::str::FromStr for Anonymous {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "no" | "false" | "0" => Ok(Anonymous::Off),
            "read-only" | "readonly" | "ro" | "on" | "yes" | "true" | "1" => {
                Ok(Anonymous::ReadOnly)
            }
            "read-write" | "readwrite" | "rw" => Ok(Anonymous::ReadWrite),
            other => Err(format!(
                "anonymous access must be off, read-only or read-write, not {other:?}"
            )),
        }
    }
}

/// Explicit FTPS (`AUTH TLS`) settings. The pair is loaded once by [`start`] into a
/// [`hugbucket_tls::CertStore`] ([`FtpServer::certificates`]); reloading that store
/// reaches new sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Refuse logins and transfers that are not protected by TLS.
    pub required: bool,
}

/// Configuration of the FTP front-end.
#[derive(Debug, Clone)]
pub struct FtpConfig {
    /// Control connection address (`hugbucket serve --ftp-listen`, default `0.0.0.0:2121`).
    pub listen: SocketAddr,
    /// `(user, password)` pairs that may log in with read-write access
    /// (`FTP_USERNAME` / `FTP_PASSWORD`).
    pub users: Vec<(String, String)>,
    /// Anonymous access (default off).
    pub anonymous: Anonymous,
    /// Ports for passive data connections (default 50000..=50100).
    pub passive_ports: RangeInclusive<u16>,
    /// IPv4 address announced in PASV replies (`--ftp-public-host`). Default: the address the
    /// client reached the control connection on. (EPSV replies carry only the port.)
    pub passive_host: Option<IpAddr>,
    /// Explicit FTPS when set.
    pub tls: Option<TlsConfig>,
    /// Sessions idle for longer than this are closed (default 10 minutes).
    pub idle_timeout: Duration,
    /// Wait before answering a failed login with 530 (default 500 ms).
    pub failed_login_delay: Duration,
    /// Control connections served at once; more get `421` (default 512).
    pub max_connections: usize,
    /// Greeting line.
    pub greeting: &'static str,
    /// At the end of a STOR's data, how long to watch for the client hanging up its control
    /// connection before committing the object (default 20 ms; see the crate docs).
    pub upload_commit_grace: Duration,
}

impl FtpConfig {
    /// Defaults, listening on `listen`, with no users.
    pub fn new(listen: SocketAddr) -> Self {
        FtpConfig {
            listen,
            users: Vec::new(),
            anonymous: Anonymous::Off,
            passive_ports: 50000..=50100,
            passive_host: None,
            tls: None,
            idle_timeout: Duration::from_secs(600),
            failed_login_delay: Duration::from_millis(500),
            max_connections: 512,
            greeting: "HugBucket FTP ready",
            upload_commit_grace: Duration::from_millis(20),
        }
    }

    /// Adds a user.
    pub fn with_user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    fn check(&self) -> Result<(), FtpError> {
        let bad = |m: String| {
            Err(FtpError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                m,
            )))
        };
        if self.passive_ports.is_empty() {
            return bad(format!("empty passive port range {:?}", self.passive_ports));
        }
        for (u, p) in &self.users {
            if u.is_empty() || p.is_empty() {
                return bad("FTP users need a non-empty name and password".into());
            }
        }
        if let Some(IpAddr::V6(h)) = &self.passive_host {
            return bad(format!(
                "the passive (public) host must be an IPv4 address, not {h}"
            ));
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1".into());
        }
        Ok(())
    }
}

/// A running FTP server.
#[derive(Debug)]
pub struct FtpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    certificates: Option<Arc<hugbucket_tls::CertStore>>,
}

impl FtpServer {
    /// The bound control address (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The FTPS certificate (reload it to serve new files to new sessions), when FTPS is on.
    pub fn certificates(&self) -> Option<Arc<hugbucket_tls::CertStore>> {
        self.certificates.clone()
    }

    /// Stops accepting connections and transfers, waits for the transfers in flight to end
    /// (callers bound the wait with a timeout), then closes every session.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Shared {
    config: FtpConfig,
    gateway: Gateway,
    users: auth::Users,
    passive: passive::PassivePorts,
    drain: Arc<Drain>,
    /// The FTPS server configuration (over the reloading certificate), when FTPS is on.
    tls: Option<Arc<rustls::ServerConfig>>,
}

fn invalid_input(e: impl std::fmt::Display) -> FtpError {
    FtpError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        e.to_string(),
    ))
}

/// The FTPS server configuration: what libunftp uses by default (TLS 1.2 only, since lftp
/// mishandles TLS 1.3 with session resumption; session ids and tickets for the data
/// connections' resumption), with the certificate from `certs` at each handshake.
fn ftps_config(
    certs: Arc<hugbucket_tls::CertStore>,
) -> Result<Arc<rustls::ServerConfig>, FtpError> {
    let mut config = rustls::ServerConfig::builder_with_provider(hugbucket_tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(invalid_input)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(invalid_input)?;
    Ok(Arc::new(config))
}

impl Shared {
    fn server(
        &self,
        control: std::sync::Weak<ControlWatch>,
    ) -> Result<Server<GatewayStorage, FtpUser>, FtpError> {
        let gateway = self.gateway.clone();
        let users = Arc::new(self.users.clone());
        let c = &self.config;
        let grace = c.upload_commit_grace;
        // One per session, shared by every storage instance of it.
        let restart = Arc::new(StaleRestart::default());
        let drain = self.drain.clone();
        let mut b = ServerBuilder::with_user_detail_provider(
            Box::new(move || {
                GatewayStorage::new(
                    gateway.clone(),
                    control.clone(),
                    grace,
                    restart.clone(),
                    drain.clone(),
                )
            }),
            users.clone(),
        )
        .authenticator(users)
        .greeting(c.greeting)
        .passive_ports(c.passive_ports.clone())
        .binder(self.passive.clone())
        .idle_session_timeout(c.idle_timeout.as_secs().max(1));
        if let Some(IpAddr::V4(ip)) = c.passive_host {
            b = b.passive_host(PassiveHost::Ip(ip));
        }
        if let (Some(tls), Some(server_config)) = (&c.tls, &self.tls) {
            // (libunftp's `ftps_manual` has a type parameter it does not use.)
            b = b.ftps_manual::<PathBuf>(server_config.clone());
            if tls.required {
                b = b.ftps_required(FtpsRequired::All, FtpsRequired::All);
            }
        }
        b.build().map_err(invalid_input)
    }
}

/// Binds `config.listen` and serves FTP over `gateway` until [`FtpServer::shutdown`]: the
/// sessions run on the gateway's key-shard runtimes, or on the current tokio runtime when
/// it has none.
pub async fn start(config: FtpConfig, gateway: Gateway) -> Result<FtpServer, FtpError> {
    config.check()?;
    if config.users.is_empty() && config.anonymous == Anonymous::Off {
        tracing::warn!("ftp: no users configured and anonymous access is off: nobody can log in");
    }
    let users = auth::Users::new(&config);
    let certificates = match &config.tls {
        Some(t) => Some(hugbucket_tls::CertStore::load(&t.cert, &t.key).map_err(invalid_input)?),
        None => None,
    };
    let tls = certificates.clone().map(ftps_config).transpose()?;
    let shared = Arc::new(Shared {
        config,
        gateway,
        users,
        passive: passive::PassivePorts::default(),
        drain: Arc::default(),
        tls,
    });
    // Build one server up front so that a bad configuration fails here, not on the first
    // client.
    drop(shared.server(std::sync::Weak::new())?);
    let listener = TcpListener::bind(shared.config.listen).await?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    tracing::info!(%local_addr, tls = shared.config.tls.is_some(), "ftp listening");
    let task = tokio::spawn(accept_loop(listener, shared, stopped));
    Ok(FtpServer {
        local_addr,
        stop,
        task,
        certificates,
    })
}

/// Serves FTP until `shutdown` resolves.
pub async fn serve(
    config: FtpConfig,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FtpError> {
    let server = start(config, gateway).await?;
    shutdown.await;
    server.shutdown().await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    // Sessions are spread over the key shards' pinned runtimes, one after the other, when
    // the gateway has them (`serve`); else they run here.
    let runtimes = shared.gateway.shard_runtimes().to_vec();
    let mut next = 0usize;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if sessions.len() >= shared.config.max_connections {
                        tracing::warn!(%peer, "ftp: too many connections");
                        sessions.spawn(refuse(stream));
                        continue;
                    }
                    let fut = session(stream, peer, shared.clone());
                    match runtimes.get(next % runtimes.len().max(1)) {
                        Some(rt) => drop(sessions.spawn_on(fut, rt)),
                        None => drop(sessions.spawn(fut)),
                    }
                    next = next.wrapping_add(1);
                }
                Err(e) => {
                    tracing::warn!("ftp accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // Draining: no new connections (the listener closes), no new transfers; the running
    // ones end, then their final reply gets REPLY_SETTLE to reach the client. Sessions
    // whose clients quit meanwhile end by themselves; the others are closed.
    drop(listener);
    shared.drain.start();
    let transfers_done = async {
        loop {
            shared.drain.idle().await;
            tokio::time::sleep(REPLY_SETTLE).await;
            if shared.drain.in_flight() == 0 {
                return;
            }
        }
    };
    let sessions_done = async { while sessions.join_next().await.is_some() {} };
    tokio::select! {
        _ = transfers_done => {}
        _ = sessions_done => {}
    }
    // Dropping a session's server closes its control connection.
    sessions.shutdown().await;
}

/// At shutdown, how long a finished transfer's session keeps running so that its final
/// reply (sent by libunftp after the data) reaches the client.
const REPLY_SETTLE: Duration = Duration::from_millis(300);

async fn refuse(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"421 Too many connections, try again later.\r\n")
        .await;
}

async fn session(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (stream, control) = match watch_control(stream) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(%peer, "ftp: could not set up the connection: {e}");
            return;
        }
    };
    let server = match shared.server(Arc::downgrade(&control)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("ftp: could not build the session: {e}");
            return;
        }
    };
    tracing::debug!(%peer, "ftp session");
    if let Err(e) = server.service(stream).await {
        tracing::debug!(%peer, "ftp session ended: {e}");
    }
    drop(control);
}

/// Keeps a duplicate of the control socket for [`ControlWatch`].
fn watch_control(stream: TcpStream) -> std::io::Result<(TcpStream, Arc<ControlWatch>)> {
    let std = stream.into_std()?;
    let dup = std.try_clone()?;
    let stream = TcpStream::from_std(std)?;
    Ok((stream, Arc::new(ControlWatch::new(dup)?)))
}
