//! Public data types of the core API (see `docs/core-api.md`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;
use hugbucket_engine::XetHash;

/// A body stream: object data flowing in (PUT) or out (GET).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Metadata of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The S3 key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Quoted entity tag: the Xet file hash (64 hex digits, never MD5-shaped), with an
    /// S3-style `-N` suffix for objects completed from N multipart parts.
    pub etag: String,
    /// Modification time (the Hub's `mtime`, millisecond precision).
    pub last_modified: SystemTime,
    /// Content type recorded at upload, if any.
    pub content_type: Option<String>,
    /// The Xet file hash of the content.
    pub xet_hash: XetHash,
    /// User metadata and standard headers stored with the object (from its sidecar).
    pub extra: ObjectExtra,
    /// Sizes of the parts of an object completed from multipart parts, in order (empty:
    /// a single part, or a layout this node does not know).
    pub parts: Vec<u64>,
}

impl ObjectMeta {
    /// The inclusive byte range of part `n` (S3 `partNumber`): for a multipart object from
    /// its parts layout, otherwise part 1 is the whole object. `None` when there is no
    /// such part; `Some(None)` for the (empty) whole of an empty object.
    pub fn part_range(&self, n: u32) -> Option<Option<(u64, u64)>> {
        if self.parts.is_empty() {
            return (n == 1).then(|| (self.size > 0).then(|| (0, self.size - 1)));
        }
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        let len = *self.parts.get(i)?;
        let start: u64 = self.parts[..i].iter().sum();
        Some((len > 0).then(|| (start, start + len - 1)))
    }
}

/// What S3 stores with an object besides its bytes, content type and mtime: user metadata
/// (`x-amz-meta-*`, names without the prefix, lowercase) and the standard headers
/// `cache-control`, `expires`, `content-disposition`, `content-encoding`,
/// `content-language` (lowercase names). Kept in the object's sidecar when not empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectExtra {
    /// User metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Standard headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl ObjectExtra {
    /// The standard headers an object can carry (lowercase).
    pub const HEADERS: [&'static str; 5] = [
        "cache-control",
        "expires",
        "content-disposition",
        "content-encoding",
        "content-language",
    ];
    /// S3's limit on user metadata: names and values, in bytes.
    pub const MAX_USER_BYTES: usize = 2048;

    /// Nothing stored.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty() && self.headers.is_empty()
    }

    /// Bytes of user metadata as S3 counts them (names and values).
    pub fn user_bytes(&self) -> usize {
        self.meta.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// A condition on the current object for a write to proceed (S3 conditional writes),
/// checked under the key's commit lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only if no object exists.
    IfNoneMatch,
    /// `If-Match: <etag>`: only if the object exists with this ETag.
    IfMatch(String),
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// S3 bucket name (the Hub bucket is `{namespace}/{name}`).
    pub name: String,
    /// Creation time (epoch when the Hub does not say).
    pub created: SystemTime,
}

/// A requested byte range, as in an HTTP `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive; `b` past the end is clamped).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Resolves the range against an object of `size` bytes to an inclusive `(start, end)`.
    /// `None` when it is not satisfiable (S3 answers 416 InvalidRange).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::FromTo(a, b) if a <= b && a < size => Some((a, b.min(size - 1))),
            ByteRange::From(a) if a < size => Some((a, size - 1)),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Some((size - n.min(size), size - 1)),
            _ => None,
        }
    }
}

/// Result of a GET.
pub struct GetResult {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The resolved inclusive range, when a range was requested.
    pub range: Option<(u64, u64)>,
    /// The bytes (exactly the range's length, or the whole object). The stream ends with an
    /// error instead of its last piece if the data fails verification.
    pub body: ByteStream,
}

impl std::fmt::Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// A listing request (ListObjects / ListObjectsV2 semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys by this delimiter into common prefixes.
    pub delimiter: Option<String>,
    /// Only keys after this one (V2 `start-after`, V1 `marker`).
    pub start_after: Option<String>,
    /// Opaque token returned by a previous page.
    pub continuation_token: Option<String>,
    /// At most this many keys + common prefixes (S3 caps it at 1000).
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects, in key order.
    pub objects: Vec<ObjectMeta>,
    /// Common prefixes (each ends with the delimiter), in order.
    pub common_prefixes: Vec<String>,
    /// Token for the next page, when truncated.
    pub next_continuation_token: Option<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
}

/// Options of a PUT (and of CreateMultipartUpload, Copy with replaced metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Content type to record.
    pub content_type: Option<String>,
    /// Declared length (Content-Length); the body must match it exactly.
    pub size_hint: Option<u64>,
    /// Metadata to store with the object (a sidecar when not empty).
    pub extra: ObjectExtra,
    /// The object's modification time in ms since the epoch (default: now), e.g. from
    /// rclone's `x-amz-meta-mtime`.
    pub mtime_ms: Option<u64>,
    /// Only write if this holds (412 otherwise).
    pub condition: Option<WriteCondition>,
}

/// The metadata of a copy's destination (S3 `x-amz-metadata-directive`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CopyMetadata {
    /// The source's content type and metadata (`COPY`).
    #[default]
    Copy,
    /// These instead (`REPLACE`); no content type given keeps the source's.
    Replace(PutOptions),
}

/// A multipart part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartMeta {
    /// Part number (1..=10000).
    pub part_number: u32,
    /// Quoted ETag of the part (its Xet file hash).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Upload time.
    pub last_modified: SystemTime,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    /// Upload id.
    pub upload_id: String,
    /// Target key.
    pub key: String,
    /// When it was created.
    pub initiated: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ranges() {
        let mut m = ObjectMeta {
            key: "k".into(),
            size: 10,
            etag: String::new(),
            last_modified: std::time::UNIX_EPOCH,
            content_type: None,
            xet_hash: XetHash::default(),
            extra: ObjectExtra::default(),
            parts: Vec::new(),
        };
        assert_eq!(m.part_range(1), Some(Some((0, 9))));
        assert_eq!(m.part_range(2), None);
        m.parts = vec![6, 4];
        assert_eq!(m.part_range(1), Some(Some((0, 5))));
        assert_eq!(m.part_range(2), Some(Some((6, 9))));
        assert_eq!(m.part_range(3), None);
        assert_eq!(m.part_range(0), None);
        m.parts.clear();
        m.size = 0;
        assert_eq!(m.part_range(1), Some(None));
    }

    #[test]
    fn ranges_resolve_like_s3() {
        assert_eq!(ByteRange::FromTo(0, 0).resolve(10), Some((0, 0)));
        assert_eq!(ByteRange::FromTo(5, 100).resolve(10), Some((5, 9)));
        assert_eq!(ByteRange::FromTo(10, 12).resolve(10), None);
        assert_eq!(ByteRange::FromTo(3, 2).resolve(10), None);
        assert_eq!(ByteRange::From(9).resolve(10), Some((9, 9)));
        assert_eq!(ByteRange::From(10).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some((7, 9)));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
    }
}
