//! Objects: [`ObjectRef`], a typed reference to one object that routes its own calls,
//! and the operations behind it: metadata lookups (head), the entries of GET and PUT,
//! copy and delete. Each public call runs on the object's owning key shard (`route`);
//! the `Gateway` methods here run in place, on whatever shard runtime called them.

use hugbucket_upstream::{BatchOp, BucketId, RemoteFile, TokenScope};
use tokio::runtime::Handle;

use crate::commit::NewFile;
use crate::error::{CoreError, Result};
use crate::names::{self, etag, key_to_path, now_millis, validate_bucket};
use crate::shards::Stat;
use crate::types::{
    ByteRange, ByteStream, CopyMetadata, GetResult, ObjectExtra, ObjectMeta, PutOptions,
};
use crate::{Gateway, UploadGuard, get, put, sidecar};

/// One object of one bucket: its bucket, key, Hub path and owning key shard, computed
/// once by [`Gateway::object`]. Its calls run on the owner's runtime whatever executor
/// awaits them (see `docs/core-api.md`, "Routing"). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    gateway: Gateway,
    bucket: String,
    key: String,
    path: String,
    owner: usize,
}

impl Gateway {
    /// A reference to `bucket/key`; InvalidBucketName or InvalidKey when the names are
    /// not valid (checked here, before any call).
    pub fn object(&self, bucket: &str, key: &str) -> Result<ObjectRef> {
        validate_bucket(bucket)?;
        let path = key_to_path(key)?;
        Ok(ObjectRef {
            gateway: self.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            owner: self.inner.shards.owner(bucket, key),
            path,
        })
    }
}

impl ObjectRef {
    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The object's path in the Hub bucket.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The key shard that owns the object.
    pub fn owner(&self) -> usize {
        self.owner
    }

    /// The gateway the object belongs to.
    pub(crate) fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Runs `call(self)` on the owner's runtime.
    pub(crate) async fn routed<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnOnce(ObjectRef) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.gateway.on_shard(self.owner, call(self.clone())).await
    }

    /// Metadata of the object.
    pub async fn head(&self) -> Result<ObjectMeta> {
        self.routed(|o| async move { o.gateway().head_object(&o).await })
            .await
    }

    /// Reads the object, or a byte range of it, as a stream.
    pub async fn get(&self, range: Option<ByteRange>) -> Result<GetResult> {
        self.routed(|o| async move { o.gateway().get_object(&o, range).await })
            .await
    }

    /// Reads part `part_number` of the object (S3 `partNumber`): a part of a multipart
    /// object from its stored parts layout; part 1 of any other object is all of it.
    pub async fn get_part(&self, part_number: u32) -> Result<GetResult> {
        self.routed(|o| async move { o.gateway().get_object_part(&o, part_number).await })
            .await
    }

    /// Stores the object from a stream. Nothing is visible until the whole body arrived,
    /// every xorb and the shard were accepted and the path was registered.
    pub async fn put(&self, body: ByteStream, opts: PutOptions) -> Result<ObjectMeta> {
        self.routed(|o| async move { o.gateway().put_object(&o, body, opts).await })
            .await
    }

    /// Deletes the object; deleting a missing key succeeds (S3 semantics).
    pub async fn delete(&self) -> Result<()> {
        self.routed(|o| async move {
            let keys = [o.key.clone()];
            let results = o.gateway().delete_keys(&o.bucket, &keys).await?;
            results.into_iter().next().map_or(Ok(()), |(_, r)| r)
        })
        .await
    }

    /// Copies `src` to this object with a batch `copyFile` (source bucket and content
    /// hash, as huggingface_hub sends it): no bytes move. This object gets the source's
    /// metadata or, with [`CopyMetadata::Replace`], the given one (then its condition
    /// applies here too); the content type goes along only when it differs from the
    /// source's.
    pub async fn copy_from(&self, src: &ObjectRef, metadata: CopyMetadata) -> Result<ObjectMeta> {
        let src = src.clone();
        self.routed(|o| async move { o.gateway().copy_object(&src, &o, metadata).await })
            .await
    }
}

impl Gateway {
    /// The Hub entries of the object at `path` and of its sidecar (cached per shard).
    pub(crate) async fn stat_path(
        &self,
        bucket: &str,
        id: &BucketId,
        path: &str,
    ) -> Result<Option<Stat>> {
        let cache_key = (bucket.to_string(), path.to_string());
        let shard = self.shard(bucket, path);
        if let Some(f) = shard.metadata.get(&cache_key) {
            return Ok(Some(f));
        }
        let epoch = shard.epoch();
        let found = self.fetch_stat(bucket, id, path).await?;
        if let Some(f) = &found {
            shard.cache_if_unchanged(epoch, cache_key, f.clone());
        }
        Ok(found)
    }

