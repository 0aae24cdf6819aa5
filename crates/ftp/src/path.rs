//! FTP paths to buckets and keys: `/` is the list of buckets, `/<bucket>` a bucket,
//! `/<bucket>/<key>` an object or a folder.
//!
//! libunftp joins the client's argument to the session's working directory without
//! normalizing, so every path is normalized here: `.` segments and repeated slashes vanish,
//! `..` removes the previous segment, and a `..` at the root stays at the root, as in Unix
//! and in vsftpd, proftpd and pure-ftpd (scripts that `cd ../..` rely on it). No path can
//! name anything outside the root: `/../../etc/passwd` is `/etc/passwd`, the key `passwd` of
//! a bucket `etc`. libunftp keeps the working directory as the client spelled it (a `PWD`
//! after `CWD ..` at the root shows `/..`), which is why the clamp must apply to every
//! path, not only to `CWD`.

use std::path::{Component, Path};

use crate::error::{FtpError, Result};

/// What an FTP path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`: the buckets.
    Root,
    /// `/<bucket>`.
    Bucket(String),
    /// `/<bucket>/<key>`: an object, or a folder when `key/` is a prefix. Never ends in `/`.
    Object {
        /// Bucket name.
        bucket: String,
        /// Key, segments joined with `/`.
        key: String,
    },
}

impl Target {
    /// Normalizes `path` (absolute, or relative to `/`).
    pub fn parse(path: &Path) -> Result<Target> {
        let shown = || path.to_string_lossy().into_owned();
        let mut segs: Vec<&str> = Vec::new();
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Prefix(_) => return Err(FtpError::BadPath(shown())),
                Component::ParentDir => {
                    segs.pop();
                }
                Component::Normal(s) => {
                    let s = s.to_str().ok_or_else(|| FtpError::BadPath(shown()))?;
                    segs.push(s);
                }
            }
        }
        Ok(match segs.split_first() {
            None => Target::Root,
            Some((b, [])) => Target::Bucket((*b).to_string()),
            Some((b, rest)) => Target::Object {
                bucket: (*b).to_string(),
                key: rest.join("/"),
            },
        })
    }

    /// The display form, `/bucket/key`.
    pub fn display(&self) -> String {
        match self {
            Target::Root => "/".into(),
            Target::Bucket(b) => format!("/{b}"),
            Target::Object { bucket, key } => format!("/{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Target> {
        Target::parse(Path::new(s))
    }

    fn obj(b: &str, k: &str) -> Target {
        Target::Object {
            bucket: b.into(),
            key: k.into(),
        }
    }

    #[test]
    fn normalizes() {
        assert_eq!(p("/").unwrap(), Target::Root);
        assert_eq!(p("").unwrap(), Target::Root);
        assert_eq!(p("/b").unwrap(), Target::Bucket("b".into()));
        assert_eq!(p("b/").unwrap(), Target::Bucket("b".into()));
        assert_eq!(p("/b/./x//y/").unwrap(), obj("b", "x/y"));
        assert_eq!(p("/b/x/../y").unwrap(), obj("b", "y"));
        assert_eq!(p("/b/x/..").unwrap(), Target::Bucket("b".into()));
        assert_eq!(p("/b/..").unwrap(), Target::Root);
        assert_eq!(p("/b/%2e%2e/k").unwrap(), obj("b", "%2e%2e/k"));
        assert_eq!(p("/b/odd name & ü").unwrap(), obj("b", "odd name & ü"));
    }

    #[test]
    fn parent_of_the_root_is_the_root() {
        for root in ["/..", "/../..", "..", "/b/x/../../..", "/b/../../../."] {
            assert_eq!(p(root).unwrap(), Target::Root, "{root}");
        }
        assert_eq!(p("../etc/passwd").unwrap(), obj("etc", "passwd"));
        assert_eq!(p("/b/../../etc/passwd").unwrap(), obj("etc", "passwd"));
        assert_eq!(p("/../b/../../c/k").unwrap(), obj("c", "k"));
    }
}
