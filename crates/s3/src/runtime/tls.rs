//! HTTPS on the S3 port: the rustls server configuration over the shared reloading
//! certificate ([`hugbucket_tls::CertStore`]) and the handshake in front of
//! `conn::serve_connection`.
//!
//! TLS sits between the runtime's socket adapter and hyper, for both runtimes alike: the
//! accepted stream (a `hyper::rt` I/O) is seen through `TokioIo` as tokio I/O for
//! tokio-rustls, and the TLS stream through `TokioIo` again as `hyper::rt` I/O. Everything
//! after the handshake (timeouts, watchdog, the service) is the plain-HTTP path.

use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::{Either, select};
use hugbucket_tls::{CertStore, TlsError};
use hyper::rt::{Read, Timer, Write};
use hyper_util::rt::TokioIo;

use super::conn::serve_connection;
use super::{Handler, LocalBoxFuture, ServeConfig};

/// The server configuration for HTTPS: TLS 1.2 and 1.3, HTTP/1.1 by ALPN, the
/// certificate from `certs` at each handshake (so a reload reaches new connections).
pub fn server_config(certs: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(hugbucket_tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves one accepted connection: plain HTTP, or HTTPS when `cfg.tls` is set (a
/// handshake that does not finish within the header read timeout drops the connection).
pub(crate) async fn serve_accepted<I, T>(
    io: I,
    timer: T,
    handler: Handler,
    cfg: Rc<ServeConfig>,
    sleep: fn(std::time::Duration) -> LocalBoxFuture<()>,
    peer: Option<SocketAddr>,
) where
    I: Read + Write + Unpin + 'static,
    T: Timer + Send + Sync + 'static,
{
    let Some(tls) = cfg.tls.clone() else {
        return serve_connection(io, timer, handler, cfg, sleep, peer).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let handshake = acceptor.accept(TokioIo::new(io));
    let stream = match select(pin!(handshake), sleep(cfg.header_read_timeout)).await {
        Either::Left((Ok(stream), _)) => stream,
        Either::Left((Err(e), _)) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            return;
        }
        Either::Right(((), _)) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            return;
        }
    };
    serve_connection(TokioIo::new(stream), timer, handler, cfg, sleep, peer).await;
}
