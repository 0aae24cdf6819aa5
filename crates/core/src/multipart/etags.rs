//! Multipart ETags (`"<hash>-N"`): remembered per key in local state while the key's
//! content is the completed object.

use hugbucket_engine::XetHash;
use serde::{Deserialize, Serialize};

use crate::Gateway;
use crate::error::Result;

const ETAGS: &str = "multipart_etags";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EtagRecord {
    xet_hash: XetHash,
    parts: u32,
}

fn etag_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = bucket.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

impl Gateway {
    pub(crate) fn multipart_parts_of(
        &self,
        bucket: &str,
        key: &str,
        hash: &XetHash,
    ) -> Option<u32> {
        let raw = self.inner.state.get(ETAGS, &etag_key(bucket, key)).ok()??;
        let rec: EtagRecord = serde_json::from_slice(&raw).ok()?;
        (rec.xet_hash == *hash).then_some(rec.parts)
    }

    pub(crate) fn set_multipart_etag(
        &self,
        bucket: &str,
        key: &str,
        hash: &XetHash,
        parts: Option<u32>,
    ) -> Result<()> {
        match parts {
            Some(parts) => self.inner.state.put(
                ETAGS,
                &etag_key(bucket, key),
                &serde_json::to_vec(&EtagRecord {
                    xet_hash: *hash,
                    parts,
                })
                .expect("plain records serialize"),
            ),
            None => self.forget_multipart_etag(bucket, key),
        }
    }

    pub(crate) fn forget_multipart_etag(&self, bucket: &str, key: &str) -> Result<()> {
        let k = etag_key(bucket, key);
        // Most keys never had one: avoid a durable write on every PUT and DELETE.
        if self.inner.state.get(ETAGS, &k)?.is_some() {
            self.inner.state.delete(ETAGS, &k)?;
        }
        Ok(())
    }
}
