//! Multipart uploads, with their state in the bucket so that any node of a fleet can take
//! a part, list, complete or abort any upload (layout: [`records`], `docs/core-api.md`).
//!
//! - Create writes `.hugbucket/uploads/{id}/upload.json` (one small Xet file, one `/batch`).
//! - UploadPart ingests the part (its xorbs go to the CAS), stores the part's *manifest*
//!   (terms, verification hashes, chunk list: a small Xet file, CAS calls only) and
//!   registers the entry `part-{n}-{size}-{manifest hash}` through a group commit shared
//!   with every other part this node takes in that bucket ([`coalesce`]). The ETag is the
//!   manifest hash.
//! - Complete lists the upload's directory (one call), reads the named manifests from the
//!   CAS, uploads one shard for the composed file and, in one `/batch`, adds the object and
//!   deletes the upload's entries: no data bytes move, and the object appears exactly when
//!   the upload disappears.
//! - Uploads begun by an older version are in local state only: [`legacy`] still serves
//!   them on their node.
//!
//! Each part is chunked on its own, so the content hash of a multipart object can differ
//! from the hash of the same bytes uploaded in one piece (both are valid Xet files).

mod coalesce;
mod etags;
mod legacy;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hugbucket_engine::XetHash;
use hugbucket_engine::hash::file_hash;
use hugbucket_engine::shard::{FileEntry, Shard};
use hugbucket_upstream::{BatchOp, BucketId, CasClient, RemoteFile, TokenScope, TreeEntry};

pub(crate) use coalesce::Coalescer;

/// Upload records this node has read, by (bucket, upload id), with their Xet hash.
pub(crate) type RecordCache = std::sync::Mutex<HashMap<(String, String), (XetHash, UploadRecord)>>;
pub(crate) use records::is_upload_record;
use records::{Entry, Manifest, PartName, UploadRecord};

use crate::commit::NewFile;
use crate::error::{CoreError, Result};
use crate::names::{self, etag, now_millis};
use crate::types::{
    ByteRange, ByteStream, MultipartUpload, ObjectMeta, PartMeta, PutOptions, WriteCondition,
};
use crate::{Gateway, ObjectRef, put};

/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's highest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Upload directories without an upload record (entries of parts that raced with a
/// Complete or Abort) are removed by the sweep after this long.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// Manifests read at once by Complete.
const MANIFEST_READS: usize = 8;
/// Upload records cached per node (they never change; the cache is cleared when full).
const RECORD_CACHE: usize = 10_000;

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// A part's file terms as its records keep them: `(xorb, chunk start, chunk end,
/// unpacked bytes)`.
fn part_terms(entry: &FileEntry) -> Vec<(XetHash, u32, u32, u32)> {
    entry
        .terms
        .iter()
        .map(|t| (t.xorb_hash, t.chunk_start, t.chunk_end, t.unpacked_bytes))
        .collect()
}

fn no_such_upload(upload_id: &str) -> CoreError {
    CoreError::NoSuchUpload(upload_id.to_string())
}

/// When a file was last written (its mtime, else its upload time), as the Hub says.
pub(crate) fn entry_time(f: &RemoteFile) -> SystemTime {
    names::hub_time(f.mtime.as_deref().or(f.uploaded_at.as_deref()))
}

/// What an upload's directory holds right now.
struct UploadDir {
    record: Option<RemoteFile>,
    parts: Vec<(PartName, RemoteFile)>,
    /// Every path in it (all are deleted with the upload).
    paths: Vec<String>,
}

impl UploadDir {
    /// Record first: when the deletion spans several batches, the upload disappears first.
    fn paths_record_first(&self) -> Vec<String> {
        let mut out: Vec<String> = self.record.iter().map(|r| r.path.clone()).collect();
        out.extend(
            self.paths
                .iter()
                .filter(|p| self.record.as_ref().is_none_or(|r| &r.path != *p))
                .cloned(),
        );
        out
    }

    /// The part of each number: the newest entry.
    fn latest_parts(&self) -> BTreeMap<u32, (&PartName, &RemoteFile)> {
        let mut out: BTreeMap<u32, (&PartName, &RemoteFile)> = BTreeMap::new();
        for (name, f) in &self.parts {
            let newer = out
                .get(&name.number)
                .is_none_or(|(_, old)| entry_time(f) >= entry_time(old));
            if newer {
                out.insert(name.number, (name, f));
            }
        }
        out
    }
}