    /// Like [`Gateway::stat_path`], bypassing the cache: one paths-info call for the
    /// object and its sidecar.
    pub(crate) async fn fetch_stat(
        &self,
        bucket: &str,
        id: &BucketId,
        path: &str,
    ) -> Result<Option<Stat>> {
        let side = sidecar::sidecar_path(&names::path_to_key(path));
        let files = self
            .inner
            .hub
            .lookup(id, vec![path.to_string(), side.clone()])
            .await
            .map_err(Self::bucket_err(bucket))?;
        let mut object = None;
        let mut sidecar = None;
        for f in files {
            if f.path == path {
                object = Some(f);
            } else if f.path == side {
                sidecar = Some(f);
            }
        }
        Ok(object.map(|o| (o, sidecar)))
    }

    /// Listing metadata of an object (no sidecar: ETag parts from local records).
    pub(crate) fn meta_of(&self, bucket: &str, key: &str, f: &RemoteFile) -> ObjectMeta {
        let parts = self.multipart_parts_of(bucket, key, &f.xet_hash);
        ObjectMeta {
            key: key.to_string(),
            size: f.size,
            etag: etag(&f.xet_hash, parts),
            last_modified: crate::multipart::entry_time(f),
            content_type: f.content_type.clone(),
            xet_hash: f.xet_hash,
            extra: ObjectExtra::default(),
            parts: Vec::new(),
        }
    }

    /// Full metadata of an object: its Hub entry and its sidecar, if that still matches.
    pub(crate) async fn full_meta(
        &self,
        bucket: &str,
        id: &BucketId,
        key: &str,
        (f, side): &Stat,
    ) -> Result<ObjectMeta> {
        let mut meta = self.meta_of(bucket, key, f);
        if let Some(s) = self.load_sidecar(id, key, f, side.as_ref()).await? {
            meta.extra = s.extra.clone();
            if !s.parts.is_empty() {
                meta.etag = etag(&f.xet_hash, Some(s.parts.len() as u32));
                meta.parts = s.parts.clone();
            }
        }
        Ok(meta)
    }

    /// Metadata of `obj`.
    pub(crate) async fn head_object(&self, obj: &ObjectRef) -> Result<ObjectMeta> {
        let id = self.bucket_id(&obj.bucket).await?;
        match self.stat_path(&obj.bucket, &id, &obj.path).await? {
            Some(stat) => self.full_meta(&obj.bucket, &id, &obj.key, &stat).await,
            None => {
                // Distinguish a missing bucket from a missing key.
                self.bucket_info(&obj.bucket).await?;
                Err(CoreError::NoSuchKey(obj.key.clone()))
            }
        }
    }

