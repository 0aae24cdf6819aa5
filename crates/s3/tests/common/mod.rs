//! Test fixtures for the runtime layer: a trivial service (large-body generator, body
//! counter, stalled body, bridged variants) and a minimal raw HTTP/1.1 client.
#![allow(dead_code)]

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hugbucket_s3::auth::{BodyPlan, VerifyingBody};
use hugbucket_s3::runtime::bridge::{Bridge, ByteStream, request_body};
use hugbucket_s3::runtime::{BoxError, Handler, HandlerFactory, ResponseBody, full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 1024 repetitions of 0..251: slices of it continue the `offset % 251` pattern.
pub fn pattern() -> Bytes {
    Bytes::from(
        (0..251u32 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Generates `remaining` bytes of the pattern in ~256 KiB frames.
struct Gen {
    remaining: u64,
    pattern: Bytes,
}

impl Body for Gen {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = (self.pattern.len() as u64).min(self.remaining) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.pattern.slice(..n)))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}

/// Sends one frame, then never makes progress again (and never wakes).
struct Stalled {
    sent: bool,
}

impl Body for Stalled {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sent {
            return Poll::Pending;
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(1 << 20)
    }
}

fn size_from(path: &str, prefix: &str) -> u64 {
    path.strip_prefix(prefix)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn core_stream(size: u64, pattern: Bytes) -> ByteStream {
    let n = pattern.len() as u64;
    let pieces = size.div_ceil(n);
    Box::pin(futures_util::stream::iter((0..pieces).map(move |i| {
        let len = n.min(size - i * n) as usize;
        Ok(pattern.slice(..len))
    })))
}

/// The fixture service. `core` (a tokio runtime standing in for the gateway core's) is
/// used by the `/bridge*` routes.
pub fn fixture_factory(core: Option<tokio::runtime::Handle>) -> HandlerFactory {
    Arc::new(move |_core| {
        let pattern = pattern();
        let core = core.clone();
        let bridge = core.clone().map(Bridge::new);
        let h: Handler = Rc::new(move |req: Request<hyper::body::Incoming>| {
            let pattern = pattern.clone();
            let bridge = bridge.clone();
            let core = core.clone();
            Box::pin(async move {
                let path = req.uri().path().to_string();
                let body: ResponseBody = if let Some(rest) = path.strip_prefix("/big/") {
                    Gen {
                        remaining: rest.parse().unwrap_or(0),
                        pattern,
                    }
                    .boxed_unsync()
                } else if path == "/stall" {
                    Stalled { sent: false }.boxed_unsync()
                } else if path == "/count" {
                    let mut body = req.into_body();
                    let mut n = 0u64;
                    while let Some(f) = body.frame().await {
                        match f {
                            Ok(f) => n += f.into_data().map(|d| d.len() as u64).unwrap_or(0),
                            Err(_) => {
                                return Response::builder()
                                    .status(400)
                                    .body(full("body error"))
                                    .unwrap();
                            }
                        }
                    }
                    full(n.to_string())
                } else if path.starts_with("/bridge/") {
                    let size = size_from(&path, "/bridge/");
                    let b = bridge.expect("bridge configured");
                    b.response_body(core_stream(size, pattern), Some(size))
                        .map_err(BoxError::from)
                        .boxed_unsync()
                } else if path == "/bridge-put" {
                    let core = core.expect("core runtime configured");
                    let verifying =
                        VerifyingBody::new(req.into_body(), BodyPlan::unchecked(u64::MAX));
                    let (pump, mut stream) = request_body(verifying);
                    let call = hugbucket_core::spawn_abortable(&core, async move {
                        let on_tokio = tokio::runtime::Handle::try_current().is_ok();
                        let mut n = 0u64;
                        while let Some(x) = stream.next().await {
                            match x {
                                Ok(b) => n += b.len() as u64,
                                Err(e) => return Err(e.to_string()),
                            }
                        }
                        Ok((n, on_tokio))
                    });
                    let ((), r) = futures_util::future::join(pump, call).await;
                    match r {
                        Ok(Ok((n, on_tokio))) => full(format!("{n} {on_tokio}")),
                        other => full(format!("error {other:?}")),
                    }
                } else {
                    full("ok")
                };
                Response::new(body)
            })
        });
        h
    })
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<u64>,
    pub raw: String,
}

/// Reads a response head; returns it and the bytes read past it.
pub async fn read_head(s: &mut TcpStream) -> std::io::Result<(Head, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let raw = String::from_utf8_lossy(&buf[..pos]).to_string();
            let status = raw
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let content_length = raw.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            });
            let rest = buf[pos + 4..].to_vec();
            return Ok((
                Head {
                    status,
                    content_length,
                    raw,
                },
                rest,
            ));
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in head",
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// GETs `path` and reads the whole body, checking the pattern at sampled offsets.
pub async fn get_pattern(addr: std::net::SocketAddr, path: &str) -> std::io::Result<u64> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await?;
    let (head, rest) = read_head(&mut s).await?;
    assert_eq!(head.status, 200, "{}", head.raw);
    let want = head.content_length.expect("content-length");
    let mut got = rest.len() as u64;
    let mut buf = vec![0u8; 256 << 10];
    while got < want {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("eof after {got} of {want}"),
            ));
        }
        assert_eq!(buf[0], (got % 251) as u8, "pattern mismatch at {got}");
        assert_eq!(
            buf[n - 1],
            ((got + n as u64 - 1) % 251) as u8,
            "pattern mismatch at {}",
            got + n as u64 - 1
        );
        got += n as u64;
    }
    Ok(got)
}

/// Opens a connection, asks for a large body, reads a little and drops the socket.
pub async fn abrupt(addr: std::net::SocketAddr, size: u64) {
    if let Ok(mut s) = TcpStream::connect(addr).await {
        let _ = s
            .write_all(format!("GET /big/{size} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await;
        let mut buf = vec![0u8; 64 << 10];
        let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        drop(s);
    }
}

/// Opens a connection, pipelines a few small requests and resets it without reading.
pub async fn burst_small(addr: std::net::SocketAddr) {
    if let Ok(mut s) = TcpStream::connect(addr).await {
        let _ = s.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\nGET /big/1048576 HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        drop(s);
    }
}
