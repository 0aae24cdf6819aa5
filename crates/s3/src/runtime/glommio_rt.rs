//! Thread-per-core on glommio: one pinned `LocalExecutor` per CPU, each with its own
//! `SO_REUSEPORT` listener (glommio's `TcpListener::bind` sets it).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use super::tls::serve_accepted;
use super::{GlommioIo, GlommioTimer, HandlerFactory, LocalBoxFuture, ServeConfig, Server};

fn glommio_sleep(d: Duration) -> LocalBoxFuture<()> {
    Box::pin(glommio::timer::sleep(d))
}

pub(super) fn serve(config: ServeConfig, factory: HandlerFactory) -> std::io::Result<Server> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut joins: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let mut addr = config.addr;
    for (idx, cpu) in config.cpu_list().into_iter().enumerate() {
        let (bound_tx, bound_rx) = mpsc::channel::<std::io::Result<SocketAddr>>();
        let factory = factory.clone();
        let cfg = config.clone();
        let mut stop = stop_rx.clone();
        let bind_addr = addr;
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("s3-glommio-{idx}"))
            .spawn(move || async move {
                let listener = match TcpListener::bind(bind_addr) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = bound_tx.send(listener.local_addr().map_err(Into::into));
                let handler = factory(idx);
                let cfg = Rc::new(cfg);
                loop {
                    let accepted =
                        futures_lite::future::or(async { Some(listener.accept().await) }, async {
                            let _ = stop.changed().await;
                            None
                        })
                        .await;
                    match accepted {
                        None => break,
                        Some(Ok(stream)) => {
                            let _ = stream.set_nodelay(true);
                            let peer = stream.peer_addr().ok();
                            let fut = serve_accepted(
                                GlommioIo::new(stream),
                                GlommioTimer,
                                handler.clone(),
                                cfg.clone(),
                                glommio_sleep,
                                peer,
                            );
                            glommio::spawn_local(fut).detach();
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "accept failed");
                            glommio::timer::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let bound = bound_rx
            .recv()
            .map_err(|_| std::io::Error::other("glommio executor died before binding"))?;
        match bound {
            Ok(a) => addr = a,
            Err(e) => {
                let _ = stop_tx.send(true);
                for j in joins {
                    j();
                }
                let _ = handle.join();
                return Err(e);
            }
        }
        joins.push(Box::new(move || {
            let _ = handle.join();
        }));
    }
    Ok(Server {
        addr,
        stop: stop_tx,
        joins,
    })
}
