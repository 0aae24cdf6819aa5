//! HugBucket: S3 and FTP gateway to Hugging Face Storage Buckets.
//!
//! Layers (see ARCHITECTURE.md):
//! - [`cli`]: the `hugbucket` command line (clap).
//! - [`hashcmd`]: `hugbucket hash`.
//! - [`hub`]: the embedded HF-compatible Hub + Xet CAS server (`hugbucket hub`).

pub mod cli;
pub mod hashcmd;
pub mod hub;
