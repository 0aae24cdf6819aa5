//! Multipart uploads recorded by versions before the upstream layout: the upload and its
//! parts (terms, verification hashes, chunk list) in the node's local durable state
//! ([`crate::StateStore`]). Kept so that uploads begun before an upgrade still take parts,
//! list, complete and abort on the node that started them; new uploads never come here
//! (`super` checks [`Gateway::is_legacy_upload`] first). Completion composes the file from
//! the listed parts and registers it, uploading nothing but one small shard.

use std::time::SystemTime;

use bytes::Bytes;
use hugbucket_engine::XetHash;
use hugbucket_engine::hash::file_hash;
use hugbucket_engine::shard::{FileEntry, FileTerm, Shard};
use hugbucket_upstream::TokenScope;
use serde::{Deserialize, Serialize};

use super::{MIN_PART_SIZE, unquote};
use crate::Gateway;
use crate::commit::NewFile;
use crate::error::{CoreError, Result};
use crate::names::{etag, now_millis};
use crate::types::{
    ByteStream, MultipartUpload, ObjectExtra, ObjectMeta, PartMeta, WriteCondition,
};

const UPLOADS: &str = "multipart_uploads";
const PARTS: &str = "multipart_parts";
const CHUNKS: &str = "multipart_chunks";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadRecord {
    bucket: String,
    key: String,
    created_ms: u64,
    content_type: Option<String>,
    /// Metadata for the object's sidecar (CreateMultipartUpload's headers).
    #[serde(default)]
    extra: ObjectExtra,
    /// The object's mtime, when the client gave one.
    #[serde(default)]
    mtime_ms: Option<u64>,
    /// Set once completed (kept so a retried Complete answers the same).
    completed: Option<Completed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Completed {
    xet_hash: XetHash,
    size: u64,
    parts: Vec<(u32, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartRecord {
    etag: String,
    size: u64,
    created_ms: u64,
    terms: Vec<(XetHash, u32, u32, u32)>,
    verification: Vec<XetHash>,
}

fn part_key(upload_id: &str, part: u32) -> Vec<u8> {
    format!("{upload_id}/{part:05}").into_bytes()
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("plain records serialize")
}

fn from_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| CoreError::Internal(format!("corrupt local state: {e}")))
}

fn encode_chunks(chunks: &[(XetHash, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * 40);
    for (h, n) in chunks {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
    out
}

fn decode_chunks(b: &[u8]) -> Result<Vec<(XetHash, u64)>> {
    if b.len() % 40 != 0 {
        return Err(CoreError::Internal("corrupt local chunk list".into()));
    }
    Ok(b.chunks_exact(40)
        .map(|r| {
            let h = XetHash::from_slice(&r[..32]).expect("32 bytes");
            (h, u64::from_le_bytes(r[32..].try_into().expect("8 bytes")))
        })
        .collect())
}

impl Gateway {
    /// Whether `upload_id` is an upload recorded locally by an older version.
    pub(super) fn is_legacy_upload(&self, upload_id: &str) -> Result<bool> {
        Ok(self
            .inner
            .state
            .get(UPLOADS, upload_id.as_bytes())?
            .is_some())
    }

    fn load_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord> {
        let rec: UploadRecord = match self.inner.state.get(UPLOADS, upload_id.as_bytes())? {
            Some(b) => from_json(&b)?,
            None => return Err(CoreError::NoSuchUpload(upload_id.to_string())),
        };
        if rec.bucket != bucket || rec.key != key {
            return Err(CoreError::NoSuchUpload(upload_id.to_string()));
        }
        Ok(rec)
    }

    /// Uploads one part: ingested and stored in the CAS before this returns. Uploading the
    /// same part number again replaces it.
    pub(super) async fn legacy_upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<PartMeta> {
        // `upload_part` has checked the part number before dispatching here.
        let rec = self.load_upload(bucket, key, upload_id)?;
        if rec.completed.is_some() {
            return Err(CoreError::NoSuchUpload(upload_id.to_string()));
        }
        let id = self.bucket_id(bucket).await?;
        let (ingested, entry, size) = self.ingest_part(bucket, &id, body, size_hint).await?;
        let record = PartRecord {
            etag: etag(&ingested.summary.file_hash, None),
            size,
            created_ms: now_millis(),
            terms: super::part_terms(&entry),
            verification: entry.verification.clone(),
        };
        let pk = part_key(upload_id, part_number);
        // Chunks first: a part record is only visible once its chunk list is durable.
        self.inner
            .state
            .put(CHUNKS, &pk, &encode_chunks(&ingested.summary.chunks))?;
        self.inner.state.put(PARTS, &pk, &json(&record))?;
        // An abort that raced with this part would leave it orphaned: re-check.
        if self
            .inner
            .state
            .get(UPLOADS, upload_id.as_bytes())?
            .is_none()
        {
            self.inner.state.delete(PARTS, &pk)?;
            self.inner.state.delete(CHUNKS, &pk)?;
            return Err(CoreError::NoSuchUpload(upload_id.to_string()));
        }
        Ok(PartMeta {
            part_number,
            etag: record.etag,
            size,
            last_modified: crate::names::from_millis(record.created_ms),
        })
    }

    fn parts_of(&self, upload_id: &str) -> Result<Vec<(u32, PartRecord)>> {
        let prefix = format!("{upload_id}/");
        self.inner
            .state
            .scan_prefix(PARTS, prefix.as_bytes())?
            .into_iter()
            .map(|(k, v)| {
                let n = std::str::from_utf8(&k[prefix.len()..])
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| CoreError::Internal("corrupt part key".into()))?;
                Ok((n, from_json(&v)?))
            })
            .collect()
    }

    /// [`Gateway::complete_multipart`] as a conditional write: the object is only
    /// registered if `condition` holds (checked under the key's commit lock).
    pub(super) async fn legacy_complete(
        &self,
        obj: &crate::ObjectRef,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<WriteCondition>,
    ) -> Result<ObjectMeta> {
        let (bucket, key) = (obj.bucket(), obj.key());
        let mut rec = self.load_upload(bucket, key, upload_id)?;
        let wanted: Vec<(u32, String)> = parts
            .iter()
            .map(|(n, e)| (*n, unquote(e).to_string()))
            .collect();
        if let Some(done) = &rec.completed {
            if done.parts == wanted {
                return Ok(ObjectMeta {
                    key: key.to_string(),
                    size: done.size,
                    etag: etag(&done.xet_hash, Some(done.parts.len() as u32)),
                    last_modified: SystemTime::now(),
                    content_type: rec.content_type.clone(),
                    xet_hash: done.xet_hash,
                    extra: rec.extra.clone(),
                    parts: Vec::new(),
                });
            }
            return Err(CoreError::NoSuchUpload(upload_id.to_string()));
        }
        if wanted.is_empty() {
            return Err(CoreError::InvalidArgument(
                "CompleteMultipartUpload needs at least one part".into(),
            ));
        }
        if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(CoreError::InvalidPartOrder);
        }
        let stored = self.parts_of(upload_id)?;
        let mut chosen = Vec::with_capacity(wanted.len());
        for (n, e) in &wanted {
            let part = stored
                .iter()
                .find(|(m, _)| m == n)
                .map(|(_, p)| p)
                .ok_or_else(|| CoreError::InvalidPart(format!("part {n} was not uploaded")))?;
            if unquote(&part.etag) != e {
                return Err(CoreError::InvalidPart(format!(
                    "part {n}: ETag does not match"
                )));
            }
            chosen.push((*n, part));
        }
        if chosen[..chosen.len() - 1]
            .iter()
            .any(|(_, p)| p.size < MIN_PART_SIZE)
        {
            return Err(CoreError::EntityTooSmall);
        }
        // Compose the file.
        let mut terms = Vec::new();
        let mut verification = Vec::new();
        let mut chunks = Vec::new();
        let mut size = 0u64;
        let mut sizes = Vec::with_capacity(chosen.len());
        for (n, part) in &chosen {
            let raw = self
                .inner
                .state
                .get(CHUNKS, &part_key(upload_id, *n))?
                .ok_or_else(|| CoreError::Internal(format!("chunk list of part {n} missing")))?;
            chunks.extend(decode_chunks(&raw)?);
            terms.extend(part.terms.iter().map(
                |&(xorb_hash, chunk_start, chunk_end, unpacked_bytes)| FileTerm {
                    xorb_hash,
                    unpacked_bytes,
                    chunk_start,
                    chunk_end,
                },
            ));
            verification.extend(part.verification.iter().copied());
            size += part.size;
            sizes.push(part.size);
        }
        let hash = file_hash(&chunks);
        let shard = Shard {
            files: vec![FileEntry {
                file_hash: hash,
                terms,
                verification,
                sha256: None,
            }],
            xorbs: Vec::new(),
            footer: None,
        };
        let id = self.bucket_id(bucket).await?;
        let cas = self.cas(&id, TokenScope::Write);
        cas.upload_shard(Bytes::from(shard.to_upload_bytes()))
            .await?;
        let file = NewFile {
            hash,
            size,
            mtime: rec.mtime_ms.unwrap_or_else(now_millis),
            content_type: rec.content_type.clone(),
            extra: rec.extra.clone(),
            parts: sizes,
        };
        // The sidecar keeps the parts layout (for `partNumber` reads) and the metadata.
        let ops = self.add_file_ops(&id, obj, &file).await?;
        let _commit = self
            .register(&id, bucket, obj.path(), ops, condition.as_ref())
            .await?;
        let n_parts = wanted.len() as u32;
        self.set_multipart_etag(bucket, key, &hash, Some(n_parts))?;
        rec.completed = Some(Completed {
            xet_hash: hash,
            size,
            parts: wanted,
        });
        self.inner
            .state
            .put(UPLOADS, upload_id.as_bytes(), &json(&rec))?;
        self.remove_parts(upload_id)?;
        Ok(file.into_meta(key))
    }

    fn remove_parts(&self, upload_id: &str) -> Result<()> {
        let prefix = format!("{upload_id}/");
        for (k, _) in self.inner.state.scan_prefix(PARTS, prefix.as_bytes())? {
            self.inner.state.delete(PARTS, &k)?;
            self.inner.state.delete(CHUNKS, &k)?;
        }
        Ok(())
    }

    /// Aborts an upload: its records are removed (its xorbs stay in the CAS, unreferenced).
    pub(super) async fn legacy_abort(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        self.load_upload(bucket, key, upload_id)?;
        self.inner.state.delete(UPLOADS, upload_id.as_bytes())?;
        self.remove_parts(upload_id)
    }

    /// Uploads in progress in `bucket` whose key starts with `prefix`, by key then time.
    pub(super) async fn legacy_list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartUpload>> {
        let mut out = Vec::new();
        for (k, v) in self.inner.state.scan_prefix(UPLOADS, b"")? {
            let rec: UploadRecord = from_json(&v)?;
            if rec.bucket == bucket && rec.completed.is_none() && rec.key.starts_with(prefix) {
                out.push(MultipartUpload {
                    upload_id: String::from_utf8_lossy(&k).into_owned(),
                    key: rec.key,
                    initiated: crate::names::from_millis(rec.created_ms),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
        Ok(out)
    }

    /// Parts uploaded so far, by part number.
    pub(super) async fn legacy_list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartMeta>> {
        let rec = self.load_upload(bucket, key, upload_id)?;
        if rec.completed.is_some() {
            return Err(CoreError::NoSuchUpload(upload_id.to_string()));
        }
        Ok(self
            .parts_of(upload_id)?
            .into_iter()
            .map(|(n, p)| PartMeta {
                part_number: n,
                etag: p.etag,
                size: p.size,
                last_modified: crate::names::from_millis(p.created_ms),
            })
            .collect())
    }

    /// Removes uploads older than the configured expiry (completed ones included).
    /// Returns how many were removed.
    pub(super) fn legacy_expire(&self) -> Result<usize> {
        let cutoff =
            now_millis().saturating_sub(self.inner.config.multipart_expiry.as_millis() as u64);
        let mut removed = 0;
        for (k, v) in self.inner.state.scan_prefix(UPLOADS, b"")? {
            let rec: UploadRecord = from_json(&v)?;
            if rec.created_ms < cutoff {
                let id = String::from_utf8_lossy(&k).into_owned();
                self.inner.state.delete(UPLOADS, &k)?;
                self.remove_parts(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
