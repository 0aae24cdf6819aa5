//! Data types of the Hub bucket API (spec §7).

use hugbucket_engine::XetHash;
use serde::{Deserialize, Serialize};

use crate::error::{Result, UpstreamError};
use crate::transport::parse_json;

/// `GET /api/whoami-v2` (only the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WhoAmI {
    /// The user (or organisation) name; it is the namespace of the user's buckets.
    pub name: String,
    /// `user` or `org`, when the Hub says.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// A bucket as returned by `GET /api/buckets/{id}` and the bucket list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BucketInfo {
    /// `namespace/name`.
    pub id: String,
    /// Whether the bucket is private.
    #[serde(default)]
    pub private: bool,
    /// ISO-8601 creation time.
    #[serde(rename = "createdAt", default)]
    pub created_at: Option<String>,
    /// Total stored bytes.
    #[serde(default)]
    pub size: u64,
    /// Number of files.
    #[serde(rename = "totalFiles", default)]
    pub total_files: u64,
}

/// Bucket visibility for [`CreateBucketOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone can read.
    Public,
    /// Only the owner can read.
    Private,
}

/// Body of `POST /api/buckets/{namespace}/{name}` (fields left `None` are omitted, as
/// huggingface_hub 2.4 does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateBucketOptions {
    /// `visibility`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// `resourceGroupId`.
    #[serde(rename = "resourceGroupId", skip_serializing_if = "Option::is_none")]
    pub resource_group_id: Option<String>,
    /// `region` (`us` or `eu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A file of a bucket (tree listing and paths-info entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path inside the bucket.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// File hash of the content in CAS.
    pub xet_hash: XetHash,
    /// ISO-8601 modification time (as given in `addFile.mtime`), if any.
    pub mtime: Option<String>,
    /// ISO-8601 upload time, if any.
    pub uploaded_at: Option<String>,
    /// Content type, if any.
    pub content_type: Option<String>,
}

/// A directory of a non-recursive tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDirectory {
    /// Path inside the bucket (no trailing slash).
    pub path: String,
    /// ISO-8601 time of the latest upload under it, if any.
    pub uploaded_at: Option<String>,
}

/// One entry of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// `"type": "file"`.
    File(RemoteFile),
    /// `"type": "directory"`.
    Directory(RemoteDirectory),
}

impl TreeEntry {
    /// The entry's path.
    pub fn path(&self) -> &str {
        match self {
            TreeEntry::File(f) => &f.path,
            TreeEntry::Directory(d) => &d.path,
        }
    }
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "xetHash", default)]
    xet_hash: Option<String>,
    #[serde(default)]
    mtime: Option<String>,
    #[serde(rename = "uploadedAt", default)]
    uploaded_at: Option<String>,
    #[serde(rename = "contentType", default)]
    content_type: Option<String>,
}

impl RawEntry {
    fn into_entry(self, op: &'static str) -> Result<Option<TreeEntry>> {
        match self.kind.as_str() {
            "file" => {
                let hash = self.xet_hash.ok_or_else(|| {
                    UpstreamError::decode(op, format!("file {:?} without xetHash", self.path))
                })?;
                let xet_hash =
                    XetHash::from_hex(&hash).map_err(|e| UpstreamError::decode(op, e))?;
                Ok(Some(TreeEntry::File(RemoteFile {
                    path: self.path,
                    size: self.size.unwrap_or(0),
                    xet_hash,
                    mtime: self.mtime,
                    uploaded_at: self.uploaded_at,
                    content_type: self.content_type,
                })))
            }
            "directory" => Ok(Some(TreeEntry::Directory(RemoteDirectory {
                path: self.path,
                uploaded_at: self.uploaded_at,
            }))),
            _ => Ok(None),
        }
    }
}

