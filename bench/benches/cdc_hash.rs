//! Chunking and hashing throughput, each next to baselines measured in the same run on the
//! same buffer: `memcpy` and one-shot `blake3::hash`.
//!
//! Run: `cargo bench -p hugbucket-bench --bench cdc_hash` (criterion options after `--`,
//! e.g. `-- --measurement-time 3 --warm-up-time 1`). Before the criterion groups, a ratio
//! table (best of several `Instant`-timed passes) is printed.
//! `CDC_HASH_MIB` sets the buffer size (default 64); `CDC_HASH_TABLE_ONLY=1` skips criterion.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use hugbucket_bench::{best_of, text_data};
use hugbucket_engine::chunking::{chunk_boundaries, file_hash_of};
use hugbucket_engine::crc64::crc64_nvme;
use hugbucket_engine::hash::chunk_hash;

fn random_data_cdc(n: usize) -> Vec<u8> {
    hugbucket_bench::random_data("bench/cdc_hash/random", n)
}

fn chunk_hashes(data: &[u8], bounds: &[usize]) -> usize {
    let mut start = 0;
    let mut acc = 0usize;
    for &end in bounds {
        acc ^= chunk_hash(&data[start..end]).as_bytes()[0] as usize;
        start = end;
    }
    acc
}

fn ratio_table(name: &str, data: &[u8]) {
    let runs = 15;
    let mut dst = vec![0u8; data.len()];
    let bounds = chunk_boundaries(data);
    let mb = data.len() as f64 / 1e6;
    let rows: Vec<(&str, Duration)> = vec![
        (
            "memcpy",
            best_of(runs, || dst.copy_from_slice(black_box(data))),
        ),
        (
            "blake3::hash",
            best_of(runs, || {
                black_box(blake3::hash(black_box(data)));
            }),
        ),
        (
            "cdc (chunk_boundaries)",
            best_of(runs, || {
                black_box(chunk_boundaries(black_box(data)));
            }),
        ),
        (
            "chunk hashes",
            best_of(runs, || {
                black_box(chunk_hashes(black_box(data), &bounds));
            }),
        ),
        (
            "file hash (cdc+hash+merkle)",
            best_of(runs, || {
                black_box(file_hash_of(black_box(data)));
            }),
        ),
        (
            "crc64_nvme",
            best_of(runs, || {
                black_box(crc64_nvme(black_box(data)));
            }),
        ),
    ];
    black_box(&dst);
    let memcpy = rows[0].1.as_secs_f64();
    let b3 = rows[1].1.as_secs_f64();
    println!(
        "\n{name}: {:.1} MiB, {} chunks (avg {} B)",
        data.len() as f64 / (1 << 20) as f64,
        bounds.len(),
        data.len() / bounds.len().max(1)
    );
    println!(
        "| {:<28} | {:>9} | {:>10} | {:>9} |",
        "op", "MB/s", "vs blake3", "vs memcpy"
    );
    println!("|{:-<30}|{:->11}|{:->12}|{:->11}|", "", "", "", "");
    for (op, t) in &rows {
        let s = t.as_secs_f64();
        println!(
            "| {:<28} | {:>9.0} | {:>9.1}% | {:>8.1}% |",
            op,
            mb / s,
            100.0 * b3 / s,
            100.0 * memcpy / s
        );
    }
}

fn criterion_groups(c: &mut Criterion, name: &str, data: &[u8]) {
    let bounds = chunk_boundaries(data);
    let mut dst = vec![0u8; data.len()];
    let mut g = c.benchmark_group(format!("cdc_hash/{name}"));
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("memcpy", |b| {
        b.iter(|| dst.copy_from_slice(black_box(data)))
    });
    g.bench_function("blake3_hash", |b| b.iter(|| blake3::hash(black_box(data))));
    g.bench_function("cdc", |b| b.iter(|| chunk_boundaries(black_box(data))));
    g.bench_function("chunk_hashes", |b| {
        b.iter(|| chunk_hashes(black_box(data), &bounds))
    });
    g.bench_function("file_hash", |b| b.iter(|| file_hash_of(black_box(data))));
    g.bench_function("crc64_nvme", |b| b.iter(|| crc64_nvme(black_box(data))));
    g.finish();
}

fn main() {
    let mib: usize = hugbucket_bench::env_number("CDC_HASH_MIB", 64);
    let n = mib << 20;
    let datasets = [("random", random_data_cdc(n)), ("text", text_data(n))];
    for (name, data) in &datasets {
        ratio_table(name, data);
    }
    if std::env::var_os("CDC_HASH_TABLE_ONLY").is_some() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    for (name, data) in &datasets {
        criterion_groups(&mut c, name, data);
    }
    c.final_summary();
}
