//! Object semantics on Hugging Face Storage Buckets over Xet: the gateway core that the S3
//! and FTP front-ends translate to. Contract: `docs/core-api.md`.
//!
//! - S3 bucket `name` ↔ Hub bucket `{namespace}/{name}`; the namespace comes from whoami.
//! - PUT streams the body through the engine's ingest pipeline, uploading each xorb while
//!   the body arrives, then the shard, then registers the path with a batch `addFile`. An
//!   upload that fails at any step registers nothing: the previous object stays visible.
//! - GET asks the CAS for the reconstruction of just the requested range and streams the
//!   decoded chunks out with a bounded prefetch window.
//! - Copy registers the existing content hash at the new path: no bytes move.
//! - Multipart parts are ingested and uploaded when they arrive; the upload and its parts
//!   are recorded in the bucket itself (hidden entries under `.hugbucket/uploads/`), so any
//!   node of a fleet can continue, list, complete or abort any upload.
//!
//! All of it runs on tokio (reqwest lives there), on runtimes the core picks itself, so
//! any executor can await its calls (`route`). Each key belongs to one shard, which owns
//! its metadata cache entry, reconstructions, single-flight fetches and write order; a
//! call about one object goes through an [`ObjectRef`] and, with `key_shard_cpus` set,
//! runs on its shard's pinned runtime (see `shards`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod affinity;
mod bucket;
mod commit;
mod config;
mod error;
mod flight;
mod gateway;
mod get;
mod list;
mod multipart;
pub mod names;
mod object;
mod put;
mod route;
mod shards;
mod sidecar;
mod small;
pub mod state;
mod ttl;
mod types;

pub use config::CoreConfig;
pub use error::{CoreError, Result, UpstreamFailure, UpstreamKind};
pub use gateway::Gateway;
pub(crate) use gateway::UploadGuard;
/// The upstream client a [`Gateway`] is built on, and its settings: whoever builds a
/// gateway (the binary, a front-end's tests) needs no dependency on `hugbucket-upstream`.
pub use hugbucket_upstream::{HubClient, RetryConfig, UpstreamConfig};
pub use object::ObjectRef;
pub use put::INGEST_BLOCK;
pub use shards::spawn_abortable;
pub use sidecar::sidecar_path;
pub use state::{MemoryState, SledState, StateStore};
pub use types::{
    BucketInfo, ByteRange, ByteStream, CopyMetadata, GetResult, ListPage, ListRequest,
    MultipartUpload, ObjectExtra, ObjectMeta, PartMeta, PutOptions, WriteCondition,
};
