//! Metadata sidecars: what S3 keeps with an object beyond what the Hub stores for it
//! (user metadata, the standard headers, a multipart object's parts layout) lives in the
//! bucket at `.hugbucket/meta/{h}`, a small JSON Xet file (layout: `docs/core-api.md`,
//! "Hidden entries").
//!
//! - A sidecar is written in the same `/batch` call as its object's `addFile`, and only
//!   when there is something to keep: a plain PUT costs no extra call.
//! - It is looked up in the same paths-info call as its object.
//! - It records the object's `xetHash` and `mtime`; one that does not match the object's
//!   current Hub entry is stale (the object was overwritten by a writer that wrote no
//!   sidecar, e.g. `huggingface_hub`) and ignored.
//! - Its content is cached per node by its own Xet hash (content-addressed: never stale).

use std::sync::Arc;
use std::time::Duration;

use hugbucket_engine::XetHash;
use hugbucket_upstream::{BatchOp, BucketId, RemoteFile, TokenScope};
use serde::{Deserialize, Serialize};

use crate::Gateway;
use crate::error::Result;
use crate::names::{HIDDEN_ROOT, parse_iso8601};
use crate::ttl::TtlCache;
use crate::types::ObjectExtra;

/// Sidecars larger than this are not read (ours stay far below: 2 KiB of user metadata,
/// five headers and at most 10,000 part sizes).
const MAX_SIDECAR: u64 = 1 << 20;

/// Sidecar contents cached per node.
pub(crate) type SidecarCache = TtlCache<XetHash, Arc<Sidecar>>;

/// A new sidecar cache (entries are content-addressed, so the TTL only bounds memory).
pub(crate) fn new_cache() -> SidecarCache {
    TtlCache::new(10_000, Duration::from_secs(3600))
}

/// The Hub path of `key`'s sidecar: `.hugbucket/meta/` + 32 hex digits of BLAKE3(key).
pub fn sidecar_path(key: &str) -> String {
    let h = blake3::hash(key.as_bytes());
    let mut out = format!("{HIDDEN_ROOT}/meta/");
    for b in &h.as_bytes()[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The JSON content of a sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sidecar {
    /// Format version (1).
    pub v: u32,
    /// The S3 key it belongs to.
    pub key: String,
    /// The object's Xet hash when the sidecar was written.
    #[serde(rename = "xetHash")]
    pub xet_hash: XetHash,
    /// The object's Hub `mtime` (ms since the epoch) when the sidecar was written.
    pub mtime: u64,
    /// User metadata and standard headers.
    #[serde(flatten)]
    pub extra: ObjectExtra,
    /// Part sizes of a multipart object, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
}

impl Sidecar {
    /// Whether this sidecar describes `object` as the Hub has it now.
    pub fn matches(&self, key: &str, object: &RemoteFile) -> bool {
        let mtime = object
            .mtime
            .as_deref()
            .and_then(parse_iso8601)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64);
        self.key == key && self.xet_hash == object.xet_hash && mtime == Some(self.mtime)
    }
}

impl Gateway {
    /// Stores the sidecar of `key` (content in the CAS) and returns the `addFile` that
    /// registers it; `None` when there is nothing to keep (no call made).
    pub(crate) async fn stage_sidecar(
        &self,
        id: &BucketId,
        key: &str,
        xet_hash: XetHash,
        mtime: u64,
        extra: &ObjectExtra,
        parts: &[u64],
    ) -> Result<Option<BatchOp>> {
        if extra.is_empty() && parts.is_empty() {
            return Ok(None);
        }
        let sidecar = Sidecar {
            v: 1,
            key: key.to_string(),
            xet_hash,
            mtime,
            extra: extra.clone(),
            parts: parts.to_vec(),
        };
        let json = serde_json::to_vec(&sidecar).expect("plain data serializes");
        let hash = self
            .store_small_file(&self.cas(id, TokenScope::Write), json)
            .await?;
        Ok(Some(BatchOp::AddFile {
            path: sidecar_path(key),
            xet_hash: hash,
            mtime,
            content_type: Some("application/json".into()),
        }))
    }

    /// The sidecar of `key` when `entry` (its Hub entry) is present and still describes
    /// `object`; `None` otherwise. A sidecar that is not valid JSON is ignored.
    pub(crate) async fn load_sidecar(
        &self,
        id: &BucketId,
        key: &str,
        object: &RemoteFile,
        entry: Option<&RemoteFile>,
    ) -> Result<Option<Arc<Sidecar>>> {
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.size > MAX_SIDECAR || entry.size == 0 {
            return Ok(None);
        }
        let sidecar = match self.inner.sidecars.get(&entry.xet_hash) {
            Some(s) => s,
            None => {
                let raw = self
                    .read_small_file(&self.cas(id, TokenScope::Read), entry.xet_hash, MAX_SIDECAR)
                    .await?;
                match serde_json::from_slice::<Sidecar>(&raw) {
                    Ok(s) => {
                        let s = Arc::new(s);
                        self.inner.sidecars.insert(entry.xet_hash, s.clone());
                        s
                    }
                    Err(e) => {
                        tracing::warn!(path = %entry.path, error = %e, "ignoring an unreadable sidecar");
                        return Ok(None);
                    }
                }
            }
        };
        Ok(sidecar.matches(key, object).then_some(sidecar))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_short_hidden_and_per_key() {
        let p = sidecar_path("a/b.txt");
        assert!(
            p.starts_with(".hugbucket/meta/") && p.len() == 16 + 32,
            "{p}"
        );
        assert_eq!(p, sidecar_path("a/b.txt"));
        assert_ne!(p, sidecar_path("a/b.txt/"));
        assert!(crate::names::is_hidden(&p));
    }

    #[test]
    fn stale_sidecars_do_not_match() {
        let mut extra = ObjectExtra::default();
        extra.meta.insert("mtime".into(), "1700000000.5".into());
        let s = Sidecar {
            v: 1,
            key: "k".into(),
            xet_hash: XetHash::default(),
            mtime: 1_795_660_800_123,
            extra,
            parts: vec![5, 1],
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.contains("\"meta\":{\"mtime\":\"1700000000.5\"}"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Sidecar>(&json).unwrap(), s);
        let mut object = RemoteFile {
            path: "k".into(),
            size: 6,
            xet_hash: XetHash::default(),
            mtime: Some("2026-11-26T02:40:00.123Z".into()),
            uploaded_at: None,
            content_type: None,
        };
        assert!(s.matches("k", &object));
        assert!(!s.matches("other", &object));
        object.mtime = Some("2026-11-26T02:40:00.124Z".into());
        assert!(!s.matches("k", &object), "another mtime: overwritten");
        object.mtime = Some("2026-11-26T02:40:00.123Z".into());
        object.xet_hash = XetHash::from_slice(&[1; 32]).unwrap();
        assert!(!s.matches("k", &object), "another hash: overwritten");
    }
}
