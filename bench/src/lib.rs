//! Helpers shared by the benchmarks: deterministic test data, best-of timing, and process
//! CPU time (to show how many cores a pipeline keeps busy); and the `hugbucket-bench` load
//! generator ([`load`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod load;

use std::time::{Duration, Instant};

/// Random bytes: the BLAKE3 XOF of `label`.
pub fn random_data(label: &str, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    blake3::Hasher::new()
        .update(label.as_bytes())
        .finalize_xof()
        .fill(&mut b);
    b
}

/// Text-like bytes: words from a small vocabulary with spaces, punctuation and newlines,
/// picked by a xorshift generator (deterministic).
pub fn text_data(n: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be",
        "by", "this", "are", "from", "at", "or", "an", "which", "chunk", "storage", "bucket",
        "content", "defined", "hash", "file", "upload", "model", "weights", "tensor", "gateway",
        "protocol", "network", "server", "client", "request", "response", "data",
    ];
    let mut out = Vec::with_capacity(n + 16);
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut col = 0;
    while out.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let w = WORDS[(s % WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        match (s >> 32) % 16 {
            0 => out.extend_from_slice(b". "),
            1 => out.extend_from_slice(b", "),
            _ if col > 72 => {
                out.push(b'\n');
                col = 0;
            }
            _ => out.push(b' '),
        }
    }
    out.truncate(n);
    out
}

/// Best wall time of `runs` calls.
pub fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// CPU time (user + system) of this process so far, all threads included (from
/// `/proc/self/stat`, clock-tick resolution). `None` off Linux.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream configuration.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The number in environment variable `name` (a bench's size or duration knob), or
/// `default` when it is unset or not a number.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// MB/s of `bytes` in `d`.
pub fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}
