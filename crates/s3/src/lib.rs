//! # hugbucket-s3
//!
//! The S3 front-end of HugBucket, protocol and runtime layers:
//!
//! - [`auth`]: SigV4 (header, presigned, aws-chunked with chunk signatures and checksum
//!   trailers), SigV2 (presigned and header), body verification (`x-amz-content-sha256`,
//!   `Content-MD5`, `x-amz-checksum-*`), clock skew.
//! - [`xml`]: S3 response documents and bounded request-body parsers, written with
//!   [`xml_writer`].
//! - [`dates`]: every date format of the protocol; [`encoding`]: its percent-encoding sets.
//! - [`router`]: path-style and virtual-hosted-style addressing to an [`router::Operation`].
//! - [`error`]: the S3 error type (codes, statuses, XML body).
//! - [`frontend`]: the front door of every request (limits, routing, auth, body plan) and
//!   response decorations (request ids, XML errors).
//! - [`runtime`]: hyper served thread-per-core on glommio (default) or pinned tokio
//!   current-thread runtimes, the progress watchdog, and the one bridge to the tokio core.
//! - [`service`]: the S3 operations on top of the gateway core (`hugbucket-core`), and
//!   [`service::start`] which serves them thread-per-core with graceful shutdown.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod core_error;
pub mod dates;
pub mod encoding;
pub mod error;
pub mod frontend;
pub mod metrics;
pub mod router;
pub mod runtime;
pub mod service;
pub mod xml;
pub mod xml_writer;

pub use error::{S3Error, S3ErrorCode};
