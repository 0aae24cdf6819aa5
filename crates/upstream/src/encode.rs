//! URL building helpers: Python `quote(s, safe="")` and bucket id validation.

use std::fmt;

use crate::error::{Result, UpstreamError};

/// Percent-encodes `s` like Python's `urllib.parse.quote(s, safe="")`: every byte of the
/// UTF-8 encoding except `A-Z a-z 0-9 _ . - ~` becomes `%XX` (uppercase hex), so `/` becomes
/// `%2F` and the result is always a single path segment.
pub fn quote_segment(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// A bucket id `namespace/name`.
///
/// Both parts are non-empty, at most 96 bytes, and made of ASCII letters, digits, `-`, `_`
/// and `.` (not starting with `.`), so they can be placed in URL paths verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketId {
    namespace: String,
    name: String,
}

impl BucketId {
    /// Builds an id from its two parts, validating both.
    pub fn new(namespace: &str, name: &str) -> Result<Self> {
        validate_part("namespace", namespace)?;
        validate_part("bucket name", name)?;
        Ok(BucketId {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// Parses `namespace/name`.
    pub fn parse(id: &str) -> Result<Self> {
        let (ns, name) = id.split_once('/').ok_or_else(|| {
            UpstreamError::InvalidArgument(format!("bucket id {id:?} is not namespace/name"))
        })?;
        BucketId::new(ns, name)
    }

    /// The namespace (user or organisation).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The bucket name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for BucketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for BucketId {
    type Err = UpstreamError;
    fn from_str(s: &str) -> Result<Self> {
        BucketId::parse(s)
    }
}

/// Validates a namespace or bucket name (also used for the `namespace` of list/create).
pub(crate) fn validate_part(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 96
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(UpstreamError::InvalidArgument(format!(
            "invalid {what} {s:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_python_safe_empty() {
        // Expected values from Python: urllib.parse.quote(s, safe="").
        assert_eq!(quote_segment("dir/sub/notes.txt"), "dir%2Fsub%2Fnotes.txt");
        assert_eq!(quote_segment("a b+c&d=e?f#g"), "a%20b%2Bc%26d%3De%3Ff%23g");
        assert_eq!(quote_segment("AZaz09_.-~"), "AZaz09_.-~");
        assert_eq!(quote_segment("é/ü"), "%C3%A9%2F%C3%BC");
        assert_eq!(quote_segment("100%"), "100%25");
        assert_eq!(
            quote_segment(":@!$'()*,;"),
            "%3A%40%21%24%27%28%29%2A%2C%3B"
        );
        assert_eq!(quote_segment(""), "");
    }

    #[test]
    fn bucket_ids() {
        let id = BucketId::parse("fakeuser/rt-bucket").unwrap();
        assert_eq!(id.namespace(), "fakeuser");
        assert_eq!(id.name(), "rt-bucket");
        assert_eq!(id.to_string(), "fakeuser/rt-bucket");
        for bad in [
            "nobucket",
            "/b",
            "a/",
            "a/b/c",
            "a/b c",
            "a/.hidden",
            "a/b%2F",
            "a/..",
            "a/é",
        ] {
            assert!(BucketId::parse(bad).is_err(), "{bad}");
        }
        let err = BucketId::parse("x").unwrap_err();
        assert_eq!(err.fault(), crate::Fault::Client);
    }
}