impl Gateway {
    // ---------------------------------------------------------------- small files

    /// Ingests a part's body into the CAS (its xorbs uploaded, no shard yet), counted as an
    /// upload in flight: the ingest, the part's file entry and its size in bytes.
    pub(super) async fn ingest_part(
        &self,
        bucket: &str,
        id: &BucketId,
        body: crate::ByteStream,
        size_hint: Option<u64>,
    ) -> Result<(put::Ingested, FileEntry, u64)> {
        let _counted = crate::UploadGuard::enter(&self.inner.uploads_in_flight);
        let cas = self.cas(id, TokenScope::Write);
        cas.token().await.map_err(Self::bucket_err(bucket))?;
        let ingested = put::ingest_and_upload(
            &cas,
            body,
            size_hint,
            self.inner.config.max_concurrent_xorb_uploads,
            &self.inner.xorb_buffers,
        )
        .await?;
        let (entry, size) = ingested
            .output
            .files
            .first()
            .cloned()
            .ok_or_else(|| CoreError::Internal("ingest produced no file".into()))?;
        Ok((ingested, entry, size))
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        cas: &CasClient,
        hash: XetHash,
    ) -> Result<T> {
        let raw = self
            .read_small_file(cas, hash, records::MAX_RECORD_BYTES)
            .await?;
        serde_json::from_slice(&raw)
            .map_err(|e| CoreError::Internal(format!("multipart record {hash}: {e}")))
    }

    // ---------------------------------------------------------------- upload records

    /// The record of `upload_id` as stored in `entry` (cached per node: records never
    /// change once written).
    async fn record_of(
        &self,
        bucket: &str,
        id: &BucketId,
        upload_id: &str,
        entry: &RemoteFile,
    ) -> Result<UploadRecord> {
        let cache_key = (bucket.to_string(), upload_id.to_string());
        if let Some(r) = self.cached_record(&cache_key, &entry.xet_hash) {
            return Ok(r);
        }
        let cas = self.cas(id, TokenScope::Read);
        let rec: UploadRecord = self.read_json(&cas, entry.xet_hash).await?;
        let mut cache = self.inner.upload_records.lock().expect("record cache");
        if cache.len() >= RECORD_CACHE {
            cache.clear();
        }
        cache.insert(cache_key, (entry.xet_hash, rec.clone()));
        Ok(rec)
    }

    fn cached_record(&self, key: &(String, String), hash: &XetHash) -> Option<UploadRecord> {
        let cache = self.inner.upload_records.lock().expect("record cache");
        cache
            .get(key)
            .filter(|(h, _)| h == hash)
            .map(|(_, r)| r.clone())
    }

    fn forget_record(&self, bucket: &str, upload_id: &str) {
        let key = (bucket.to_string(), upload_id.to_string());
        self.inner
            .upload_records
            .lock()
            .expect("record cache")
            .remove(&key);
    }

