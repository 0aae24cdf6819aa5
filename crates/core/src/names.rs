//! Names: S3 bucket/key rules, the folder-marker convention, ETags, and Hub timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use hugbucket_engine::XetHash;

use crate::error::{CoreError, Result};

/// Zero-byte "folder/" keys are stored as `folder/` + this name (the original HugBucket's
/// convention, so buckets stay interoperable) and hidden from listings.
pub const FOLDER_MARKER: &str = ".hugbucket_keep";

/// The one reserved top-level tree of gateway records (metadata sidecars, multipart
/// records): hidden from listings, refused as a key's first segment.
pub const HIDDEN_ROOT: &str = ".hugbucket";

/// Maximum key length in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// Prefixes S3 reserves (bucket names must not start with them).
const RESERVED_PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
/// Suffixes S3 reserves (bucket names must not end with them).
const RESERVED_SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// Four dot-separated groups of digits, e.g. `192.168.5.4` or `10.0.00.1`.
fn looks_like_ipv4(name: &str) -> bool {
    let groups: Vec<&str> = name.split('.').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Validates a bucket name, for S3 CreateBucket, FTP MKD and every bucket access: the Hub's
/// rules (3–63 characters of lowercase letters, digits, `-`, `_` and `.`, starting and
/// ending with a letter or digit, no `..`) and S3's (not an IPv4 address, none of S3's
/// reserved prefixes `xn--`, `sthree-`, `amzn-s3-demo-` or suffixes `-s3alias`, `--ol-s3`,
/// `.mrap`, `--x-s3`, `--table-s3`).
pub fn validate_bucket(name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !looks_like_ipv4(name)
        && !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        && !RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s));
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidBucketName(name.to_string()))
    }
}

/// Maps an S3 key to the Hub path that stores it: "folder/" keys are stored at
/// `folder/.hugbucket_keep` (a Hub path cannot end in `/`): empty, that file is a folder
/// marker; non-empty, it is the ordinary object `folder/`.
/// Keys must be non-empty, at most 1024 bytes, free of NUL and not contain empty,
/// `.` or `..` path segments that a Hub path cannot hold, except a trailing `/`.
pub fn key_to_path(key: &str) -> Result<String> {
    let bad = |why: &str| Err(CoreError::InvalidKey(format!("{why}: {key:?}")));
    if key.is_empty() {
        return bad("empty key");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("key longer than 1024 bytes");
    }
    if key.contains('\0') {
        return bad("key contains NUL");
    }
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    if trimmed.is_empty() {
        return bad("key is only a slash");
    }
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return bad("key has an empty, '.' or '..' segment");
        }
    }
    if trimmed.rsplit('/').next() == Some(FOLDER_MARKER)
        || trimmed.split('/').next() == Some(HIDDEN_ROOT)
    {
        return bad("reserved name");
    }
    if key.ends_with('/') {
        Ok(format!("{key}{FOLDER_MARKER}"))
    } else {
        Ok(key.to_string())
    }
}

/// Maps a Hub path back to its S3 key (folder markers become "folder/").
pub fn path_to_key(path: &str) -> String {
    match path.strip_suffix(FOLDER_MARKER) {
        Some(dir) if dir.is_empty() || dir.ends_with('/') => dir.to_string(),
        _ => path.to_string(),
    }
}

/// Whether a Hub path is where a `folder/` key is stored (a folder marker when empty).
pub fn is_folder_marker(path: &str) -> bool {
    path == FOLDER_MARKER || path.ends_with(&format!("/{FOLDER_MARKER}"))
}

/// Whether a Hub path is in the gateway's reserved tree (never an object).
pub fn is_hidden(path: &str) -> bool {
    path.split('/').next() == Some(HIDDEN_ROOT)
}

