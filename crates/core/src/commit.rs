//! Commits: every write of an object reaches the Hub through [`Gateway::register`], under
//! the key's commit lock (see `shards`).

use std::time::{Duration, UNIX_EPOCH};

use hugbucket_engine::XetHash;
use hugbucket_upstream::{BatchOp, BucketId};

use crate::error::{CoreError, Result};
use crate::names::etag;
use crate::types::{ObjectExtra, ObjectMeta, WriteCondition};
use crate::{Gateway, ObjectRef, multipart, names, shards};

/// New content for an object, as PUT and Complete register it.
pub(crate) struct NewFile {
    /// The content's Xet file hash.
    pub hash: XetHash,
    /// Its size in bytes.
    pub size: u64,
    /// The object's mtime (milliseconds since the epoch).
    pub mtime: u64,
    /// Its content type.
    pub content_type: Option<String>,
    /// Its metadata beyond the Hub's.
    pub extra: ObjectExtra,
    /// Part sizes of a multipart object (empty: a single part).
    pub parts: Vec<u64>,
}

impl NewFile {
    /// The object's metadata once registered at `key`.
    pub(crate) fn into_meta(self, key: &str) -> ObjectMeta {
        let parts = (!self.parts.is_empty()).then_some(self.parts.len() as u32);
        ObjectMeta {
            key: key.to_string(),
            size: self.size,
            etag: etag(&self.hash, parts),
            last_modified: UNIX_EPOCH + Duration::from_millis(self.mtime),
            content_type: self.content_type,
            xet_hash: self.hash,
            extra: self.extra,
            parts: self.parts,
        }
    }
}

impl Gateway {
    /// The operations that register `file` at `obj`: the object's `addFile` and, when
    /// there is metadata or a parts layout to keep, its sidecar's (stored in the CAS
    /// here).
    pub(crate) async fn add_file_ops(
        &self,
        id: &BucketId,
        obj: &ObjectRef,
        file: &NewFile,
    ) -> Result<Vec<BatchOp>> {
        let mut ops = vec![BatchOp::AddFile {
            path: obj.path().to_string(),
            xet_hash: file.hash,
            mtime: file.mtime,
            content_type: file.content_type.clone(),
        }];
        let sidecar = self
            .stage_sidecar(
                id,
                obj.key(),
                file.hash,
                file.mtime,
                &file.extra,
                &file.parts,
            )
            .await?;
        ops.extend(sidecar);
        Ok(ops)
    }

    /// Takes `bucket/path`'s commit lock in its shard (see `shards`): commits of one key
    /// run one at a time; its cached metadata is invalidated at start and end.
    pub(crate) async fn commit_lock(&self, bucket: &str, path: &str) -> shards::CommitGuard<'_> {
        let key = (bucket.to_string(), path.to_string());
        self.shard(bucket, path).commit_lock(&key).await
    }

    /// THE commit entry point: applies `ops`, the batch operations of one commit of
    /// `bucket/path` (the object's `addFile`/`copyFile` and its sidecar's), under the key's
    /// commit lock, in one `/batch` call that concurrent commits of the bucket share (see
    /// [`HubClient::commit`]; a refused operation fails this commit only). The caller holds
    /// the returned guard while it updates the key's local records, and may
    /// [`publish`](shards::CommitGuard::publish) what the key now holds. `condition` is
    /// checked under the lock first, on a fresh paths-info answer: atomic against this
    /// node's writers only (the Hub's batch API has no compare-and-swap).
    pub(crate) async fn register(
        &self,
        id: &BucketId,
        bucket: &str,
        path: &str,
        ops: Vec<BatchOp>,
        condition: Option<&WriteCondition>,
    ) -> Result<shards::CommitGuard<'_>> {
        let commit = self.commit_lock(bucket, path).await;
        if let Some(c) = condition {
            self.check_condition(id, bucket, path, c).await?;
        }
        let failed = self
            .inner
            .hub
            .commit(id, ops)
            .await
            .map_err(Self::bucket_err(bucket))?;
        // Removing a finished upload's records is cleanup: their failures fail nothing.
        match failed
            .iter()
            .find(|f| !multipart::is_upload_record(&f.path))
        {
            None => Ok(commit),
            Some(f) => Err(CoreError::Internal(format!(
                "hub refused to register {}: {}",
                f.path, f.error
            ))),
        }
    }

    /// Checks a conditional write against the object now at `path`.
    pub(crate) async fn check_condition(
        &self,
        id: &BucketId,
        bucket: &str,
        path: &str,
        condition: &WriteCondition,
    ) -> Result<()> {
        let key = names::path_to_key(path);
        let current = self.fetch_stat(bucket, id, path).await?;
        match (condition, current) {
            (WriteCondition::IfNoneMatch, None) => Ok(()),
            (WriteCondition::IfNoneMatch, Some(_)) => Err(CoreError::PreconditionFailed(format!(
                "{key:?} exists (If-None-Match: *)"
            ))),
            (WriteCondition::IfMatch(_), None) => Err(CoreError::NoSuchKey(key)),
            (WriteCondition::IfMatch(want), Some(stat)) => {
                let meta = self.full_meta(bucket, id, &key, &stat).await?;
                let unquote = |s: &str| s.trim().trim_matches('"').to_string();
                if want.trim() == "*" || unquote(want) == unquote(&meta.etag) {
                    Ok(())
                } else {
                    Err(CoreError::PreconditionFailed(format!(
                        "{key:?} has ETag {} (If-Match: {want})",
                        meta.etag
                    )))
                }
            }
        }
    }
}
