//! Thread-per-core on tokio: one pinned current-thread runtime per CPU, each with its own
//! `SO_REUSEPORT` listener (socket2), connections on a `LocalSet`.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};

use super::tls::serve_accepted;
use super::{HandlerFactory, LocalBoxFuture, ServeConfig, Server};

fn tokio_sleep(d: Duration) -> LocalBoxFuture<()> {
    Box::pin(tokio::time::sleep(d))
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

use hugbucket_core::affinity::{pin_to, unpin};

pub(super) fn serve(config: ServeConfig, factory: HandlerFactory) -> std::io::Result<Server> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut joins: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let mut addr = config.addr;
    for (idx, cpu) in config.cpu_list().into_iter().enumerate() {
        let std_listener = match reuseport_listener(addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = stop_tx.send(true);
                for j in joins {
                    j();
                }
                return Err(e);
            }
        };
        addr = std_listener.local_addr()?;
        let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
        let factory = factory.clone();
        let cfg = config.clone();
        let mut stop = stop_rx.clone();
        let thread = std::thread::Builder::new().name(format!("s3-tokio-{idx}")).spawn(move || {
            pin_to(cpu);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_start(unpin)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let handler = factory(idx);
                let cfg = Rc::new(cfg);
                loop {
                    tokio::select! {
                        r = listener.accept() => match r {
                            Ok((stream, peer)) => {
                                let _ = stream.set_nodelay(true);
                                let fut = serve_accepted(TokioIo::new(stream), TokioTimer::new(), handler.clone(), cfg.clone(), tokio_sleep, Some(peer));
                                tokio::task::spawn_local(fut);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        },
                        _ = stop.changed() => break,
                    }
                }
            });
        })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("core thread died before listening"))??;
        joins.push(Box::new(move || {
            let _ = thread.join();
        }));
    }
    Ok(Server {
        addr,
        stop: stop_tx,
        joins,
    })
}
