//! The upstream layout of a multipart upload (`docs/core-api.md`, "Hidden entries"): what
//! each hidden entry is called and holds. Pure functions, no I/O.
//!
//! ```text
//! .hugbucket/uploads/{id}/upload.json                      the upload record (JSON)
//! .hugbucket/uploads/{id}/part-{n:05}-{size}-{manifest}    one entry per uploaded part
//! ```
//!
//! A part entry's content *is* the part's manifest (a small JSON Xet file already stored
//! in the CAS when the part was acknowledged), so registering it costs one `addFile` and no
//! upload; its name carries everything ListParts shows. Two uploads of one part number
//! (through one node or two) have different manifests, hence different entries: nothing is
//! ever overwritten, and the newest entry of a part number is the part.

use hugbucket_engine::XetHash;
use hugbucket_engine::shard::FileTerm;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::types::ObjectExtra;

/// The directory of all uploads in a bucket.
pub(crate) const UPLOADS_DIR: &str = ".hugbucket/uploads";
/// Name of the upload record inside an upload's directory.
const UPLOAD_RECORD: &str = "upload.json";
/// Largest upload record or manifest read back (a 5 GiB part has ~80 000 chunks).
pub(crate) const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Whether `path` is one of the multipart records (under [`UPLOADS_DIR`]).
pub(crate) fn is_upload_record(path: &str) -> bool {
    parse_path(path).is_some()
}

/// Whether `id` has the shape of an upload id we hand out (32 lowercase hex digits), so it
/// can be put in a path as is.
pub(crate) fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `.hugbucket/uploads/{id}`.
pub(crate) fn upload_dir(id: &str) -> String {
    format!("{UPLOADS_DIR}/{id}")
}

/// `.hugbucket/uploads/{id}/upload.json`.
pub(crate) fn upload_record_path(id: &str) -> String {
    format!("{UPLOADS_DIR}/{id}/{UPLOAD_RECORD}")
}

/// The entry of one uploaded part.
pub(crate) fn part_path(id: &str, part: &PartName) -> String {
    format!(
        "{UPLOADS_DIR}/{id}/part-{:05}-{}-{}",
        part.number, part.size, part.manifest
    )
}

/// What an upload directory's entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `upload.json`.
    Record,
    /// A part entry.
    Part(PartName),
    /// Anything else (ignored, removed with the upload).
    Other,
}

/// What a part entry's name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartName {
    pub number: u32,
    pub size: u64,
    /// Xet hash of the part's manifest (also the part's ETag).
    pub manifest: XetHash,
}

/// Splits a path under [`UPLOADS_DIR`] into (upload id, entry). `None` for paths outside.
pub(crate) fn parse_path(path: &str) -> Option<(&str, Entry)> {
    let rest = path.strip_prefix(UPLOADS_DIR)?.strip_prefix('/')?;
    let (id, name) = rest.split_once('/')?;
    let entry = if name == UPLOAD_RECORD {
        Entry::Record
    } else {
        parse_part_name(name).map_or(Entry::Other, Entry::Part)
    };
    Some((id, entry))
}

fn parse_part_name(name: &str) -> Option<PartName> {
    let mut it = name.strip_prefix("part-")?.splitn(3, '-');
    let number = it.next()?.parse().ok()?;
    let size = it.next()?.parse().ok()?;
    let manifest = it.next()?.parse().ok()?;
    Some(PartName {
        number,
        size,
        manifest,
    })
}

/// The upload record (`upload.json`): everything Complete needs besides the parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    /// Format version (1).
    pub v: u32,
    /// The S3 key being uploaded.
    pub key: String,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: u64,
    /// Content type given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Metadata for the object's sidecar (CreateMultipartUpload's headers).
    #[serde(default)]
    pub extra: ObjectExtra,
    /// The object's mtime, when the client gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ms: Option<u64>,
}

/// A part's manifest: what composing the object needs from this part. Its Xet hash is the
/// part's ETag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Format version (1).
    pub v: u32,
    /// Part size in bytes.
    pub size: u64,
    /// The part's file terms: `(xorb, chunk start, chunk end, unpacked bytes)`.
    pub terms: Vec<(XetHash, u32, u32, u32)>,
    /// One verification hash per term.
    pub verification: Vec<XetHash>,
    /// `(chunk hash, size)` of every chunk, for the composed file hash.
    pub chunks: Vec<(XetHash, u64)>,
    /// Random: two uploads of identical bytes get distinct manifests (and entries), so a
    /// part re-sent with the same content through another node is its own record.
    pub nonce: String,
}

impl Manifest {
    /// The shard file terms of this part.
    pub fn file_terms(&self) -> impl Iterator<Item = FileTerm> + '_ {
        self.terms.iter().map(
            |&(xorb_hash, chunk_start, chunk_end, unpacked_bytes)| FileTerm {
                xorb_hash,
                unpacked_bytes,
                chunk_start,
                chunk_end,
            },
        )
    }

    /// Checks the manifest is self-consistent (it was read from the bucket).
    pub fn check(&self) -> Result<()> {
        let chunk_bytes: u64 = self.chunks.iter().map(|(_, n)| n).sum();
        let term_bytes: u64 = self.terms.iter().map(|t| u64::from(t.3)).sum();
        if self.v != 1
            || chunk_bytes != self.size
            || term_bytes != self.size
            || self.verification.len() != self.terms.len()
        {
            return Err(CoreError::Internal("inconsistent part manifest".into()));
        }
        Ok(())
    }
}

/// The manifest hash a part ETag names: `"<64 hex>"`, with or without quotes and an `-N`
/// suffix (clients echo what UploadPart answered). `None` when it is not one.
pub(crate) fn parse_part_etag(etag: &str) -> Option<XetHash> {
    let s = etag.trim().trim_matches('"');
    let hex = s.split_once('-').map_or(s, |(h, _)| h);
    hex.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> XetHash {
        XetHash::from_bytes([b; 32])
    }

    #[test]
    fn paths_round_trip() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(valid_upload_id(id));
        assert!(!valid_upload_id("../x"));
        assert!(!valid_upload_id(&id.to_uppercase()));
        let part = PartName {
            number: 7,
            size: 5 << 20,
            manifest: h(3),
        };
        let p = part_path(id, &part);
        assert_eq!(parse_path(&p), Some((id, Entry::Part(part))));
        assert_eq!(
            parse_path(&upload_record_path(id)),
            Some((id, Entry::Record))
        );
        assert_eq!(
            parse_path(&format!("{UPLOADS_DIR}/{id}/junk")),
            Some((id, Entry::Other))
        );
        assert_eq!(parse_path("uploads/x/upload.json"), None);
        assert_eq!(parse_path(&format!("{UPLOADS_DIR}/{id}")), None);
    }

    #[test]
    fn part_etags_parse_in_every_echoed_form() {
        let hex = h(9).to_string();
        for form in [
            hex.clone(),
            format!("\"{hex}\""),
            format!("\"{hex}-1\""),
            format!(" {hex}-1 "),
        ] {
            assert_eq!(parse_part_etag(&form), Some(h(9)), "{form}");
        }
        assert_eq!(parse_part_etag("\"abc\""), None);
        assert_eq!(parse_part_etag(""), None);
    }

    #[test]
    fn manifests_are_checked() {
        let mut m = Manifest {
            v: 1,
            size: 10,
            terms: vec![(h(1), 0, 2, 10)],
            verification: vec![h(2)],
            chunks: vec![(h(3), 4), (h(4), 6)],
            nonce: "n".into(),
        };
        m.check().unwrap();
        m.size = 11;
        assert!(m.check().is_err());
    }
}
