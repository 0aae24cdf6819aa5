//! `hugbucket-bench`: a warp-style load generator for the S3 and FTP front-ends.
//!
//! * [`cli`]: the command line (clap) and the entry point [`cli::main`].
//! * [`s3`] / [`ftp`]: the protocol drivers (modes, preparation, workers).
//! * [`sigv4`]: the client-side SigV4 signer (also used by the `s3_gateway` bench).
//! * [`data`]: deterministic object contents (BLAKE3 XOF of seed and key), generated and
//!   verified as streams.
//! * [`stats`], [`report`]: latency histogram, counters, text/JSON report, progress line.
//! * [`spec`]: sizes, durations and operation mixes on the command line.

pub mod cli;
pub mod data;
pub mod ftp;
pub mod report;
pub mod s3;
pub mod sigv4;
pub mod spec;
pub mod stats;

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this much wall time.
    Duration(Duration),
    /// After this many operations (successful or not).
    Ops(u64),
}

impl Limit {
    /// A dispenser for a phase starting now.
    pub fn dispenser(&self) -> stats::Dispenser {
        match *self {
            Limit::Duration(d) => stats::Dispenser::new(None, Some(Instant::now() + d)),
            Limit::Ops(n) => stats::Dispenser::new(Some(n), None),
        }
    }
}

/// Why a run could not be carried out (as opposed to operations that failed, which are
/// counted in the report).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad command-line value.
    #[error("{0}")]
    Usage(String),
    /// The target is not on loopback and `--allow-remote` was not given.
    #[error(
        "{0} is not a loopback address; pass --allow-remote to load a remote server on purpose"
    )]
    Remote(String),
    /// Setting up (bucket creation, login, pre-upload) failed.
    #[error("setup failed: {0}")]
    Setup(String),
    /// Writing the JSON report failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Building the async runtime failed.
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
}

/// Refuses a host that is not loopback (`127.0.0.0/8`, `::1`, `localhost`) unless `allow`.
pub fn check_loopback(host: &str, allow: bool) -> Result<(), LoadError> {
    if allow {
        return Ok(());
    }
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let ok =
        h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if ok {
        Ok(())
    } else {
        Err(LoadError::Remote(host.to_string()))
    }
}

/// Workers' key for object number `i`: `{prefix}obj-{i:08}`.
pub fn object_key(prefix: &str, i: u64) -> String {
    format!("{prefix}obj-{i:08}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_unless_allowed() {
        for ok in [
            "127.0.0.1",
            "127.1.2.3",
            "localhost",
            "LOCALHOST",
            "[::1]",
            "::1",
        ] {
            assert!(check_loopback(ok, false).is_ok(), "{ok}");
        }
        for bad in ["10.0.0.1", "example.com", "0.0.0.0", "[::2]", ""] {
            assert!(
                matches!(check_loopback(bad, false), Err(LoadError::Remote(_))),
                "{bad}"
            );
            assert!(check_loopback(bad, true).is_ok());
        }
    }

    #[test]
    fn keys_sort_by_number() {
        assert_eq!(object_key("bench/", 7), "bench/obj-00000007");
        assert!(object_key("p/", 9) < object_key("p/", 10));
    }
}
