//! Bucket operations: list, create, head, delete, and deleting many objects at once.

use hugbucket_upstream::{BatchOp, BucketId, CreateBucketOptions, UpstreamError};

use crate::error::{CoreError, Result};
use crate::names::{self, key_to_path};
use crate::types::BucketInfo;
use crate::{Gateway, sidecar};

impl Gateway {
    /// All buckets of the namespace.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let g = self.clone();
        self.on_work(async move { g.all_buckets().await }).await
    }

    /// Creates a bucket with the configured visibility (private unless configured public).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let (g, b) = (self.clone(), bucket.to_string());
        self.on_work(async move { g.new_bucket(&b).await }).await
    }

    /// Bucket info; NoSuchBucket when absent.
    pub async fn head_bucket(&self, bucket: &str) -> Result<BucketInfo> {
        let (g, b) = (self.clone(), bucket.to_string());
        self.on_work(async move { g.bucket_info(&b).await }).await
    }

    /// Deletes an empty bucket (BucketNotEmpty otherwise; folder markers count as objects,
    /// hidden gateway records such as stale sidecars do not).
    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let (g, b) = (self.clone(), bucket.to_string());
        self.on_work(async move { g.remove_bucket(&b).await }).await
    }

    /// Deletes many objects of `bucket` with one batch per 1000; per-key results.
    pub async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<(String, Result<()>)>> {
        let (g, b, keys) = (self.clone(), bucket.to_string(), keys.to_vec());
        self.on_work(async move { g.delete_keys(&b, &keys).await })
            .await
    }

    pub(crate) async fn all_buckets(&self) -> Result<Vec<BucketInfo>> {
        let ns = self.namespace_here().await?;
        let all = self
            .inner
            .hub
            .list_buckets(&ns, None)?
            .collect_all()
            .await?;
        let mut out: Vec<BucketInfo> = all
            .into_iter()
            .filter_map(|b| {
                let name = b.id.split_once('/').map(|(_, n)| n.to_string())?;
                Some(BucketInfo {
                    name,
                    created: names::hub_time(b.created_at.as_deref()),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn new_bucket(&self, bucket: &str) -> Result<()> {
        let id = self.bucket_id(bucket).await?;
        let options = CreateBucketOptions {
            visibility: Some(self.inner.config.bucket_visibility),
            ..CreateBucketOptions::default()
        };
        match self
            .inner
            .hub
            .create_bucket(id.namespace(), id.name(), &options)
            .await
        {
            Ok(_) => Ok(()),
            Err(UpstreamError::AlreadyExists { .. }) => {
                Err(CoreError::BucketAlreadyOwnedByYou(bucket.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// See [`Gateway::head_bucket`].
    pub(crate) async fn bucket_info(&self, bucket: &str) -> Result<BucketInfo> {
        let id = self.bucket_id(bucket).await?;
        let info = self
            .inner
            .hub
            .bucket_info(&id)
            .await
            .map_err(Self::bucket_err(bucket))?;
        Ok(BucketInfo {
            name: bucket.to_string(),
            created: names::hub_time(info.created_at.as_deref()),
        })
    }

    async fn remove_bucket(&self, bucket: &str) -> Result<()> {
        let id = self.bucket_id(bucket).await?;
        let mut pager = self.inner.hub.list_tree(&id, None, Some(true))?;
        while let Some(page) = pager.next_page().await.map_err(Self::bucket_err(bucket))? {
            let visible = page.iter().any(|e| match e {
                hugbucket_upstream::TreeEntry::File(f) => !names::is_hidden(&f.path),
                hugbucket_upstream::TreeEntry::Directory(d) => !names::is_hidden(&d.path),
            });
            if visible {
                return Err(CoreError::BucketNotEmpty(bucket.to_string()));
            }
        }
        self.inner
            .hub
            .delete_bucket(&id)
            .await
            .map_err(Self::bucket_err(bucket))
    }

    /// Of the paths whose `deleteFile` the Hub reported failed, those that still exist (one
    /// paths-info call when any failed). A delete refused because the path does not exist
    /// ("not found", however the Hub words it) reached its goal: S3 and FTP count it done.
    pub(crate) async fn failed_deletes_present(
        &self,
        id: &BucketId,
        failed: &[hugbucket_upstream::BatchFailure],
    ) -> Result<std::collections::HashSet<String>> {
        if failed.is_empty() {
            return Ok(Default::default());
        }
        let paths: Vec<String> = failed.iter().map(|f| f.path.clone()).collect();
        let found = self.inner.hub.paths_info(id, &paths).await?;
        Ok(found.into_iter().map(|f| f.path).collect())
    }

    /// See [`Gateway::delete_objects`] (in place).
    pub(crate) async fn delete_keys(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<(String, Result<()>)>> {
        let id = self.bucket_id(bucket).await?;
        let mut results = Vec::with_capacity(keys.len());
        let mut ops = Vec::new();
        let mut paths = Vec::new();
        for key in keys {
            match key_to_path(key) {
                Ok(p) => {
                    ops.push(BatchOp::DeleteFile { path: p.clone() });
                    // The sidecar goes with its object; a missing one is no error.
                    ops.push(BatchOp::DeleteFile {
                        path: sidecar::sidecar_path(key),
                    });
                    paths.push((key.clone(), p));
                }
                Err(e) => results.push((key.clone(), Err(e))),
            }
        }
        if !ops.is_empty() {
            // Take the keys' commit locks in one global order (so two batches never wait
            // on each other crosswise); writes of these keys already started finish first.
            // They are held until the local records are updated too.
            let mut lock_paths: Vec<&str> = paths.iter().map(|(_, p)| p.as_str()).collect();
            lock_paths.sort_unstable();
            lock_paths.dedup();
            let mut _commits = Vec::with_capacity(lock_paths.len());
            for p in lock_paths {
                _commits.push(self.commit_lock(bucket, p).await);
            }
            // One commit of many keys: its operations go in one call (several when more
            // than a call takes), shared with other commits of the bucket.
            let failed = self
                .inner
                .hub
                .commit(&id, ops)
                .await
                .map_err(Self::bucket_err(bucket))?;
            let still_there = self.failed_deletes_present(&id, &failed).await?;
            for (key, path) in &paths {
                let failed = failed
                    .iter()
                    .find(|f| &f.path == path && still_there.contains(path));
                let r = match failed {
                    Some(f) => Err(CoreError::Internal(format!(
                        "hub refused to delete: {}",
                        f.error
                    ))),
                    None => self.forget_multipart_etag(bucket, key),
                };
                results.push((key.clone(), r));
            }
        }
        Ok(results)
    }
}
