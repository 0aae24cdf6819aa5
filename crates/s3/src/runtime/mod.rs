//! Runtime layer: the hyper service written once, served thread-per-core either on pinned
//! glommio executors (default) or on pinned tokio current-thread runtimes, each core with
//! its own `SO_REUSEPORT` listener; HTTPS when [`ServeConfig::tls`] is set ([`tls`]); the
//! per-request progress watchdog; and the one bridge to the gateway core's tokio runtime
//! ([`bridge`]).
//!
//! A [`Handler`] is a `!Send` async function from request to response; a
//! [`HandlerFactory`] builds one per core, on that core's thread.

pub mod bridge;
mod conn;
mod glommio_io;
mod glommio_rt;
pub mod tls;
mod tokio_rt;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};

pub use glommio_io::{GlommioIo, GlommioTimer};

/// Boxed error of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body type of the service.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;
/// A local (non-`Send`) boxed future.
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;
/// The service: one per core, called for every request on that core.
pub type Handler = Rc<dyn Fn(Request<Incoming>) -> LocalBoxFuture<Response<ResponseBody>>>;
/// Builds a core's [`Handler`] on that core's thread (argument: core index).
pub type HandlerFactory = Arc<dyn Fn(usize) -> Handler + Send + Sync>;

/// A body with these bytes.
pub fn full(data: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(data.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ResponseBody {
    http_body_util::Empty::new()
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

/// Which runtime serves the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    /// One pinned glommio executor per core (io_uring).
    #[default]
    Glommio,
    /// One pinned tokio current-thread runtime per core.
    Tokio,
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "glommio" => Ok(Self::Glommio),
            "tokio" => Ok(Self::Tokio),
            _ => Err(format!("unknown runtime {s:?} (expected glommio or tokio)")),
        }
    }
}

/// Listener/connection settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (port 0 picks one port shared by all cores).
    pub addr: SocketAddr,
    /// CPUs to run on, one core runtime each (empty: all available CPUs).
    pub cpus: Vec<usize>,
    /// hyper's header read timeout (slowloris protection).
    pub header_read_timeout: Duration,
    /// A response that moves no bytes for this long is aborted.
    pub stall_timeout: Duration,
    /// How often the watchdog looks.
    pub watchdog_tick: Duration,
    /// hyper's read buffer bound (limits the request head size).
    pub max_buf_size: usize,
    /// Serve HTTPS with this configuration ([`tls::server_config`]); plain HTTP when unset.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 9000)),
            cpus: Vec::new(),
            header_read_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(120),
            watchdog_tick: Duration::from_secs(1),
            max_buf_size: 256 << 10,
            tls: None,
        }
    }
}

impl ServeConfig {
    pub(crate) fn cpu_list(&self) -> Vec<usize> {
        if self.cpus.is_empty() {
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            (0..n).collect()
        } else {
            self.cpus.clone()
        }
    }
}

static WATCHDOG_ABORTS: AtomicU64 = AtomicU64::new(0);

/// Responses aborted by the progress watchdog since start (process-wide).
pub fn watchdog_aborts() -> u64 {
    WATCHDOG_ABORTS.load(Ordering::Relaxed)
}

/// A running server: one runtime thread per core.
pub struct Server {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    joins: Vec<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("cores", &self.joins.len())
            .finish()
    }
}

impl Server {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// Stops accepting, drops open connections and joins the core threads.
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
        for j in self.joins {
            j();
        }
    }
    /// Blocks until the server stops.
    pub fn join(self) {
        for j in self.joins {
            j();
        }
    }
}

/// Starts serving `factory`'s handlers thread-per-core on `kind`.
pub fn serve(
    kind: RuntimeKind,
    config: ServeConfig,
    factory: HandlerFactory,
) -> std::io::Result<Server> {
    match kind {
        RuntimeKind::Glommio => glommio_rt::serve(config, factory),
        RuntimeKind::Tokio => tokio_rt::serve(config, factory),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cpus_are_the_allowed_ones() {
        let cpus = ServeConfig::default().cpu_list();
        assert!(!cpus.is_empty());
        assert!(
            cpus.len()
                <= std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .max(cpus.len())
        );
        assert_eq!("tokio".parse::<RuntimeKind>().unwrap(), RuntimeKind::Tokio);
        assert!("x".parse::<RuntimeKind>().is_err());
    }
}
