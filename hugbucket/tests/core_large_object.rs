//! A 2 GiB object streamed through the gateway core to a real `hugbucket hub` process and
//! back, with the test process's private memory bounded (the core holds a few xorbs, never
//! the object). Its own test binary, so that the memory is this test's alone.
//!
//! Private memory is RssAnon + RssShmem of `/proc/self/status`, sampled every 20 ms during
//! the transfer. VmRSS/VmHWM would also count RssFile: the pages of the memory-mapped chunk
//! cache, which the kernel reclaims at will and which grow with the object.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hugbucket_core::{ByteStream, CoreConfig, Gateway, PutOptions};
use hugbucket_upstream::{HubClient, UpstreamConfig};

const SIZE: u64 = 2 << 30;
const PIECE: usize = 1 << 20;
const PRIVATE_LIMIT_MIB: u64 = 300;

struct HubProcess {
    child: Child,
    endpoint: String,
    token: String,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hub(dir: &std::path::Path) -> HubProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hugbucket"))
        .args(["hub", "--listen", "127.0.0.1:0", "--namespace", "big"])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut endpoint, mut token) = (None, None);
    while endpoint.is_none() || token.is_none() {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "hub exited early");
        let line = line.trim();
        if let Some(v) = line.strip_prefix("HF_ENDPOINT=") {
            endpoint = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("HF_TOKEN=") {
            token = Some(v.to_string());
        }
    }
    // Keep draining stdout so the hub never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    HubProcess {
        child,
        endpoint: endpoint.unwrap(),
        token: token.unwrap(),
    }
}

/// Deterministic incompressible data, generated piece by piece (xorshift64*).
fn piece(index: u64) -> Bytes {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(PIECE);
    while out.len() < PIECE {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    Bytes::from(out)
}

/// RssAnon + RssShmem of this process, in KiB.
fn private_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    ["RssAnon:", "RssShmem:"]
        .iter()
        .map(|field| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
        })
        .sum()
}

/// Samples [`private_kib`] every 20 ms until dropped; `peak()` is the highest sample.
struct PrivateMemorySampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PrivateMemorySampler {
    fn start() -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(private_kib()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Relaxed) {
                p.fetch_max(private_kib(), Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PrivateMemorySampler { peak, stop }
    }

    fn peak_mib(&self) -> u64 {
        self.peak
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(private_kib())
            / 1024
    }
}

impl Drop for PrivateMemorySampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_put_and_get_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(&dir.path().join("hub"));
    let client = HubClient::new(
        &hub.endpoint,
        Some(hub.token.clone()),
        UpstreamConfig {
            read_timeout: Duration::from_secs(300),
            ..UpstreamConfig::default()
        },
    )
    .unwrap();
    let gw = Gateway::new(CoreConfig::new(dir.path().join("gw")), client)
        .await
        .unwrap();
    gw.create_bucket("large").await.unwrap();

    let sampler = PrivateMemorySampler::start();
    let pieces = SIZE / PIECE as u64;
    let mut sent_hash = blake3::Hasher::new();
    let body: ByteStream = Box::pin(futures::stream::iter(0..pieces).map(|i| Ok(piece(i))));
    for i in 0..pieces {
        sent_hash.update(&piece(i));
    }
    let meta = gw
        .object("large", "two-gib.bin")
        .unwrap()
        .put(
            body,
            PutOptions {
                size_hint: Some(SIZE),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(meta.size, SIZE);

    let got = gw
        .object("large", "two-gib.bin")
        .unwrap()
        .get(None)
        .await
        .unwrap();
    let mut body = got.body;
    let mut received = 0u64;
    let mut got_hash = blake3::Hasher::new();
    while let Some(p) = body.next().await {
        let p = p.unwrap();
        received += p.len() as u64;
        got_hash.update(&p);
    }
    assert_eq!(received, SIZE);
    assert_eq!(got_hash.finalize(), sent_hash.finalize());
    let peak = sampler.peak_mib();
    eprintln!("peak private memory (RssAnon + RssShmem) of the test process: {peak} MiB");
    assert!(
        peak < PRIVATE_LIMIT_MIB,
        "peak private memory {peak} MiB >= {PRIVATE_LIMIT_MIB} MiB"
    );
}
