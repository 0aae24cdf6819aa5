//! The final report (text and JSON) and the once-a-second progress line.
//!
//! # JSON fields (stable)
//!
//! | field | meaning |
//! |---|---|
//! | `tool` | always `"hugbucket-bench"` |
//! | `protocol` | `"s3"` or `"ftp"` |
//! | `mode` | the `--mode` value (`put`, `get`, `mixed`, `list`, `multipart`, `stor`, `retr`) |
//! | `target` | endpoint URL (S3) or `host:port` (FTP) |
//! | `concurrency` | parallel workers (S3 requests / FTP sessions) |
//! | `size_min`, `size_max` | object size bounds in bytes |
//! | `seed` | data seed |
//! | `verify` | whether reads were checked byte by byte |
//! | `duration_s` | wall time of the measured phase (preparation excluded) |
//! | `ops` | successful operations (multipart: completed uploads) |
//! | `ops_per_s` | `ops / duration_s` |
//! | `bytes` | payload bytes of the successful operations |
//! | `mib_per_s` | `bytes / 2^20 / duration_s` |
//! | `errors` | failed operations (status, transport, timeout or verification) |
//! | `error_samples` | the first few error messages, each `"<op> <key>: <what>"` |
//! | `latency_ms` | `{p50, p90, p99, max, mean}` of the successful operations, or `null` |
//! | `by_op` | per operation name (`put`, `get`, `list`, `delete`, `multipart`, `part`, `stor`, `retr`): `{ops, ops_per_s, bytes, mib_per_s, errors, latency_ms}` |
//!
//! In multipart mode `by_op.part` describes the single UploadPart requests; they are not
//! added to the totals (their bytes are already in the completed uploads).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::spec::SizeSpec;
use super::stats::{Histogram, Live, OpStats, Recorder};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram) -> Option<Self> {
        let ms = |us: u64| us as f64 / 1e3;
        Some(Self {
            p50: ms(h.percentile(50.0)?),
            p90: ms(h.percentile(90.0)?),
            p99: ms(h.percentile(99.0)?),
            max: ms(h.max()?),
            mean: h.mean()? / 1e3,
        })
    }
}

/// Figures of one operation type (or of the total).
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Successful operations.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Payload bytes.
    pub bytes: u64,
    /// MiB per second.
    pub mib_per_s: f64,
    /// Failed operations.
    pub errors: u64,
    /// Latency of the successful operations.
    pub latency_ms: Option<Latency>,
}

impl OpReport {
    fn of(s: &OpStats, secs: f64) -> Self {
        let secs = secs.max(1e-9);
        Self {
            ops: s.ops,
            ops_per_s: s.ops as f64 / secs,
            bytes: s.bytes,
            mib_per_s: s.bytes as f64 / (1u64 << 20) as f64 / secs,
            errors: s.errors,
            latency_ms: Latency::of(&s.latency),
        }
    }
}

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `s3` or `ftp`.
    pub protocol: &'static str,
    /// The mode name.
    pub mode: String,
    /// Endpoint or host:port.
    pub target: String,
    /// Workers.
    pub concurrency: usize,
    /// Object sizes.
    pub size: SizeSpec,
    /// Data seed.
    pub seed: u64,
    /// Reads verified.
    pub verify: bool,
}

/// The final report; see the module documentation for the JSON fields.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `hugbucket-bench`.
    pub tool: &'static str,
    /// `s3` or `ftp`.
    pub protocol: &'static str,
    /// Mode.
    pub mode: String,
    /// Endpoint.
    pub target: String,
    /// Workers.
    pub concurrency: usize,
    /// Smallest object size.
    pub size_min: u64,
    /// Largest object size.
    pub size_max: u64,
    /// Data seed.
    pub seed: u64,
    /// Reads verified.
    pub verify: bool,
    /// Measured seconds.
    pub duration_s: f64,
    /// Successful operations.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Payload bytes.
    pub bytes: u64,
    /// MiB per second.
    pub mib_per_s: f64,
    /// Failed operations.
    pub errors: u64,
    /// First error messages.
    pub error_samples: Vec<String>,
    /// Latency of all successful (non-auxiliary) operations.
    pub latency_ms: Option<Latency>,
    /// Per operation name.
    pub by_op: BTreeMap<String, OpReport>,
}

impl Report {
    /// Builds the report; operations named in `aux` are listed but not added to the totals.
    pub fn new(
        info: &RunInfo,
        rec: &Recorder,
        elapsed: Duration,
        error_samples: Vec<String>,
        aux: &[&str],
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let mut total = OpStats::default();
        let mut by_op = BTreeMap::new();
        for (name, s) in &rec.ops {
            // A failed part fails its upload, which is counted there.
            if !aux.contains(name) {
                total.merge(s);
            }
            by_op.insert((*name).to_string(), OpReport::of(s, secs));
        }
        let t = OpReport::of(&total, secs);
        Self {
            tool: "hugbucket-bench",
            protocol: info.protocol,
            mode: info.mode.clone(),
            target: info.target.clone(),
            concurrency: info.concurrency,
            size_min: info.size.min,
            size_max: info.size.max,
            seed: info.seed,
            verify: info.verify,
            duration_s: secs,
            ops: t.ops,
            ops_per_s: t.ops_per_s,
            bytes: t.bytes,
            mib_per_s: t.mib_per_s,
            errors: t.errors,
            error_samples,
            latency_ms: t.latency_ms,
            by_op,
        }
    }

