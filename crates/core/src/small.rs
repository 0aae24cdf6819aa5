//! Small Xet files the gateway keeps in a bucket for itself (metadata sidecars, multipart
//! records): stored whole through the CAS (one xorb and one shard: CAS calls only, no
//! `/api/` call) and read back whole, verified against their file hash.

use bytes::Bytes;
use futures::TryStreamExt;
use hugbucket_engine::XetHash;
use hugbucket_upstream::CasClient;

use crate::error::{CoreError, Result};
use crate::{ByteStream, Gateway, get, put};

impl Gateway {
    /// Stores `data` as a Xet file; returns its file hash (the Hub entry is the caller's).
    pub(crate) async fn store_small_file(&self, cas: &CasClient, data: Vec<u8>) -> Result<XetHash> {
        let len = data.len() as u64;
        let body: ByteStream = Box::pin(futures::stream::iter([Ok(Bytes::from(data))]));
        let ingested =
            put::ingest_and_upload(cas, body, Some(len), 1, &self.inner.xorb_buffers).await?;
        cas.upload_shard(Bytes::from(ingested.output.shard.to_upload_bytes()))
            .await?;
        Ok(ingested.summary.file_hash)
    }

    /// Reads the Xet file `hash` whole, refusing one longer than `max_len` bytes before
    /// fetching anything.
    pub(crate) async fn read_small_file(
        &self,
        cas: &CasClient,
        hash: XetHash,
        max_len: u64,
    ) -> Result<Vec<u8>> {
        let recon = cas.reconstruction(&hash, None).await?;
        let len = recon
            .unpacked_len()
            .saturating_sub(recon.offset_into_first_range);
        if len > max_len {
            return Err(CoreError::Internal(format!(
                "gateway record {hash} is {len} bytes (at most {max_len})"
            )));
        }
        let ctx = get::ReadCtx {
            cas: cas.clone(),
            file: hash,
            cache: self.inner.cache.clone(),
            flights: self.inner.shards.state(0).flights.clone(),
            runtime: self
                .inner
                .work
                .clone()
                .unwrap_or_else(tokio::runtime::Handle::current),
        };
        let window = self.inner.config.get_prefetch_window;
        get::reconstruct_stream(ctx, recon, 0, len, window, Some(hash))
            .map_err(|e| CoreError::Integrity(format!("reading gateway record {hash}: {e}")))
            .try_fold(Vec::with_capacity(len as usize), |mut out, b| async move {
                out.extend_from_slice(&b);
                Ok(out)
            })
            .await
    }
}
