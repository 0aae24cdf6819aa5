//! Every core on every transfer: with key shards pinned one per CPU (as `serve` runs
//! them), the threads that do a large PUT's and a large cold GET's CPU work may run on
//! every CPU of the process, not only on the pinned core of the thread that created them.
//!
//! A sampler thread reads `/proc/self/task/*/stat` and `status` while the transfer runs
//! and remembers, per thread, its name, its allowed CPUs and the CPU time it used.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hugbucket_core::{CoreConfig, Gateway, PutOptions, affinity};
use hugbucket_hub::HubConfig;
use hugbucket_upstream::{HubClient, UpstreamConfig};

#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    cpus: String,
    first_ticks: u64,
    last_ticks: u64,
}

fn read_task(tid: &str) -> Option<(String, String, u64)> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    // utime and stime are fields 14 and 15; the name (field 2) may hold spaces, so count
    // from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((field("Name:")?, field("Cpus_allowed_list:")?, ticks))
}

/// Samples every thread of this process until `stop` is set.
fn sampler(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<HashMap<String, Seen>> {
    std::thread::spawn(move || {
        let mut seen: HashMap<String, Seen> = HashMap::new();
        while !stop.load(Ordering::Relaxed) {
            for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let tid = entry.file_name().to_string_lossy().into_owned();
                if let Some((name, cpus, ticks)) = read_task(&tid) {
                    let s = seen.entry(tid).or_insert_with(|| Seen {
                        first_ticks: ticks,
                        ..Seen::default()
                    });
                    s.name = name;
                    s.cpus = cpus;
                    s.last_ticks = ticks;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    })
}

/// The threads that did at least `min_ticks` of CPU work while sampled, except the pinned
/// runtime threads themselves.
fn busy_workers(seen: &HashMap<String, Seen>, min_ticks: u64) -> Vec<Seen> {
    seen.values()
        .filter(|s| !s.name.starts_with("hugbucket-key-"))
        .filter(|s| s.last_ticks - s.first_ticks >= min_ticks)
        .cloned()
        .collect()
}

/// "0-1" or "0,2" as a list of CPU numbers.
fn cpu_list(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

fn assert_unconfined(what: &str, seen: &HashMap<String, Seen>, all: &[usize]) {
    let busy = busy_workers(seen, 3);
    assert!(
        !busy.is_empty(),
        "{what}: no worker thread did measurable CPU work: {seen:?}"
    );
    for s in &busy {
        assert_eq!(
            cpu_list(&s.cpus),
            all,
            "{what}: thread {:?} used {} ticks confined to CPUs {}",
            s.name,
            s.last_ticks - s.first_ticks,
            s.cpus
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_cold_get_work_runs_on_every_cpu() {
    let all = affinity::allowed_cpus();
    assert!(
        all.len() >= 2,
        "this test needs a machine with at least 2 CPUs, found {all:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut hub_cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("hub"));
    hub_cfg.namespace = "tester".into();
    hub_cfg.tokens = vec!["hf_affinity".into()];
    let hub = hugbucket_hub::start(hub_cfg).await.unwrap();
    let client = HubClient::new(
        &hub.url(),
        Some(hub.token().to_string()),
        UpstreamConfig::default(),
    )
    .unwrap();
    let mut cfg = CoreConfig::new(dir.path().join("gw"));
    cfg.key_shard_cpus = all.clone();
    let gw = Gateway::new(cfg, client).await.unwrap();
    gw.create_bucket("cores").await.unwrap();

    let mut data = vec![0u8; 192 << 20];
    blake3::Hasher::new()
        .update(b"affinity")
        .finalize_xof()
        .fill(&mut data);
    let data = Bytes::from(data);

    let stop = Arc::new(AtomicBool::new(false));
    let sampling = sampler(stop.clone());
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..data.len())
        .step_by(64 << 10)
        .map(|i| Ok(data.slice(i..(i + (64 << 10)).min(data.len()))))
        .collect();
    // The core runs the PUT on the key's owner shard (a pinned runtime).
    let body = Box::pin(futures::stream::iter(pieces));
    let meta = gw
        .object("cores", "big")
        .unwrap()
        .put(body, PutOptions::default())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(meta.size, data.len() as u64);
    assert_unconfined("PUT", &sampling.join().unwrap(), &all);

    // A cold GET: a fresh gateway (no chunk cache, no cached reconstruction) on the hub.
    let client = HubClient::new(
        &hub.url(),
        Some(hub.token().to_string()),
        UpstreamConfig::default(),
    )
    .unwrap();
    let mut cfg = CoreConfig::new(dir.path().join("gw-cold"));
    cfg.key_shard_cpus = all.clone();
    let cold = Gateway::new(cfg, client).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampling = sampler(stop.clone());
    let mut body = cold
        .object("cores", "big")
        .unwrap()
        .get(None)
        .await
        .unwrap()
        .body;
    let mut hasher = blake3::Hasher::new();
    let mut got = 0usize;
    while let Some(piece) = body.next().await {
        let piece = piece.unwrap();
        got += piece.len();
        hasher.update(&piece);
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(got, data.len());
    assert_eq!(hasher.finalize(), blake3::hash(&data));
    assert_unconfined("cold GET", &sampling.join().unwrap(), &all);
}