    /// The record of an upload for a part: from this node's cache when it has taken a part
    /// of it before (no Hub call), else looked up with paths-info. NoSuchUpload when absent
    /// or for another key.
    async fn record_for_part(
        &self,
        bucket: &str,
        id: &BucketId,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord> {
        let cache_key = (bucket.to_string(), upload_id.to_string());
        let cached = || {
            let cache = self.inner.upload_records.lock().expect("record cache");
            cache.get(&cache_key).map(|(_, r)| r.clone())
        };
        // Concurrent first parts of one upload make one lookup (lookups are rare: one per
        // upload and node, so one lock for all of them is enough).
        let mut rec = cached();
        let _lookup = match rec {
            Some(_) => None,
            None => Some(self.inner.record_lookup.lock().await),
        };
        if rec.is_none() {
            rec = cached();
        }
        let rec = match rec {
            Some(r) => r,
            None => {
                let path = records::upload_record_path(upload_id);
                let found = self
                    .inner
                    .hub
                    .paths_info(id, std::slice::from_ref(&path))
                    .await
                    .map_err(Self::bucket_err(bucket))?;
                let entry = found
                    .into_iter()
                    .find(|f| f.path == path)
                    .ok_or_else(|| no_such_upload(upload_id))?;
                self.record_of(bucket, id, upload_id, &entry).await?
            }
        };
        if rec.key != key {
            return Err(no_such_upload(upload_id));
        }
        Ok(rec)
    }

    /// The tree under `dir` (an upload directory or all of them), all pages.
    async fn uploads_tree(
        &self,
        bucket: &str,
        id: &BucketId,
        dir: &str,
        recursive: bool,
    ) -> Result<Vec<TreeEntry>> {
        self.inner
            .hub
            .list_tree(id, Some(dir), Some(recursive))?
            .collect_all()
            .await
            .map_err(Self::bucket_err(bucket))
    }

    /// Lists an upload's directory (one tree call, more for uploads past 1000 entries).
    async fn upload_dir(&self, bucket: &str, id: &BucketId, upload_id: &str) -> Result<UploadDir> {
        let dir = records::upload_dir(upload_id);
        let entries = self.uploads_tree(bucket, id, &dir, true).await?;
        let mut out = UploadDir {
            record: None,
            parts: Vec::new(),
            paths: Vec::new(),
        };
        for e in entries {
            let TreeEntry::File(f) = e else { continue };
            // The Hub matches the prefix lexically: keep this upload's entries only.
            let Some((uid, entry)) = records::parse_path(&f.path) else {
                continue;
            };
            if uid != upload_id {
                continue;
            }
            out.paths.push(f.path.clone());
            match entry {
                Entry::Record => out.record = Some(f),
                Entry::Part(name) => out.parts.push((name, f)),
                Entry::Other => {}
            }
        }
        Ok(out)
    }

    /// The upload's directory and record, checked against `key`.
    async fn open_upload(
        &self,
        bucket: &str,
        id: &BucketId,
        key: &str,
        upload_id: &str,
    ) -> Result<(UploadDir, UploadRecord)> {
        if !records::valid_upload_id(upload_id) {
            return Err(no_such_upload(upload_id));
        }
        let dir = self.upload_dir(bucket, id, upload_id).await?;
        let entry = dir
            .record
            .clone()
            .ok_or_else(|| no_such_upload(upload_id))?;
        let rec = self.record_of(bucket, id, upload_id, &entry).await?;
        if rec.key != key {
            return Err(no_such_upload(upload_id));
        }
        Ok((dir, rec))
    }

    // ---------------------------------------------------------------- operations

    /// See [`ObjectRef::create_multipart`].
    async fn create_multipart(&self, obj: &ObjectRef, opts: PutOptions) -> Result<String> {
        let (bucket, key) = (obj.bucket(), obj.key());
        let id = self.bucket_id(bucket).await?;
        let cas = self.cas(&id, TokenScope::Write);
        cas.token().await.map_err(Self::bucket_err(bucket))?;
        let upload_id = format!("{:032x}", rand::random::<u128>());
        let rec = UploadRecord {
            v: 1,
            key: key.to_string(),
            created_ms: now_millis(),
            content_type: opts.content_type,
            extra: opts.extra,
            mtime_ms: opts.mtime_ms,
        };
        let json = serde_json::to_vec(&rec).expect("plain records serialize");
        let hash = self.store_small_file(&cas, json).await?;
        let path = records::upload_record_path(&upload_id);
        let outcome = self
            .inner
            .hub
            .batch(
                &id,
                &[BatchOp::AddFile {
                    path: path.clone(),
                    xet_hash: hash,
                    mtime: rec.created_ms,
                    content_type: Some("application/json".into()),
                }],
            )
            .await
            .map_err(Self::bucket_err(bucket))?;
        if let Some(f) = outcome.failed.first() {
            return Err(CoreError::Internal(format!(
                "hub refused the upload record {path}: {}",
                f.error
            )));
        }
        let mut cache = self.inner.upload_records.lock().expect("record cache");
        cache.insert((bucket.to_string(), upload_id.clone()), (hash, rec));
        Ok(upload_id)
    }

    /// See [`ObjectRef::upload_part`].
    async fn upload_part(
        &self,
        obj: &ObjectRef,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<PartMeta> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(CoreError::InvalidArgument(format!(
                "part number must be 1..={MAX_PART_NUMBER}"
            )));
        }
        let (bucket, key) = (obj.bucket(), obj.key());
        if self.is_legacy_upload(upload_id)? {
            return self
                .legacy_upload_part(bucket, key, upload_id, part_number, body, size_hint)
                .await;
        }
        if !records::valid_upload_id(upload_id) {
            return Err(no_such_upload(upload_id));
        }
        let id = self.bucket_id(bucket).await?;
        self.record_for_part(bucket, &id, key, upload_id).await?;
        let (ingested, entry, size) = self.ingest_part(bucket, &id, body, size_hint).await?;
        let cas = self.cas(&id, TokenScope::Write);
        let manifest = Manifest {
            v: 1,
            size,
            terms: part_terms(&entry),
            verification: entry.verification.clone(),
            chunks: ingested.summary.chunks,
            nonce: format!("{:032x}", rand::random::<u128>()),
        };
        let json = serde_json::to_vec(&manifest).expect("plain records serialize");
        let manifest_hash = self.store_small_file(&cas, json).await?;
        let name = PartName {
            number: part_number,
            size,
            manifest: manifest_hash,
        };
        let created_ms = now_millis();
        let op = BatchOp::AddFile {
            path: records::part_path(upload_id, &name),
            xet_hash: manifest_hash,
            mtime: created_ms,
            content_type: Some("application/json".into()),
        };
        self.inner
            .part_records
            .submit(&self.inner.hub, &id, op)
            .await?;
        Ok(PartMeta {
            part_number,
            etag: etag(&manifest_hash, None),
            size,
            last_modified: names::from_millis(created_ms),
        })
    }