/// The quoted ETag of content with this file hash: `"<xet hash>-N"`, N = the number of
/// multipart parts, 1 for a single PUT. It always has the `-N` form of a multipart ETag,
/// so that clients that check ETags against the body's MD5 (s3cmd, rclone) know it is not
/// one, and never mistake the 64-hex hash for an MD5.
pub fn etag(hash: &XetHash, parts: Option<u32>) -> String {
    format!("\"{hash}-{}\"", parts.unwrap_or(1))
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats milliseconds since the epoch as the Hub writes times
/// (`2026-11-26T02:40:00.123Z`); the inverse of [`parse_iso8601`].
pub fn format_iso8601_ms(ms: u64) -> String {
    let t = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The time `ms` milliseconds after the epoch.
pub fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// A time the Hub sent (ISO 8601), or the epoch when it sent none or an unreadable one.
pub fn hub_time(s: Option<&str>) -> SystemTime {
    s.and_then(parse_iso8601).unwrap_or(UNIX_EPOCH)
}

/// Parses an ISO-8601 / RFC 3339 UTC timestamp as the Hub writes them
/// (`2026-11-26T02:40:00.123Z`, also `+00:00`, without fraction, and without a zone, read
/// as UTC). `None` if malformed or before 1970.
pub fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let t = match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.to_utc(),
        Err(_) => chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()?
            .and_utc(),
    };
    (t.timestamp() >= 0).then(|| t.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_round_trips() {
        for ms in [0u64, 951_782_400_123, 1_732_570_000_000, 4_102_444_799_999] {
            let s = format_iso8601_ms(ms);
            let back = parse_iso8601(&s).expect("parses");
            assert_eq!(
                back.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64,
                ms,
                "{s}"
            );
        }
        assert_eq!(
            format_iso8601_ms(951_782_400_123),
            "2000-02-29T00:00:00.123Z"
        );
    }

    #[test]
    fn keys_and_markers() {
        assert_eq!(key_to_path("a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(key_to_path("dir/").unwrap(), "dir/.hugbucket_keep");
        assert_eq!(path_to_key("dir/.hugbucket_keep"), "dir/");
        assert_eq!(path_to_key("x.hugbucket_keep"), "x.hugbucket_keep");
        assert!(is_folder_marker("a/.hugbucket_keep"));
        assert!(!is_folder_marker("a/x.hugbucket_keep"));
        for bad in [
            "",
            "/",
            "a//b",
            "../x",
            "a/./b",
            "a/..",
            "k\0",
            "a/.hugbucket_keep",
            ".hugbucket",
            ".hugbucket/meta/x",
            ".hugbucket/",
        ] {
            assert!(key_to_path(bad).is_err(), "{bad:?}");
        }
        assert!(key_to_path(&"k".repeat(1024)).is_ok());
        assert_eq!(key_to_path("a/.hugbucket").unwrap(), "a/.hugbucket");
        assert_eq!(key_to_path(".hugbucketx").unwrap(), ".hugbucketx");
        assert!(is_hidden(".hugbucket/meta/ab") && !is_hidden("a/.hugbucket/x"));
        assert!(key_to_path(&"k".repeat(1025)).is_err());
        assert_eq!(
            key_to_path("sp ace+plus%pct/ünï").unwrap(),
            "sp ace+plus%pct/ünï"
        );
    }

    #[test]
    fn bucket_names() {
        for ok in [
            "abc",
            "my-bucket.v2",
            "a_b-c",
            "1.2.3",
            "1.2.3.4.5",
            "v1.2.3.x",
            "xn-single",
            "s3alias",
            &"a".repeat(63),
        ] {
            validate_bucket(ok).unwrap();
        }
        for bad in [
            "ab",
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            &"a".repeat(64),
            "a/b",
            "192.168.5.4",
            "010.0.0.001",
            "xn--abc",
            "sthree-abc",
            "amzn-s3-demo-x",
            "my-s3alias",
            "abc--ol-s3",
            "abc.mrap",
            "abc--x-s3",
            "abc--table-s3",
        ] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso_timestamps() {
        let t = parse_iso8601("2026-11-26T02:40:00.123Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_millis(),
            1_795_660_800_123
        );
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_iso8601("1970-01-01T01:00:00+01:00"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_iso8601("2000-02-29T00:00:00"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-26",
            "2026-11-26T02:40:00.Z",
            "x026-11-26T02:40:00Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }
}
