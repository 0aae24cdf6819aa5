//! HugBucket: S3 and FTP gateway to Hugging Face Storage Buckets.
//!
//! Layers (see ARCHITECTURE.md):
//! - [`cli`]: the `hugbucket` command line (clap).
//! - [`hashcmd`]: `hugbucket hash`.
//! - the embedded hub lives in the `hugbucket-hub` crate (`server/hub`).

pub mod cli;
pub mod hashcmd;