    /// See [`ObjectRef::upload_part_copy`].
    async fn upload_part_copy(
        &self,
        obj: &ObjectRef,
        upload_id: &str,
        part_number: u32,
        src: &ObjectRef,
        range: Option<ByteRange>,
    ) -> Result<PartMeta> {
        if !self.is_legacy_upload(upload_id)? {
            if !records::valid_upload_id(upload_id) {
                return Err(no_such_upload(upload_id));
            }
            let id = self.bucket_id(obj.bucket()).await?;
            self.record_for_part(obj.bucket(), &id, obj.key(), upload_id)
                .await?;
        }
        let src = self.get_object(src, range).await?;
        let len = match src.range {
            Some((a, b)) => b - a + 1,
            None => src.meta.size,
        };
        self.upload_part(obj, upload_id, part_number, src.body, Some(len))
            .await
    }

    /// See [`ObjectRef::complete_multipart`].
    async fn complete_multipart(
        &self,
        obj: &ObjectRef,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<WriteCondition>,
    ) -> Result<ObjectMeta> {
        let (bucket, key) = (obj.bucket(), obj.key());
        if self.is_legacy_upload(upload_id)? {
            return self.legacy_complete(obj, upload_id, parts, condition).await;
        }
        if parts.is_empty() {
            return Err(CoreError::InvalidArgument(
                "CompleteMultipartUpload needs at least one part".into(),
            ));
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(CoreError::InvalidPartOrder);
        }
        let wanted = parts
            .iter()
            .map(|(n, e)| {
                records::parse_part_etag(e)
                    .map(|h| (*n, h))
                    .ok_or_else(|| CoreError::InvalidPart(format!("part {n}: unknown ETag")))
            })
            .collect::<Result<Vec<_>>>()?;
        let id = self.bucket_id(bucket).await?;
        let (dir, rec) = match self.open_upload(bucket, &id, key, upload_id).await {
            Ok(found) => found,
            Err(CoreError::NoSuchUpload(_)) if records::valid_upload_id(upload_id) => {
                return self.completed_before(obj, &id, upload_id, &wanted).await;
            }
            Err(e) => return Err(e),
        };
        let mut chosen = Vec::with_capacity(wanted.len());
        for (n, hash) in &wanted {
            let entry = dir
                .parts
                .iter()
                .filter(|(p, _)| p.number == *n)
                .find(|(p, _)| p.manifest == *hash);
            match entry {
                Some(found) => chosen.push(found),
                None if dir.parts.iter().any(|(p, _)| p.number == *n) => {
                    return Err(CoreError::InvalidPart(format!(
                        "part {n}: ETag does not match"
                    )));
                }
                None => {
                    return Err(CoreError::InvalidPart(format!("part {n} was not uploaded")));
                }
            }
        }
        if chosen[..chosen.len() - 1]
            .iter()
            .any(|(p, _)| p.size < MIN_PART_SIZE)
        {
            return Err(CoreError::EntityTooSmall);
        }
        let (hash, sizes) = self.compose(&id, &wanted).await?;
        let file = NewFile {
            hash,
            size: sizes.iter().sum(),
            mtime: rec.mtime_ms.unwrap_or_else(now_millis),
            content_type: rec.content_type,
            extra: rec.extra,
            parts: sizes,
        };
        // One batch: the object, its sidecar (metadata, part sizes) and the removal of
        // every record of the upload.
        let mut ops = self.add_file_ops(&id, obj, &file).await?;
        ops.extend(
            dir.paths_record_first()
                .into_iter()
                .map(|path| BatchOp::DeleteFile { path }),
        );
        let _commit = self
            .register(&id, bucket, obj.path(), ops, condition.as_ref())
            .await?;
        self.set_multipart_etag(bucket, key, &hash, Some(wanted.len() as u32))?;
        self.forget_record(bucket, upload_id);
        Ok(file.into_meta(key))
    }

