//! Runtime layer behaviour on both runtimes: keep-alive, streamed request bodies, header
//! read timeout (slowloris), the progress watchdog, and the bridge to a tokio core.

mod common;

use std::time::{Duration, Instant};

use hugbucket_core::spawn_abortable;
use hugbucket_s3::runtime::{RuntimeKind, ServeConfig, Server, serve, watchdog_aborts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KINDS: [RuntimeKind; 2] = [RuntimeKind::Glommio, RuntimeKind::Tokio];

fn start(kind: RuntimeKind, core: Option<tokio::runtime::Handle>) -> Server {
    let cfg = ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        header_read_timeout: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(1),
        watchdog_tick: Duration::from_millis(200),
        ..ServeConfig::default()
    };
    serve(kind, cfg, common::fixture_factory(core)).unwrap()
}

fn client() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn read_body(s: &mut TcpStream, rest: Vec<u8>, len: u64) -> Vec<u8> {
    let mut body = rest;
    while (body.len() as u64) < len {
        let mut buf = [0u8; 8192];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        body.extend_from_slice(&buf[..n]);
    }
    body
}

#[test]
fn keep_alive_and_streamed_request_body() {
    for kind in KINDS {
        let server = start(kind, None);
        let addr = server.local_addr();
        client().block_on(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // Two requests on one connection; the second with a chunked 3 MiB body.
            s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let (h, rest) = common::read_head(&mut s).await.unwrap();
            assert_eq!((h.status, h.content_length), (200, Some(2)));
            assert_eq!(read_body(&mut s, rest, 2).await, b"ok");
            s.write_all(b"PUT /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..3 {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await
                    .unwrap();
                s.write_all(&chunk).await.unwrap();
                s.write_all(b"\r\n").await.unwrap();
            }
            s.write_all(b"0\r\n\r\n").await.unwrap();
            let (h, rest) = common::read_head(&mut s).await.unwrap();
            assert_eq!(h.status, 200);
            let body = read_body(&mut s, rest, h.content_length.unwrap()).await;
            assert_eq!(body, (3u64 << 20).to_string().as_bytes(), "{kind:?}");
        });
        server.shutdown();
    }
}

#[test]
fn header_read_timeout_closes_slowloris() {
    for kind in KINDS {
        let server = start(kind, None);
        let addr = server.local_addr();
        client().block_on(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 1024];
            // The server must give up on the incomplete head (1 s timeout) and close.
            loop {
                match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => continue, // e.g. a 408 answer before closing
                    Err(_) => panic!("{kind:?}: slowloris connection still open after 5 s"),
                }
            }
            assert!(
                t.elapsed() >= Duration::from_millis(800),
                "{kind:?}: closed too early"
            );
        });
        server.shutdown();
    }
}

#[test]
fn watchdog_aborts_stalled_response() {
    for kind in KINDS {
        let server = start(kind, None);
        let addr = server.local_addr();
        let before = watchdog_aborts();
        client().block_on(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /stall HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let (h, mut got) = common::read_head(&mut s).await.unwrap();
            assert_eq!((h.status, h.content_length), (200, Some(1 << 20)));
            let t = Instant::now();
            let mut buf = [0u8; 1024];
            loop {
                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Err(_) => panic!("{kind:?}: stalled response was not aborted"),
                }
            }
            assert_eq!(got, b"first");
            assert!(t.elapsed() >= Duration::from_millis(900), "{kind:?}");
        });
        assert!(watchdog_aborts() > before, "{kind:?}");
        server.shutdown();
    }
}

#[test]
fn bridge_streams_both_ways() {
    let core = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for kind in KINDS {
        let server = start(kind, Some(core.handle().clone()));
        let addr = server.local_addr();
        client().block_on(async move {
            // tokio -> core runtime -> glommio/tokio response, 40 MiB with Content-Length.
            let n = common::get_pattern(addr, &format!("/bridge/{}", 40u64 << 20))
                .await
                .unwrap();
            assert_eq!(n, 40 << 20);
            // Request body pumped to the core runtime over the bounded channel.
            let mut s = TcpStream::connect(addr).await.unwrap();
            let len = 20u64 << 20;
            s.write_all(
                format!("PUT /bridge-put HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..20 {
                s.write_all(&chunk).await.unwrap();
            }
            let (h, rest) = common::read_head(&mut s).await.unwrap();
            let body = read_body(&mut s, rest, h.content_length.unwrap()).await;
            assert_eq!(
                String::from_utf8(body).unwrap(),
                format!("{len} true"),
                "{kind:?}"
            );
            // A client that disconnects mid-response releases the core-side task.
            common::abrupt(addr, 1 << 30).await;
        });
        server.shutdown();
    }
    drop(core);
}

/// How the core runs a call on its runtimes, awaited from a glommio executor: the
/// output comes back, and dropping the future aborts the task.
#[test]
fn core_tasks_run_and_cancel_from_glommio() {
    let core = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let h = core.handle().clone();
    let out = glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let v = spawn_abortable(&h, async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                41 + 1
            })
            .await
            .unwrap();
            // Dropping the future aborts the core task.
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let fut = spawn_abortable(&h, async move {
                let _keep = tx;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
            drop(fut);
            (v, rx)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(out.0, 42);
    // The sender was dropped by the abort, so the receiver resolves (with an error).
    assert!(
        core.block_on(async { tokio::time::timeout(Duration::from_secs(5), out.1).await })
            .is_ok()
    );
}