    /// See [`ObjectRef::put`].
    pub(crate) async fn put_object(
        &self,
        obj: &ObjectRef,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<ObjectMeta> {
        let _counted = UploadGuard::enter(&self.inner.uploads_in_flight);
        let (bucket, key, path) = (obj.bucket(), obj.key(), obj.path().to_string());
        let id = self.bucket_id(bucket).await?;
        // Concurrent uploads to the bucket share their commit's `/batch` call.
        let announced = self.inner.hub.expect_commit(&id);
        let cas = self.cas(&id, TokenScope::Write);
        // Fail fast (before reading the body) when the bucket does not exist.
        cas.token().await.map_err(Self::bucket_err(bucket))?;
        let ingested = put::ingest_and_upload(
            &cas,
            body,
            opts.size_hint,
            self.inner.config.max_concurrent_xorb_uploads,
            &self.inner.xorb_buffers,
        )
        .await?;
        cas.upload_shard(bytes::Bytes::from(ingested.output.shard.to_upload_bytes()))
            .await?;
        let file = NewFile {
            hash: ingested.summary.file_hash,
            size: ingested.summary.size,
            mtime: opts.mtime_ms.unwrap_or_else(now_millis),
            content_type: opts.content_type,
            extra: opts.extra,
            parts: Vec::new(),
        };
        let ops = self.add_file_ops(&id, obj, &file).await?;
        let with_sidecar = ops.len() > 1;
        drop(announced);
        let mut commit = self
            .register(&id, bucket, &path, ops, opts.condition.as_ref())
            .await?;
        self.forget_multipart_etag(bucket, key)?;
        if !with_sidecar {
            // The node knows what the key holds now: a HEAD/GET right after costs no Hub
            // call. (No sidecar written: any older one is stale, as for a lookup.)
            let entry = RemoteFile {
                path,
                size: file.size,
                xet_hash: file.hash,
                mtime: Some(names::format_iso8601_ms(file.mtime)),
                uploaded_at: None,
                content_type: file.content_type.clone(),
            };
            commit.publish((entry, None));
        }
        Ok(file.into_meta(key))
    }

    /// See [`ObjectRef::get_part`].
    pub(crate) async fn get_object_part(
        &self,
        obj: &ObjectRef,
        part_number: u32,
    ) -> Result<GetResult> {
        // The object may change between the lookup and the read: read again then.
        for _ in 0..3 {
            let meta = self.head_object(obj).await?;
            let range = meta
                .part_range(part_number)
                .ok_or(CoreError::InvalidPartNumber {
                    part: part_number,
                    parts: meta.parts.len().max(1) as u32,
                })?;
            // Part 1 of a single-part object is a plain whole read.
            let range = match meta.parts.is_empty() {
                true => None,
                false => range.map(|(a, b)| ByteRange::FromTo(a, b)),
            };
            let got = self.get_object(obj, range).await?;
            if got.meta.xet_hash == meta.xet_hash {
                return Ok(GetResult { meta, ..got });
            }
        }
        Err(CoreError::Internal(format!(
            "{:?} kept changing during a part read",
            obj.key
        )))
    }

    /// See [`ObjectRef::get`].
    pub(crate) async fn get_object(
        &self,
        obj: &ObjectRef,
        range: Option<ByteRange>,
    ) -> Result<GetResult> {
        let meta = self.head_object(obj).await?;
        let resolved = match range {
            None => None,
            Some(r) => Some(
                r.resolve(meta.size)
                    .ok_or(CoreError::InvalidRange { size: meta.size })?,
            ),
        };
        let (start, end) = match resolved {
            Some(r) => r,
            None if meta.size == 0 => {
                return Ok(GetResult {
                    meta,
                    range: None,
                    body: Box::pin(futures::stream::empty()),
                });
            }
            None => (0, meta.size - 1),
        };
        let id = self.bucket_id(&obj.bucket).await?;
        let cas = self.cas(&id, TokenScope::Read);
        let recon_key = (meta.xet_hash, start, end);
        let shard = self.inner.shards.state(obj.owner);
        let recon = match shard.reconstructions.get(&recon_key) {
            Some(r) => r,
            None => {
                let r = cas
                    .reconstruction(
                        &meta.xet_hash,
                        Some(hugbucket_upstream::ByteRange { start, end }),
                    )
                    .await?;
                shard.reconstructions.insert(recon_key, r.clone());
                r
            }
        };
        let whole = start == 0 && end + 1 == meta.size;
        let verify = (whole && self.inner.config.verify_reads).then_some(meta.xet_hash);
        let ctx = get::ReadCtx {
            cas,
            file: meta.xet_hash,
            cache: self.inner.cache.clone(),
            flights: shard.flights.clone(),
            runtime: self.inner.work.clone().unwrap_or_else(Handle::current),
            hash_mismatches: self.inner.read_hash_mismatches.clone(),
        };
        let body = get::reconstruct_stream(
            ctx,
            recon,
            start,
            end - start + 1,
            self.inner.config.get_prefetch_window,
            verify,
        );
        Ok(GetResult {
            meta,
            range: resolved,
            body: Box::pin(body),
        })
    }

    /// See [`ObjectRef::copy_from`].
    pub(crate) async fn copy_object(
        &self,
        src_obj: &ObjectRef,
        dst: &ObjectRef,
        metadata: CopyMetadata,
    ) -> Result<ObjectMeta> {
        let src = self.head_object(src_obj).await?;
        let src_id = self.bucket_id(&src_obj.bucket).await?;
        let dst_id = self.bucket_id(&dst.bucket).await?;
        let (dst_bucket, dst_key, dst_path) = (dst.bucket(), dst.key(), dst.path());
        let (content_type, extra, mtime, condition) = match metadata {
            CopyMetadata::Copy => (
                src.content_type.clone(),
                src.extra.clone(),
                now_millis(),
                None,
            ),
            CopyMetadata::Replace(o) => (
                o.content_type.or(src.content_type.clone()),
                o.extra,
                o.mtime_ms.unwrap_or_else(now_millis),
                o.condition,
            ),
        };
        let changed_type = content_type
            .clone()
            .filter(|t| Some(t) != src.content_type.as_ref());
        let mut ops = vec![BatchOp::CopyFile {
            path: dst_path.to_string(),
            xet_hash: src.xet_hash,
            mtime,
            source_repo_type: "bucket".into(),
            source_repo_id: src_id.to_string(),
            content_type: changed_type,
        }];
        ops.extend(
            self.stage_sidecar(&dst_id, dst_key, src.xet_hash, mtime, &extra, &src.parts)
                .await?,
        );
        let _commit = self
            .register(&dst_id, dst_bucket, dst_path, ops, condition.as_ref())
            .await?;
        let parts = match src.parts.len() {
            0 => self.multipart_parts_of(&src_obj.bucket, &src_obj.key, &src.xet_hash),
            n => Some(n as u32),
        };
        self.set_multipart_etag(dst_bucket, dst_key, &src.xet_hash, parts)?;
        Ok(ObjectMeta {
            key: dst_key.to_string(),
            size: src.size,
            etag: etag(&src.xet_hash, parts),
            last_modified: names::from_millis(mtime),
            content_type,
            xet_hash: src.xet_hash,
            extra,
            parts: src.parts,
        })
    }
}