    /// Human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} {} on {}: size {}, concurrency {}, {:.2} s{}",
            self.protocol,
            self.mode,
            self.target,
            SizeSpec {
                min: self.size_min,
                max: self.size_max
            },
            self.concurrency,
            self.duration_s,
            if self.verify { ", verified" } else { "" }
        );
        let _ = writeln!(
            s,
            "{:<10} {:>9} {:>10} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "op", "ops", "ops/s", "MiB/s", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let line = |s: &mut String, name: &str, r: &OpReport| {
            let l = |f: fn(&Latency) -> f64| {
                r.latency_ms
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |x| format!("{:.3}", f(x)))
            };
            let _ = writeln!(
                s,
                "{:<10} {:>9} {:>10.1} {:>9.2} {:>7} {:>9} {:>9} {:>9} {:>9}",
                name,
                r.ops,
                r.ops_per_s,
                r.mib_per_s,
                r.errors,
                l(|x| x.p50),
                l(|x| x.p90),
                l(|x| x.p99),
                l(|x| x.max)
            );
        };
        for (name, r) in &self.by_op {
            line(&mut s, name, r);
        }
        if self.by_op.len() != 1 {
            let total = OpReport {
                ops: self.ops,
                ops_per_s: self.ops_per_s,
                bytes: self.bytes,
                mib_per_s: self.mib_per_s,
                errors: self.errors,
                latency_ms: self.latency_ms.clone(),
            };
            line(&mut s, "total", &total);
        }
        if self.errors == 0 {
            let _ = writeln!(s, "errors: none");
        } else {
            let _ = writeln!(
                s,
                "errors: {} (first {}):",
                self.errors,
                self.error_samples.len()
            );
            for e in &self.error_samples {
                let _ = writeln!(s, "  {e}");
            }
        }
        s
    }
}

/// Prints `t  ops/s  MiB/s  errors` on stderr every second until dropped.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the progress line (nothing when `quiet`).
    pub fn start(live: Arc<Live>, label: String, quiet: bool) -> Self {
        if quiet {
            return Self { task: None };
        }
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut ops0, mut bytes0) = (0u64, 0u64);
            loop {
                tick.tick().await;
                let ops = live.ops.load(Ordering::Relaxed);
                let bytes = live.bytes.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                eprintln!(
                    "[{label} {:>4.0}s] {:>9} ops/s {:>9.2} MiB/s  total {ops} ops, {errors} errors",
                    start.elapsed().as_secs_f64(),
                    ops - ops0,
                    (bytes - bytes0) as f64 / (1u64 << 20) as f64,
                );
                (ops0, bytes0) = (ops, bytes);
            }
        });
        Self { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_exclude_aux_ops_and_rates_use_elapsed() {
        let live = Live::default();
        let mut rec = Recorder::default();
        let t = Instant::now();
        for _ in 0..4 {
            rec.ok(&live, "multipart", t, 8 << 20);
        }
        for _ in 0..8 {
            rec.ok(&live, "part", t, 4 << 20);
        }
        rec.err(&live, &Default::default(), "multipart", "k", "boom");
        let info = RunInfo {
            protocol: "s3",
            mode: "multipart".into(),
            target: "http://127.0.0.1:1".into(),
            concurrency: 2,
            size: SizeSpec::fixed(8 << 20),
            seed: 1,
            verify: false,
        };
        let r = Report::new(
            &info,
            &rec,
            Duration::from_secs(2),
            vec!["x".into()],
            &["part"],
        );
        assert_eq!(r.ops, 4);
        assert_eq!(r.bytes, 32 << 20);
        assert_eq!(r.errors, 1);
        assert_eq!(r.ops_per_s, 2.0);
        assert_eq!(r.mib_per_s, 16.0);
        assert_eq!(r.by_op["part"].ops, 8);
        assert_eq!(r.by_op["part"].mib_per_s, 16.0);
        let v = serde_json::to_value(&r).unwrap();
        for field in [
            "tool",
            "protocol",
            "mode",
            "target",
            "concurrency",
            "size_min",
            "size_max",
            "seed",
            "verify",
            "duration_s",
            "ops",
            "ops_per_s",
            "bytes",
            "mib_per_s",
            "errors",
            "error_samples",
            "latency_ms",
            "by_op",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert!(v["latency_ms"]["p99"].is_number());
        let text = r.to_text();
        assert!(text.contains("errors: 1"), "{text}");
        assert!(text.contains("total"), "{text}");
    }
}
