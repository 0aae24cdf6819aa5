//! Chunk cache throughput, each figure next to a baseline measured in the same run:
//!
//! - warm lookups/s (`DiskCache::get` of small entries: index lookup + recency stamp + CRC
//!   check + zero-copy `Bytes`), at 1 and 2 threads, against a `RwLock<HashMap>` of `Bytes`
//!   (lookup + clone) over the same keys and access pattern;
//! - MB/s of gets of 1 MiB entries copied out to a buffer, against `memcpy` of the same
//!   sizes from memory;
//! - a warm GET of a whole object (`CACHE_BENCH_OBJECT_MIB`, default 1024 MiB, as 1 MiB
//!   terms) read through the cache, against `memcpy` of the same bytes;
//! - put MB/s (segment append + sled insert) for 1 MiB entries.
//!
//! Run: `cargo bench -p hugbucket-bench --bench cache`. Best of `CACHE_BENCH_ROUNDS` (3)
//! timed passes. The cache lives in a temp dir (page cache warm: it was just written).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hugbucket_bench::{best_of, env_number};
use hugbucket_cache::{CacheConfig, ChunkCache, ChunkRangeKey, DiskCache};
use hugbucket_engine::hash::XetHash;

fn key(i: u32) -> ChunkRangeKey {
    let xorb = XetHash::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes());
    ChunkRangeKey::new(xorb, 0, 1)
}

fn payload(i: u32, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    blake3::Hasher::new()
        .update(&i.to_le_bytes())
        .finalize_xof()
        .fill(&mut b);
    b
}

/// Runs `per_thread(t)` on `threads` threads at once; wall time.
fn parallel(threads: usize, per_thread: &(dyn Fn(usize) + Sync)) {
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || per_thread(t));
        }
    });
}

/// Pseudo-random key order per thread (xorshift), same for cache and baseline.
fn order(n: u32, ops: usize, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..ops)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % u64::from(n)) as u32
        })
        .collect()
}

fn lookups(rounds: usize, entry_len: usize) {
    let keys_n = (20_000).min((256 << 20) / entry_len) as u32;
    let ops = env_number("CACHE_BENCH_OPS", 400_000);
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(CacheConfig::new(dir.path(), 4 << 30)).unwrap();
    let mut base: HashMap<ChunkRangeKey, Bytes> = HashMap::new();
    for i in 0..keys_n {
        let data = payload(i, entry_len);
        cache.put(&key(i), &[entry_len as u32], &data).unwrap();
        base.insert(key(i), Bytes::from(data));
    }
    let base = RwLock::new(base);
    let keys: Vec<ChunkRangeKey> = (0..keys_n).map(key).collect();
    let orders: Vec<Vec<u32>> = (0..2).map(|t| order(keys_n, ops, 77 + t)).collect();
    println!(
        "\n### Warm lookups, {entry_len}-byte entries, {keys_n} keys, {ops} gets per thread\n"
    );
    println!("| threads | cache Mlookups/s | HashMap Mlookups/s | cache / HashMap |");
    println!("|---|---|---|---|");
    for threads in [1, 2] {
        let c = best_of(rounds, || {
            parallel(threads, &|t| {
                for &i in &orders[t] {
                    black_box(cache.get(&keys[i as usize]).unwrap());
                }
            })
        });
        let b = best_of(rounds, || {
            parallel(threads, &|t| {
                for &i in &orders[t] {
                    black_box(
                        base.read()
                            .unwrap()
                            .get(&keys[i as usize])
                            .cloned()
                            .unwrap(),
                    );
                }
            })
        });
        let rate = |d: Duration| (threads * ops) as f64 / d.as_secs_f64() / 1e6;
        println!(
            "| {threads} | {:.2} | {:.2} | {:.2} |",
            rate(c),
            rate(b),
            rate(c) / rate(b)
        );
    }
}

fn large(rounds: usize) {
    const MIB: usize = 1 << 20;
    let object_mib = env_number("CACHE_BENCH_OBJECT_MIB", 1024);
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(
        DiskCache::open(CacheConfig::new(
            dir.path(),
            (object_mib as u64 + 256) << 20,
        ))
        .unwrap(),
    );
    // One source buffer reused for every entry (content differs only by its key); the
    // baseline copies from an equally sized set of distinct buffers so both miss the CPU
    // caches alike.
    let src = payload(0, MIB);
    let t = Instant::now();
    for i in 0..object_mib as u32 {
        cache.put(&key(i), &[MIB as u32], &src).unwrap();
    }
    cache.flush().unwrap();
    let put_s = t.elapsed().as_secs_f64();
    let base: Vec<Vec<u8>> = (0..object_mib).map(|_| src.clone()).collect();
    let mut out = vec![0u8; MIB];
    let gb = (object_mib * MIB) as f64 / 1e9;

    let warm = best_of(rounds, || {
        for i in 0..object_mib as u32 {
            let b = cache.get(&key(i)).unwrap();
            out.copy_from_slice(&b);
            black_box(&out);
        }
    });
    let zero_copy = best_of(rounds, || {
        for i in 0..object_mib as u32 {
            black_box(cache.get(&key(i)).unwrap());
        }
    });
    let memcpy = best_of(rounds, || {
        for b in &base {
            out.copy_from_slice(b);
            black_box(&out);
        }
    });
    let two = best_of(rounds, || {
        parallel(2, &|t| {
            let mut out = vec![0u8; MIB];
            for i in (0..object_mib as u32).filter(|i| *i as usize % 2 == t) {
                let b = cache.get(&key(i)).unwrap();
                out.copy_from_slice(&b);
                black_box(&out);
            }
        })
    });
    let memcpy_two = best_of(rounds, || {
        parallel(2, &|t| {
            let mut out = vec![0u8; MIB];
            for b in base.iter().skip(t).step_by(2) {
                out.copy_from_slice(b);
                black_box(&out);
            }
        })
    });
    let r = |d: Duration| gb / d.as_secs_f64();
    println!("\n### Warm GET of a {object_mib} MiB object as 1 MiB terms\n");
    println!("| what | GB/s | vs memcpy |");
    println!("|---|---|---|");
    println!(
        "| memcpy 1 MiB buffers (baseline), 1 thread | {:.2} | 1.00 |",
        r(memcpy)
    );
    println!(
        "| cache get (CRC check, zero-copy) + copy out, 1 thread | {:.2} | {:.2} |",
        r(warm),
        r(warm) / r(memcpy)
    );
    println!(
        "| cache get only (CRC check, zero-copy), 1 thread | {:.2} | {:.2} |",
        r(zero_copy),
        r(zero_copy) / r(memcpy)
    );
    println!(
        "| memcpy 1 MiB buffers (baseline), 2 threads | {:.2} | 1.00 |",
        r(memcpy_two)
    );
    println!(
        "| cache get + copy out, 2 threads | {:.2} | {:.2} |",
        r(two),
        r(two) / r(memcpy_two)
    );
    println!(
        "| put 1 MiB entries (append + sled insert), incl. final flush | {:.2} | - |",
        gb / put_s
    );
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let rounds = env_number("CACHE_BENCH_ROUNDS", 3);
    lookups(rounds, 256);
    lookups(rounds, 64 << 10);
    large(rounds);
}