    /// Reads the parts' manifests, uploads the composed file's shard; returns its hash and
    /// the part sizes. Nothing but the shard is uploaded.
    async fn compose(
        &self,
        id: &BucketId,
        parts: &[(u32, XetHash)],
    ) -> Result<(XetHash, Vec<u64>)> {
        let read = self.cas(id, TokenScope::Read);
        let reads: Vec<_> = parts
            .iter()
            .map(|&(n, h)| self.read_manifest(read.clone(), n, h))
            .collect();
        let manifests: Vec<Manifest> = futures::stream::iter(reads)
            .buffered(MANIFEST_READS)
            .try_collect()
            .await?;
        let mut entry = FileEntry {
            file_hash: XetHash::ZERO,
            terms: Vec::new(),
            verification: Vec::new(),
            sha256: None,
        };
        let mut chunks = Vec::new();
        let mut sizes = Vec::with_capacity(manifests.len());
        for m in &manifests {
            entry.terms.extend(m.file_terms());
            entry.verification.extend(m.verification.iter().copied());
            chunks.extend(m.chunks.iter().copied());
            sizes.push(m.size);
        }
        entry.file_hash = file_hash(&chunks);
        let hash = entry.file_hash;
        let shard = Shard {
            files: vec![entry],
            xorbs: Vec::new(),
            footer: None,
        };
        self.cas(id, TokenScope::Write)
            .upload_shard(Bytes::from(shard.to_upload_bytes()))
            .await?;
        Ok((hash, sizes))
    }

    async fn read_manifest(&self, cas: CasClient, n: u32, hash: XetHash) -> Result<Manifest> {
        let m: Manifest = self.read_json(&cas, hash).await?;
        m.check()
            .map_err(|_| CoreError::InvalidPart(format!("part {n}: bad manifest")))?;
        Ok(m)
    }

    /// Complete of an upload that is gone: succeeds when the object at `key` is what these
    /// parts compose (a retry after a success, possibly through another node).
    async fn completed_before(
        &self,
        obj: &ObjectRef,
        id: &BucketId,
        upload_id: &str,
        parts: &[(u32, XetHash)],
    ) -> Result<ObjectMeta> {
        let current = match self.head_object(obj).await {
            Ok(m) => m,
            Err(CoreError::NoSuchKey(_)) => return Err(no_such_upload(upload_id)),
            Err(e) => return Err(e),
        };
        let read = self.cas(id, TokenScope::Read);
        let mut chunks = Vec::new();
        for (_, h) in parts {
            let Ok(m) = self.read_json::<Manifest>(&read, *h).await else {
                return Err(no_such_upload(upload_id));
            };
            chunks.extend(m.chunks);
        }
        if file_hash(&chunks) != current.xet_hash {
            return Err(no_such_upload(upload_id));
        }
        Ok(ObjectMeta {
            etag: etag(&current.xet_hash, Some(parts.len() as u32)),
            ..current
        })
    }