/// Parses a tree page (JSON array); entries of unknown types are skipped.
#[doc(hidden)] // public for fuzz/fuzz_targets/reconstruction_json.rs
pub fn parse_tree_page(body: &[u8]) -> Result<Vec<TreeEntry>> {
    const OP: &str = "list tree";
    let raw: Vec<RawEntry> = parse_json(OP, body)?;
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        if let Some(e) = r.into_entry(OP)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Parses a paths-info answer (files only; other entries are skipped).
#[doc(hidden)] // public for fuzz/fuzz_targets/reconstruction_json.rs
pub fn parse_paths_info(body: &[u8]) -> Result<Vec<RemoteFile>> {
    const OP: &str = "paths info";
    let raw: Vec<RawEntry> = parse_json(OP, body)?;
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        if let Some(TreeEntry::File(f)) = r.into_entry(OP)? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Parses a bucket list page.
#[doc(hidden)] // public for fuzz/fuzz_targets/reconstruction_json.rs
pub fn parse_bucket_page(body: &[u8]) -> Result<Vec<BucketInfo>> {
    parse_json("list buckets", body)
}

/// One operation of `POST /api/buckets/{id}/batch` (one NDJSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum BatchOp {
    /// Attach registered content (`xet_hash`) to `path`.
    #[serde(rename = "addFile")]
    AddFile {
        /// Destination path.
        path: String,
        /// File hash registered in CAS by a shard upload (64 zeros for the empty file).
        #[serde(rename = "xetHash")]
        xet_hash: XetHash,
        /// Modification time, milliseconds since the epoch.
        mtime: u64,
        /// Content type; omitted when unknown.
        #[serde(rename = "contentType", skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    /// Copy content from a repository or bucket to `path`.
    #[serde(rename = "copyFile")]
    CopyFile {
        /// Destination path.
        path: String,
        /// File hash of the source content.
        #[serde(rename = "xetHash")]
        xet_hash: XetHash,
        /// Modification time, milliseconds since the epoch.
        mtime: u64,
        /// `model`, `dataset`, `space` or `bucket`.
        #[serde(rename = "sourceRepoType")]
        source_repo_type: String,
        /// `namespace/name` of the source.
        #[serde(rename = "sourceRepoId")]
        source_repo_id: String,
        /// A new content type for the copy; omitted (as huggingface_hub does) to keep the
        /// source's.
        #[serde(rename = "contentType", skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    /// Delete `path`.
    #[serde(rename = "deleteFile")]
    DeleteFile {
        /// Path to delete.
        path: String,
    },
}

impl BatchOp {
    /// Order used when splitting a batch: copies, then adds, then deletes.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            BatchOp::CopyFile { .. } => 0,
            BatchOp::AddFile { .. } => 1,
            BatchOp::DeleteFile { .. } => 2,
        }
    }
}

/// Serializes operations as NDJSON, every line terminated by `\n`.
pub fn batch_ndjson(ops: &[BatchOp]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ops.len() * 160);
    for op in ops {
        // Serializing these plain structs cannot fail.
        if serde_json::to_writer(&mut out, op).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// A failed batch operation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BatchFailure {
    /// The operation's path.
    pub path: String,
    /// The Hub's reason.
    #[serde(default)]
    pub error: String,
}

/// Result of [`crate::HubClient::batch`] over all requests it made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Operations reported failed (the batch is not transactional: the others were applied).
    pub failed: Vec<BatchFailure>,
    /// Number of requests sent (≤ 1000 operations each).
    pub requests: usize,
}

#[derive(Deserialize)]
pub(crate) struct RawBatchReply {
    #[serde(default)]
    pub failed: Vec<BatchFailure>,
}

