//! Regression test for the stalled-response bug seen with glommio (runtime-probe.md): many
//! large streamed responses over loopback, with bursts of abruptly closed connections in
//! between, must all complete on both runtimes; the watchdog must not have fired.

mod common;

use std::time::{Duration, Instant};

use hugbucket_s3::runtime::{RuntimeKind, ServeConfig, serve, watchdog_aborts};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stress(kind: RuntimeKind) {
    let transfers = env_u64("HUGBUCKET_STRESS_TRANSFERS", 64);
    let size = env_u64("HUGBUCKET_STRESS_MIB", 64) << 20;
    let cfg = ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        stall_timeout: Duration::from_secs(20),
        ..ServeConfig::default()
    };
    let server = serve(kind, cfg, common::fixture_factory(None)).unwrap();
    let addr = server.local_addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = watchdog_aborts();
    let start = Instant::now();
    rt.block_on(async move {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
        let mut tasks = Vec::new();
        for i in 0..transfers {
            if i % 4 == 0 {
                // A burst of abrupt disconnects with responses in flight.
                let burst: Vec<_> = (0..8)
                    .map(|_| tokio::spawn(common::abrupt(addr, 256 << 20)))
                    .collect();
                for b in burst {
                    b.await.unwrap();
                }
            }
            if i % 8 == 4 {
                // A wrk-like burst: 64 connections dropped with small requests in flight.
                let burst: Vec<_> = (0..64)
                    .map(|_| tokio::spawn(common::burst_small(addr)))
                    .collect();
                for b in burst {
                    b.await.unwrap();
                }
            }
            let permit = sem.clone().acquire_owned().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let r = tokio::time::timeout(
                    Duration::from_secs(120),
                    common::get_pattern(addr, &format!("/big/{size}")),
                )
                .await;
                drop(permit);
                r
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let got = t
                .await
                .unwrap()
                .unwrap_or_else(|_| panic!("transfer {i} stalled"))
                .unwrap();
            assert_eq!(got, size, "transfer {i}");
        }
    });
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{kind:?}: {transfers} x {} MiB in {secs:.1}s ({:.2} GB/s)",
        size >> 20,
        (transfers * size) as f64 / secs / 1e9
    );
    assert_eq!(
        watchdog_aborts(),
        before,
        "the watchdog fired during the stress run"
    );
    server.shutdown();
}

#[test]
fn many_large_streamed_responses_glommio() {
    stress(RuntimeKind::Glommio);
}

#[test]
fn many_large_streamed_responses_tokio() {
    stress(RuntimeKind::Tokio);
}
