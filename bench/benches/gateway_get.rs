//! GET throughput of the gateway core with the chunk cache: a cold GET (every xorb range
//! fetched from the hub) and warm GETs (served from the cache), side by side with a
//! baseline measured in the same run (the same bytes copied out of memory), on an embedded
//! hub started in-process on loopback.
//!
//! Run: `cargo bench -p hugbucket-bench --bench gateway_get`. `GATEWAY_GET_MIB` sets the
//! object size (default 1024).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hugbucket_bench::{best_of, mb_per_s};
use hugbucket_core::{ByteStream, CoreConfig, Gateway, PutOptions};
use hugbucket_upstream::{HubClient, UpstreamConfig};

const PIECE: usize = 4 << 20;

fn piece(i: u64) -> Bytes {
    let mut out = vec![0u8; PIECE];
    blake3::Hasher::new()
        .update(&i.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    Bytes::from(out)
}

/// Reads the object, copying every piece into `sink` (as writing it to a socket would).
async fn read_all(gw: &Gateway, sink: &mut [u8]) -> (u64, Duration) {
    let t = Instant::now();
    let mut body = gw
        .object("bench", "obj")
        .unwrap()
        .get(None)
        .await
        .unwrap()
        .body;
    let mut n = 0u64;
    while let Some(p) = body.next().await {
        let p = p.unwrap();
        let mut off = 0;
        while off < p.len() {
            let k = (p.len() - off).min(sink.len());
            sink[..k].copy_from_slice(&p[off..off + k]);
            black_box(&sink[..k]);
            off += k;
        }
        n += p.len() as u64;
    }
    (n, t.elapsed())
}

fn main() {
    let mib: u64 = hugbucket_bench::env_number("GATEWAY_GET_MIB", 1024);
    let size = mib << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = hugbucket_hub::HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("hub"));
        cfg.tokens = vec!["bench".into()];
        let hub = hugbucket_hub::start(cfg).await.unwrap();
        let client = HubClient::new(&hub.url(), Some("bench".into()), UpstreamConfig::default()).unwrap();
        let mut core = CoreConfig::new(dir.path().join("gw"));
        core.cache_dir = Some(dir.path().join("cache"));
        core.cache_capacity = size * 2;
        let gw = Gateway::new(core, client).await.unwrap();
        gw.create_bucket("bench").await.unwrap();
        let pieces = size / PIECE as u64;
        let body: ByteStream = Box::pin(futures::stream::iter(0..pieces).map(|i| Ok(piece(i))));
        let t = Instant::now();
        gw.object("bench", "obj").unwrap().put(body, PutOptions::default()).await.unwrap();
        let put = t.elapsed();

        // Baseline: the same number of bytes copied into the same sink from memory.
        let mem: Vec<Bytes> = (0..16).map(piece).collect();
        let mut sink = vec![0u8; PIECE];
        let baseline = best_of(3, || {
            for i in 0..pieces as usize {
                sink.copy_from_slice(&mem[i % mem.len()]);
                black_box(&sink);
            }
        });
        let hub_bytes = || hub.stats().xorb_range_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let before = hub_bytes();
        let (n, cold) = read_all(&gw, &mut sink).await;
        assert_eq!(n, size);
        let fetched_cold = hub_bytes() - before;
        let mut warm = Duration::MAX;
        for _ in 0..3 {
            let (n, d) = read_all(&gw, &mut sink).await;
            assert_eq!(n, size);
            warm = warm.min(d);
        }
        let fetched_warm = hub_bytes() - before - fetched_cold;
        let s = size as usize;
        println!("gateway GET of a {mib} MiB object (embedded hub on loopback, 2 worker threads)");
        println!("{:<28} {:>10} {:>12}", "", "MB/s", "vs memcpy");
        let (b, c, w, p) = (mb_per_s(s, baseline), mb_per_s(s, cold), mb_per_s(s, warm), mb_per_s(s, put));
        println!("{:<28} {b:>10.0} {:>11.1}%", "memcpy baseline (same sink)", 100.0);
        println!("{:<28} {p:>10.0} {:>11.1}%", "PUT (ingest + upload)", 100.0 * p / b);
        println!("{:<28} {c:>10.0} {:>11.1}%", "GET cold (hub fetches)", 100.0 * c / b);
        println!("{:<28} {w:>10.0} {:>11.1}%", "GET warm (chunk cache)", 100.0 * w / b);
        println!("warm/cold = {:.2}x; bytes fetched from the hub: cold {fetched_cold}, warm {fetched_warm}", w / c);
        assert_eq!(fetched_warm, 0, "warm GETs must not fetch");
    });
}
