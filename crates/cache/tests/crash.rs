//! Unclean shutdown: a child process fills a cache and aborts (no destructor, no final sled
//! flush); the parent reopens the directory and checks what survived.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::Command;

use hugbucket_cache::{CacheConfig, ChunkCache, ChunkRangeKey, DiskCache};
use hugbucket_engine::hash::XetHash;

const CHILD_ENV: &str = "HUGBUCKET_CACHE_CRASH_CHILD";
const DURABLE: u32 = 20;
const TOTAL: u32 = 30;
const CHUNK: u32 = 3000;

fn key(i: u32) -> ChunkRangeKey {
    let xorb = XetHash::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes());
    ChunkRangeKey::new(xorb, 0, 1 + i % 3)
}

fn data(k: &ChunkRangeKey) -> (Vec<u32>, Vec<u8>) {
    let mut out = vec![0u8; (k.num_chunks() * CHUNK) as usize];
    blake3::Hasher::new()
        .update(&k.encode())
        .finalize_xof()
        .fill(&mut out);
    (vec![CHUNK; k.num_chunks() as usize], out)
}

fn config(dir: &Path) -> CacheConfig {
    CacheConfig {
        dir: dir.to_path_buf(),
        capacity: 64 << 20,
        segment_size: 40 << 10,
    }
}

fn child(dir: &Path) -> ! {
    let cache = DiskCache::open(config(dir)).unwrap();
    for i in 0..TOTAL {
        let k = key(i);
        let (lens, bytes) = data(&k);
        cache.put(&k, &lens, &bytes).unwrap();
        if i + 1 == DURABLE {
            cache.flush().unwrap();
        }
    }
    std::process::abort();
}

/// Every get is exact or a miss; returns how many hit.
fn check(cache: &DiskCache) -> Vec<bool> {
    (0..TOTAL)
        .map(|i| {
            let k = key(i);
            cache
                .get(&k)
                .map(|b| assert_eq!(&b[..], &data(&k).1[..], "{k}"))
                .is_some()
        })
        .collect()
}

#[test]
fn unclean_shutdown_reopens_warm() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unclean_shutdown_reopens_warm",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die uncleanly");

    let hits = {
        let cache = DiskCache::open(config(dir.path())).unwrap();
        check(&cache)
    };
    assert!(
        hits[..DURABLE as usize].iter().all(|&h| h),
        "flushed entries lost: {hits:?}"
    );

    // Power loss may also lose the tail of the page cache: cut the newest segment.
    let mut segs: Vec<_> = fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len.saturating_sub(5000))
        .unwrap();
    let cache = DiskCache::open(config(dir.path())).unwrap();
    let after = check(&cache);
    assert!(after.iter().filter(|&&h| h).count() < hits.iter().filter(|&&h| h).count());
    assert!(cache.stats().corrupt_dropped >= 1);
}
