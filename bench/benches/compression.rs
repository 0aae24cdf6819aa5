//! Chunk compression throughput per scheme on 64 MiB of text-like and f32-like data, next to
//! a `memcpy` of the same buffer measured in the same run.
//!
//! The buffer is cut into fixed 64 KiB chunks (the CDC target size) so that the numbers
//! isolate compression. Rows: BG4 predictor, lane split/regroup alone, compress and
//! decompress per scheme (fallback rule applied, as in xorbs), and the full auto-policy xorb
//! serialization.
//!
//! Run: `cargo bench -p hugbucket-bench --bench compression` (criterion options after `--`).
//! Before the criterion groups a ratio table (best of several `Instant`-timed passes) is
//! printed. `COMPRESSION_MIB` sets the buffer size (default 64); `COMPRESSION_TABLE_ONLY=1`
//! skips criterion.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use hugbucket_bench::{best_of, text_data};
use hugbucket_engine::compression::{
    CompressionScheme, bg4_regroup, bg4_split, compress_chunk, decompress_chunk, predict_bg4,
};
use hugbucket_engine::xorb::serialize_xorb;

const CHUNK: usize = 64 * 1024;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// f32-like bytes: model-weight-like values (approximately normal, sigma 0.02), LE.
fn f32_data(n: usize) -> Vec<u8> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // Irwin–Hall: sum of 4 uniforms, centred.
        let s: f64 = (0..4)
            .map(|_| (r.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        let v = ((s - 2.0) * 0.035) as f32;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn compress_all(data: &[u8], scheme: CompressionScheme) -> Vec<(CompressionScheme, Vec<u8>)> {
    data.chunks(CHUNK)
        .map(|c| {
            let mut out = Vec::with_capacity(c.len());
            let used = compress_chunk(scheme, c, &mut out);
            (used, out)
        })
        .collect()
}

fn compress_pass(data: &[u8], scheme: CompressionScheme, out: &mut Vec<u8>) -> usize {
    out.clear();
    for c in data.chunks(CHUNK) {
        compress_chunk(scheme, c, out);
    }
    out.len()
}

fn decompress_pass(data: &[u8], compressed: &[(CompressionScheme, Vec<u8>)], out: &mut Vec<u8>) {
    out.clear();
    for (c, (s, p)) in data.chunks(CHUNK).zip(compressed) {
        decompress_chunk(*s, p, c.len(), out).unwrap();
    }
}

fn predict_pass(data: &[u8]) -> usize {
    data.chunks(CHUNK).filter(|c| predict_bg4(c)).count()
}

fn split_pass(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for c in data.chunks(CHUNK) {
        bg4_split(c, out);
    }
}

fn regroup_pass(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for c in data.chunks(CHUNK) {
        bg4_regroup(c, out);
    }
}

fn xorb_pass(data: &[u8]) -> usize {
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    serialize_xorb(&chunks, &[0]).data.len()
}

const SCHEMES: [(&str, CompressionScheme); 3] = [
    ("none", CompressionScheme::None),
    ("lz4", CompressionScheme::Lz4),
    ("bg4_lz4", CompressionScheme::ByteGrouping4Lz4),
];

fn ratio_table(name: &str, data: &[u8]) {
    let runs = 5;
    let mb = data.len() as f64 / 1e6;
    let mut dst = vec![0u8; data.len()];
    let mut buf = Vec::with_capacity(data.len() + data.len() / 8);
    let mut rows: Vec<(String, Duration, String)> = Vec::new();
    rows.push((
        "memcpy".into(),
        best_of(runs, || dst.copy_from_slice(black_box(data))),
        String::new(),
    ));
    let bg4_chunks = predict_pass(data);
    rows.push((
        "predict_bg4".into(),
        best_of(runs, || {
            black_box(predict_pass(black_box(data)));
        }),
        format!("{bg4_chunks}/{} chunks bg4", data.len().div_ceil(CHUNK)),
    ));
    rows.push((
        "bg4_split".into(),
        best_of(runs, || split_pass(black_box(data), &mut buf)),
        String::new(),
    ));
    rows.push((
        "bg4_regroup".into(),
        best_of(runs, || regroup_pass(black_box(data), &mut buf)),
        String::new(),
    ));
    for (sname, s) in SCHEMES {
        let compressed = compress_all(data, s);
        let size: usize = compressed.iter().map(|(_, p)| p.len()).sum();
        let raw = compressed
            .iter()
            .filter(|(u, _)| *u == CompressionScheme::None)
            .count();
        rows.push((
            format!("compress {sname}"),
            best_of(runs, || {
                black_box(compress_pass(black_box(data), s, &mut buf));
            }),
            format!(
                "ratio {:.3}, {raw} chunks stored raw",
                size as f64 / data.len() as f64
            ),
        ));
        rows.push((
            format!("decompress {sname}"),
            best_of(runs, || {
                decompress_pass(black_box(data), &compressed, &mut buf)
            }),
            String::new(),
        ));
    }
    let xlen = xorb_pass(data);
    rows.push((
        "serialize_xorb (auto)".into(),
        best_of(runs, || {
            black_box(xorb_pass(black_box(data)));
        }),
        format!("ratio {:.3}", xlen as f64 / data.len() as f64),
    ));
    black_box(&dst);
    let memcpy = rows[0].1.as_secs_f64();
    println!(
        "\n{name}: {:.1} MiB in {} KiB chunks",
        data.len() as f64 / (1 << 20) as f64,
        CHUNK / 1024
    );
    println!(
        "| {:<24} | {:>9} | {:>10} | {:<34} |",
        "op", "MB/s", "vs memcpy", "note"
    );
    println!("|{:-<26}|{:->11}|{:->12}|{:-<36}|", "", "", "", "");
    for (op, t, note) in &rows {
        let s = t.as_secs_f64();
        println!(
            "| {:<24} | {:>9.0} | {:>9.1}% | {:<34} |",
            op,
            mb / s,
            100.0 * memcpy / s,
            note
        );
    }
}

fn criterion_groups(c: &mut Criterion, name: &str, data: &[u8]) {
    let mut dst = vec![0u8; data.len()];
    let mut buf = Vec::with_capacity(data.len() + data.len() / 8);
    let mut g = c.benchmark_group(format!("compression/{name}"));
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("memcpy", |b| {
        b.iter(|| dst.copy_from_slice(black_box(data)))
    });
    g.bench_function("predict_bg4", |b| b.iter(|| predict_pass(black_box(data))));
    g.bench_function("bg4_split", |b| {
        b.iter(|| split_pass(black_box(data), &mut buf))
    });
    g.bench_function("bg4_regroup", |b| {
        b.iter(|| regroup_pass(black_box(data), &mut buf))
    });
    for (sname, s) in SCHEMES {
        g.bench_function(format!("compress_{sname}"), |b| {
            b.iter(|| compress_pass(black_box(data), s, &mut buf))
        });
        let compressed = compress_all(data, s);
        g.bench_function(format!("decompress_{sname}"), |b| {
            b.iter(|| decompress_pass(black_box(data), &compressed, &mut buf))
        });
    }
    g.bench_function("serialize_xorb_auto", |b| {
        b.iter(|| xorb_pass(black_box(data)))
    });
    g.finish();
}

fn main() {
    let mib: usize = hugbucket_bench::env_number("COMPRESSION_MIB", 64);
    let n = mib << 20;
    let datasets = [("text", text_data(n)), ("f32", f32_data(n))];
    for (name, data) in &datasets {
        ratio_table(name, data);
    }
    if std::env::var_os("COMPRESSION_TABLE_ONLY").is_some() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    for (name, data) in &datasets {
        criterion_groups(&mut c, name, data);
    }
    c.final_summary();
}
