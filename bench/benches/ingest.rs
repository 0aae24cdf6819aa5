//! The whole upload pipeline (CDC, chunk hashing, compression, xorb serialization: the
//! engine's `UploadSession`) on random and on text-like data, next to baselines measured in
//! the same run on the same buffer (memcpy, one-shot BLAKE3), with the CPU time it used per
//! wall second (2.0 = both cores busy).
//!
//! Run: `cargo bench -p hugbucket-bench --bench ingest`. `INGEST_MIB` sets the buffer size
//! (default 256).

use std::hint::black_box;

use hugbucket_bench::{best_of, mb_per_s, process_cpu_time, random_data, text_data};
use hugbucket_engine::ingest::UploadSession;

fn ingest(data: &[u8]) -> usize {
    let mut session = UploadSession::new();
    let mut file = session.start_file();
    let mut stored = 0;
    for piece in data.chunks(8 << 20) {
        file.write(piece);
        stored += file
            .take_completed_xorbs()
            .iter()
            .map(|x| x.data.len())
            .sum::<usize>();
    }
    file.finish();
    let out = session.finish();
    stored + out.xorbs.iter().map(|x| x.data.len()).sum::<usize>()
}

fn main() {
    let mib: usize = hugbucket_bench::env_number("INGEST_MIB", 256);
    let n = mib << 20;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("ingest pipeline, {mib} MiB buffers, {cores} cores");
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>9}",
        "data",
        "memcpy MB/s",
        "blake3 MB/s",
        "ingest MB/s",
        "/memcpy",
        "/blake3",
        "stored",
        "cpu/wall"
    );
    for (name, data) in [
        ("random", random_data("bench/ingest", n)),
        ("text", text_data(n)),
    ] {
        let mut dst = vec![0u8; n];
        let memcpy = best_of(5, || dst.copy_from_slice(black_box(&data)));
        let b3 = best_of(5, || {
            black_box(blake3::hash(black_box(&data)));
        });
        let mut stored = 0;
        let cpu0 = process_cpu_time();
        let t0 = std::time::Instant::now();
        let best = best_of(3, || stored = ingest(black_box(&data)));
        let wall = t0.elapsed();
        let cpu = process_cpu_time()
            .zip(cpu0)
            .map(|(a, b)| (a - b).as_secs_f64() / wall.as_secs_f64());
        let (m, b, i) = (mb_per_s(n, memcpy), mb_per_s(n, b3), mb_per_s(n, best));
        println!(
            "{name:<8} {m:>12.0} {b:>12.0} {i:>12.0} {:>9.1}% {:>9.1}% {:>9.1}% {:>9}",
            100.0 * i / m,
            100.0 * i / b,
            100.0 * stored as f64 / n as f64,
            cpu.map_or("n/a".into(), |c| format!("{c:.2}")),
        );
    }
}
