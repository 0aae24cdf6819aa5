//! Passive data ports: a [`Binder`] that hands out the configured range round-robin and
//! only returns a port that is already listening.
//!
//! libunftp's own choice is a random port bound with `SO_REUSEADDR`, then `listen()`; under
//! load two sessions pick the same port, or a port still held by another transfer, and the
//! `listen()` fails with `EADDRINUSE`, which libunftp treats as fatal for the control
//! connection. Here every session takes the next port of one shared cursor (a port comes
//! back only after the whole range was used), and the socket is put in the listening state
//! before it is returned, so a busy port is skipped instead of failing the session
//! (libunftp's later `listen()` on a listening socket only sets the backlog again).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use libunftp::options::Binder;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpSocket;

/// Backlog of a data port (one connection is expected).
const BACKLOG: i32 = 16;

/// The shared cursor of a server's sessions.
#[derive(Debug, Clone, Default)]
pub(crate) struct PassivePorts {
    next: Arc<AtomicU32>,
}

impl PassivePorts {
    fn try_port(ip: IpAddr, port: u16) -> io::Result<TcpSocket> {
        let s = Socket::new(
            Domain::for_address(SocketAddr::new(ip, port)),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        // Lets a port whose previous transfers are in TIME_WAIT be reused.
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::new(ip, port).into())?;
        s.listen(BACKLOG)?;
        Ok(TcpSocket::from_std_stream(std::net::TcpStream::from(s)))
    }
}

#[async_trait]
impl Binder for PassivePorts {
    async fn bind(&mut self, ip: IpAddr, ports: RangeInclusive<u16>) -> io::Result<TcpSocket> {
        let first = u32::from(*ports.start());
        let len = u32::from(*ports.end()).saturating_sub(first) + 1;
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "empty passive port range");
        for _ in 0..len {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % len;
            let port = u16::try_from(first + i).unwrap_or(u16::MAX);
            match Self::try_port(ip, port) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        tracing::warn!(error = %last, "ftp: no free passive port in {ports:?}");
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_go_round_robin_and_busy_ones_are_skipped() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // Three consecutive ports that are free right now (held, then released).
        let base = (20_000u16..60_000)
            .step_by(97)
            .find(|&p| {
                let held: Vec<_> = (p..p + 3)
                    .filter_map(|q| std::net::TcpListener::bind(("127.0.0.1", q)).ok())
                    .collect();
                held.len() == 3
            })
            .expect("three free ports");
        let range = base..=base + 2;
        let mut ports = PassivePorts::default();
        let a = ports
            .bind(ip, range.clone())
            .await
            .unwrap()
            .listen(1)
            .unwrap();
        let b = ports
            .bind(ip, range.clone())
            .await
            .unwrap()
            .listen(1)
            .unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert_ne!(pa, pb, "two sessions never share a port");
        // a and b still listen: the third bind takes the remaining port, a fourth finds
        // every port busy and fails instead of returning a port that cannot listen.
        let c = ports
            .bind(ip, range.clone())
            .await
            .unwrap()
            .listen(1)
            .unwrap();
        let pc = c.local_addr().unwrap().port();
        assert!(pc != pa && pc != pb && range.contains(&pc));
        assert!(ports.bind(ip, range.clone()).await.is_err());
        drop(b);
        let d = ports
            .bind(ip, range.clone())
            .await
            .unwrap()
            .listen(1)
            .unwrap();
        assert_eq!(
            d.local_addr().unwrap().port(),
            pb,
            "a freed port is used again"
        );
    }
}