    /// See [`ObjectRef::abort_multipart`].
    async fn abort_multipart(&self, obj: &ObjectRef, upload_id: &str) -> Result<()> {
        let (bucket, key) = (obj.bucket(), obj.key());
        if self.is_legacy_upload(upload_id)? {
            return self.legacy_abort(bucket, key, upload_id).await;
        }
        let id = self.bucket_id(bucket).await?;
        let (dir, _) = self.open_upload(bucket, &id, key, upload_id).await?;
        self.delete_paths(bucket, &id, dir.paths_record_first())
            .await?;
        self.forget_record(bucket, upload_id);
        Ok(())
    }

    async fn delete_paths(&self, bucket: &str, id: &BucketId, paths: Vec<String>) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let ops: Vec<BatchOp> = paths
            .into_iter()
            .map(|path| BatchOp::DeleteFile { path })
            .collect();
        self.inner
            .hub
            .batch(id, &ops)
            .await
            .map_err(Self::bucket_err(bucket))?;
        Ok(())
    }

    /// Uploads in progress in `bucket` whose key starts with `prefix`, by key then time.
    /// Costs one tree listing and one paths-info call (plus CAS reads of records this node
    /// has not read before).
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartUpload>> {
        let (g, b, p) = (self.clone(), bucket.to_string(), prefix.to_string());
        self.on_work(async move { g.uploads_in(&b, &p).await })
            .await
    }

    async fn uploads_in(&self, bucket: &str, prefix: &str) -> Result<Vec<MultipartUpload>> {
        let id = self.bucket_id(bucket).await?;
        let dirs = self
            .uploads_tree(bucket, &id, records::UPLOADS_DIR, false)
            .await?;
        let ids: Vec<String> = dirs
            .iter()
            .filter_map(|e| match e {
                TreeEntry::Directory(d) => d
                    .path
                    .strip_prefix(records::UPLOADS_DIR)?
                    .strip_prefix('/')
                    .filter(|uid| records::valid_upload_id(uid))
                    .map(str::to_string),
                TreeEntry::File(_) => None,
            })
            .collect();
        let paths: Vec<String> = ids.iter().map(|u| records::upload_record_path(u)).collect();
        let found = self
            .inner
            .hub
            .paths_info(&id, &paths)
            .await
            .map_err(Self::bucket_err(bucket))?;
        let mut out = self.legacy_list_uploads(bucket, prefix).await?;
        for f in found {
            let Some((uid, Entry::Record)) = records::parse_path(&f.path) else {
                continue;
            };
            let rec = self.record_of(bucket, &id, uid, &f).await?;
            if rec.key.starts_with(prefix) {
                out.push(MultipartUpload {
                    upload_id: uid.to_string(),
                    key: rec.key,
                    initiated: names::from_millis(rec.created_ms),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
        Ok(out)
    }

    /// See [`ObjectRef::list_parts`].
    async fn list_parts(&self, obj: &ObjectRef, upload_id: &str) -> Result<Vec<PartMeta>> {
        let (bucket, key) = (obj.bucket(), obj.key());
        if self.is_legacy_upload(upload_id)? {
            return self.legacy_list_parts(bucket, key, upload_id).await;
        }
        let id = self.bucket_id(bucket).await?;
        let (dir, _) = self.open_upload(bucket, &id, key, upload_id).await?;
        Ok(dir
            .latest_parts()
            .into_values()
            .map(|(name, f)| PartMeta {
                part_number: name.number,
                etag: etag(&name.manifest, None),
                size: name.size,
                last_modified: entry_time(f),
            })
            .collect())
    }

    /// Removes uploads created longer than the configured expiry ago, in every bucket and
    /// in local state (and upload directories left without a record). Returns how many
    /// uploads were removed.
    pub async fn expire_multipart(&self) -> Result<usize> {
        let g = self.clone();
        self.on_work(async move { g.expire_everywhere().await })
            .await
    }

    async fn expire_everywhere(&self) -> Result<usize> {
        let mut removed = self.legacy_expire()?;
        for b in self.all_buckets().await? {
            removed += self.expire_in_bucket(&b.name).await?;
        }
        Ok(removed)
    }

    async fn expire_in_bucket(&self, bucket: &str) -> Result<usize> {
        let id = self.bucket_id(bucket).await?;
        let entries = self
            .uploads_tree(bucket, &id, records::UPLOADS_DIR, true)
            .await?;
        // Per upload: (record time, newest entry time, paths).
        let mut uploads: HashMap<String, (Option<SystemTime>, SystemTime, Vec<String>)> =
            HashMap::new();
        for e in entries {
            let TreeEntry::File(f) = e else { continue };
            let Some((uid, entry)) = records::parse_path(&f.path) else {
                continue;
            };
            let t = entry_time(&f);
            let u = uploads
                .entry(uid.to_string())
                .or_insert((None, UNIX_EPOCH, Vec::new()));
            if entry == Entry::Record {
                u.0 = Some(t);
            }
            u.1 = u.1.max(t);
            u.2.push(f.path);
        }
        let now = SystemTime::now();
        let expiry = self.inner.config.multipart_expiry;
        let mut doomed = Vec::new();
        let mut removed = 0;
        for (uid, (created, newest, mut paths)) in uploads {
            let old = |t: SystemTime, age: Duration| now.duration_since(t).is_ok_and(|d| d > age);
            let expired = match created {
                Some(t) => old(t, expiry),
                None => old(newest, ORPHAN_GRACE),
            };
            if expired {
                removed += usize::from(created.is_some());
                self.forget_record(bucket, &uid);
                paths.sort_by_key(|p| !p.ends_with("/upload.json"));
                doomed.extend(paths);
            }
        }
        self.delete_paths(bucket, &id, doomed).await?;
        Ok(removed)
    }
}

/// Multipart uploads of one object, each run on its owning key shard (see `route`).
impl ObjectRef {
    /// Starts a multipart upload of this object; returns its id. Costs one `/batch` (and
    /// CAS calls).
    pub async fn create_multipart(&self, opts: PutOptions) -> Result<String> {
        self.routed(|o| async move { o.gateway().create_multipart(&o, opts).await })
            .await
    }

    /// Uploads one part: ingested and stored in the CAS, and its entry registered, before
    /// this returns. Uploading the same part number again replaces it.
    pub async fn upload_part(
        &self,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<PartMeta> {
        let upload_id = upload_id.to_string();
        self.routed(|o| async move {
            o.gateway()
                .upload_part(&o, &upload_id, part_number, body, size_hint)
                .await
        })
        .await
    }

    /// UploadPartCopy: the part's bytes are read from `src` (optionally a range of it)
    /// and ingested like an uploaded part.
    pub async fn upload_part_copy(
        &self,
        upload_id: &str,
        part_number: u32,
        src: &ObjectRef,
        range: Option<ByteRange>,
    ) -> Result<PartMeta> {
        let (upload_id, src) = (upload_id.to_string(), src.clone());
        self.routed(|o| async move {
            o.gateway()
                .upload_part_copy(&o, &upload_id, part_number, &src, range)
                .await
        })
        .await
    }

    /// Completes an upload from the listed `(part number, etag)` pairs; with a
    /// `condition`, as a conditional write (checked under the key's commit lock). Safe to
    /// retry, through any node: once the upload is gone, a call whose parts compose the
    /// object now at the key answers that object.
    pub async fn complete_multipart(
        &self,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<WriteCondition>,
    ) -> Result<ObjectMeta> {
        let (upload_id, parts) = (upload_id.to_string(), parts.to_vec());
        self.routed(|o| async move {
            o.gateway()
                .complete_multipart(&o, &upload_id, &parts, condition)
                .await
        })
        .await
    }

    /// Aborts an upload: its entries are removed (its xorbs stay in the CAS, unreferenced).
    pub async fn abort_multipart(&self, upload_id: &str) -> Result<()> {
        let upload_id = upload_id.to_string();
        self.routed(|o| async move { o.gateway().abort_multipart(&o, &upload_id).await })
            .await
    }

    /// Parts uploaded so far through any node, by part number (one tree listing).
    pub async fn list_parts(&self, upload_id: &str) -> Result<Vec<PartMeta>> {
        let upload_id = upload_id.to_string();
        self.routed(|o| async move { o.gateway().list_parts(&o, &upload_id).await })
            .await
    }
}
