//! Client for the Hugging Face Hub bucket API (spec §7) and the Xet CAS API (spec §6), as
//! huggingface_hub 2.4 + hf_xet 1.8 call them.
//!
//! * [`HubClient`]: whoami, bucket create/info/list/delete/settings/move, tree listing and
//!   paths-info, the NDJSON batch call, resolve `HEAD`, and Xet token fetch with a cache per
//!   (bucket, scope) refreshed before expiry.
//! * [`CasClient`] (obtained from [`HubClient::cas`]): xorb upload through grants with the
//!   legacy fallback, shard upload (`/v2` NDJSON with `/v1` fallback), reconstructions (`/v2`
//!   with `/v1` fallback, normalized into [`Reconstruction`]), the global dedup query, and
//!   ranged xorb fetches from presigned URLs as a stream of `Bytes`.
//!
//! All failures are one [`UpstreamError`] saying whether they are retryable and whose
//! [`Fault`] they are. Retryable failures are retried with jittered exponential backoff
//! bounded in attempts and total time ([`RetryConfig`]).
//!
//! The client needs a tokio runtime (reqwest). TLS is rustls with the `ring` provider,
//! installed as the process default on first construction.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cas;
mod coalesce;
pub mod config;
pub mod encode;
pub mod error;
pub mod hub;
pub mod link;
pub mod metrics;
pub mod models;
pub mod ratelimit;
pub mod reconstruction;
pub mod retry;
mod session;
pub mod shard_stream;
pub mod token;
mod transport;

pub use cas::{CasClient, ShardUpload, XorbRangeStream, XorbUpload};
pub use config::{RetryConfig, UpstreamConfig, discover_hf_token};
pub use encode::{BucketId, quote_segment};
pub use error::{Fault, HttpFailure, Result, UpstreamError};
pub use hub::{CommitAnnouncement, HubClient, PacedCommits, Pager};
pub use models::{
    BatchFailure, BatchOp, BatchOutcome, BucketInfo, CreateBucketOptions, RemoteDirectory,
    RemoteFile, ResolvedFile, TreeEntry, Visibility, WhoAmI,
};
pub use ratelimit::RouteClass;
pub use reconstruction::{ByteRange, FetchEntry, Reconstruction, ReconstructionTerm};
pub use token::{TokenScope, XetToken};
pub use transport::{install_crypto_provider, new_session_id};
