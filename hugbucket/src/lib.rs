//! HugBucket: S3 and FTP gateway to Hugging Face Storage Buckets.
//!
//! Layers (see ARCHITECTURE.md):
//! - [`cli`]: the `hugbucket` command line (clap).
//! - [`hashcmd`]: `hugbucket hash`.
//! - [`serve`]: `hugbucket serve` (upstream, core, front-ends, admin endpoints), configured
//!   by [`config`] (the config-file layer is applied in [`cli`]); [`credentials`] holds the
//!   S3 key pairs, [`frontends`] starts S3/FTP, [`metrics`] renders Prometheus text.
//! - the embedded hub lives in the `hugbucket-hub` crate (`crates/hub`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
pub mod config;
pub mod credentials;
pub mod frontends;
pub mod hashcmd;
pub mod metrics;
pub mod serve;