/// Metadata from `HEAD /buckets/{id}/resolve/{path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFile {
    /// Status of the response the metadata was read from (200, or a 3xx redirect to
    /// another origin).
    pub status: u16,
    /// `X-Xet-Hash`.
    pub xet_hash: Option<XetHash>,
    /// `X-Linked-Size`, else (non-redirect) `Content-Length`.
    pub size: Option<u64>,
    /// Token refresh URL: `Link rel="xet-auth"`, else `X-Xet-Refresh-Route` (a
    /// `https://huggingface.co/` prefix is rewritten to the configured endpoint).
    pub xet_auth_url: Option<String>,
    /// `Link rel="xet-reconstruction-info"`, if any.
    pub reconstruction_url: Option<String>,
    /// `ETag` (quotes kept).
    pub etag: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Location` of a redirect that was not followed.
    pub location: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_end_with_newline_and_use_hub_field_names() {
        let h = XetHash::from_bytes([0xab; 32]);
        let ops = vec![
            BatchOp::AddFile {
                path: "dir/a.bin".into(),
                xet_hash: h,
                mtime: 1732570000000,
                content_type: Some("application/octet-stream".into()),
            },
            BatchOp::AddFile {
                path: "b".into(),
                xet_hash: XetHash::ZERO,
                mtime: 1,
                content_type: None,
            },
            BatchOp::CopyFile {
                path: "dst.bin".into(),
                xet_hash: h,
                mtime: 2,
                source_repo_type: "bucket".into(),
                source_repo_id: "ns/other".into(),
                content_type: None,
            },
            BatchOp::DeleteFile {
                path: "old.bin".into(),
            },
        ];
        let text = String::from_utf8(batch_ndjson(&ops)).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.ends_with('\n')));
        let hex = "ab".repeat(32);
        assert_eq!(
            lines[0],
            format!(
                "{{\"type\":\"addFile\",\"path\":\"dir/a.bin\",\"xetHash\":\"{hex}\",\"mtime\":1732570000000,\"contentType\":\"application/octet-stream\"}}\n"
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "{{\"type\":\"addFile\",\"path\":\"b\",\"xetHash\":\"{}\",\"mtime\":1}}\n",
                "0".repeat(64)
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "{{\"type\":\"copyFile\",\"path\":\"dst.bin\",\"xetHash\":\"{hex}\",\"mtime\":2,\"sourceRepoType\":\"bucket\",\"sourceRepoId\":\"ns/other\"}}\n"
            )
        );
        assert_eq!(lines[3], "{\"type\":\"deleteFile\",\"path\":\"old.bin\"}\n");
    }

    #[test]
    fn tree_page_parsing() {
        let body = br#"[{"type": "file", "path": "big.bin", "size": 20971520, "xetHash": "4ceedcb54f03efaabd400e3b9eac0b23b9cf653e975953611f714f61a00edeb5", "mtime": "2026-11-25T23:13:16.150Z", "uploadedAt": "2026-11-25T23:13:17.231Z", "contentType": "application/octet-stream"}, {"type": "directory", "path": "dir", "uploadedAt": "2026-11-25T23:13:17.231Z"}, {"type": "symlink", "path": "x"}]"#;
        let entries = parse_tree_page(body).unwrap();
        assert_eq!(entries.len(), 2);
        match &entries[0] {
            TreeEntry::File(f) => {
                assert_eq!(f.path, "big.bin");
                assert_eq!(f.size, 20971520);
                assert_eq!(
                    f.xet_hash.to_hex(),
                    "4ceedcb54f03efaabd400e3b9eac0b23b9cf653e975953611f714f61a00edeb5"
                );
                assert_eq!(f.mtime.as_deref(), Some("2026-11-25T23:13:16.150Z"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(entries[1].path(), "dir");
        assert!(matches!(entries[1], TreeEntry::Directory(_)));
        assert!(parse_tree_page(br#"[{"type":"file","path":"a"}]"#).is_err());
        assert!(parse_tree_page(br#"[{"type":"file","path":"a","xetHash":"zz"}]"#).is_err());
        assert!(parse_tree_page(b"{").is_err());
        assert!(parse_tree_page(b"[]").unwrap().is_empty());
    }

    #[test]
    fn create_options_serialization() {
        let body = serde_json::to_string(&CreateBucketOptions::default()).unwrap();
        assert_eq!(body, "{}");
        let body = serde_json::to_string(&CreateBucketOptions {
            visibility: Some(Visibility::Private),
            resource_group_id: None,
            region: Some("eu".into()),
        })
        .unwrap();
        assert_eq!(body, r#"{"visibility":"private","region":"eu"}"#);
    }
}
