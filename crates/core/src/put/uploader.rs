//! The xorb uploader of one ingest: a bounded window of xorb uploads in flight. Each
//! uploaded xorb's buffer goes back to the pool it was serialized into.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hugbucket_engine::buffers::BufferPool;
use hugbucket_engine::xorb::SerializedXorb;
use hugbucket_upstream::{CasClient, UpstreamError};

use crate::error::Result;

type Upload = Pin<Box<dyn Future<Output = (std::result::Result<(), UpstreamError>, Bytes)> + Send>>;

/// Uploads xorbs with at most `window` in flight.
pub(super) struct XorbUploader {
    cas: CasClient,
    window: usize,
    buffers: Arc<BufferPool>,
    in_flight: FuturesUnordered<Upload>,
}

impl XorbUploader {
    /// An uploader to `cas` with `window` uploads in flight at most (at least one).
    pub(super) fn new(cas: CasClient, window: usize, buffers: Arc<BufferPool>) -> Self {
        XorbUploader {
            cas,
            window: window.max(1),
            buffers,
            in_flight: FuturesUnordered::new(),
        }
    }

    /// Whether another upload may start now.
    pub(super) fn has_room(&self) -> bool {
        self.in_flight.len() < self.window
    }

    /// Whether no upload is in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Starts uploading `xorb` (the caller checked [`XorbUploader::has_room`]).
    pub(super) fn start(&mut self, xorb: SerializedXorb) {
        let cas = self.cas.clone();
        self.in_flight.push(Box::pin(async move {
            let data = Bytes::from(xorb.data);
            let r = cas.upload_xorb(&xorb.hash, data.clone()).await.map(drop);
            (r, data)
        }));
    }

    /// Waits for room in the window, then starts uploading `xorb`.
    pub(super) async fn push(&mut self, xorb: SerializedXorb) -> Result<()> {
        while !self.has_room() {
            self.next_done().await?;
        }
        self.start(xorb);
        Ok(())
    }

    /// Waits for one upload in flight to finish (at once when none is).
    pub(super) async fn next_done(&mut self) -> Result<()> {
        if let Some((r, data)) = self.in_flight.next().await {
            r?;
            // The client dropped its references once the upload finished.
            if let Ok(buf) = data.try_into_mut() {
                self.buffers.give(buf.into());
            }
        }
        Ok(())
    }

    /// Waits until every upload started finished.
    pub(super) async fn finish(&mut self) -> Result<()> {
        while !self.is_idle() {
            self.next_done().await?;
        }
        Ok(())
    }
}
