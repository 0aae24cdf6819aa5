//! The one place where failures become FTP replies.
//!
//! Every storage operation of the back-end fails with an [`FtpError`]; libunftp picks the
//! reply from the [`ErrorKind`] we give it, so this module decides every reply code:
//!
//! | failure | kind | reply |
//! |---|---|---|
//! | no such key / not a file | `PermanentFileNotAvailable` | 550 |
//! | no such bucket / folder, not a folder, bucket exists | `PermanentDirectoryNotAvailable` | 550 |
//! | bucket or folder not empty | `PermanentDirectoryNotEmpty` | 550 |
//! | read-only user (anonymous) writes | `PermissionDenied` | 550 |
//! | invalid bucket name or key, `..` above the root, non-UTF-8 | `FileNameNotAllowedError` | 553 |
//! | REST + STOR, APPE onto data, renaming a bucket | `CommandNotImplemented` | 502 |
//! | a transfer at a possibly stale REST offset (after a failed one) | `CommandNotImplemented` | 502 |
//! | the client's data connection broke during STOR | `ConnectionClosed` | 426 |
//! | upstream Hub/CAS failures, integrity, internal | `LocalError` | 451 (try again) |

use hugbucket_core::CoreError;
use unftp_core::storage::{Error as StorageError, ErrorKind};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    /// The gateway core failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The path is not acceptable (`..` above the root, not UTF-8, empty segment).
    #[error("path not allowed: {0}")]
    BadPath(String),
    /// A write by a user that may only read.
    #[error("permission denied: {0} is read-only")]
    ReadOnly(String),
    /// The path names a directory (root, bucket or folder) where a file was expected.
    #[error("{0} is a directory")]
    IsDirectory(String),
    /// Nothing at this path.
    #[error("no such file or directory: {0}")]
    NotFound(String),
    /// The path is not a directory.
    #[error("not a directory: {0}")]
    NotDirectory(String),
    /// The directory still holds entries.
    #[error("directory not empty: {0}")]
    NotEmpty(String),
    /// The directory already exists.
    #[error("already exists: {0}")]
    Exists(String),
    /// An operation objects cannot support (partial overwrite, bucket rename, ...).
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The transfer would start at the offset of an earlier failed transfer's `REST`,
    /// which libunftp may still hold although the client did not repeat it (see
    /// `backend::StaleRestart`).
    #[error(
        "refusing a transfer at offset {0}: it may be the REST of an earlier failed transfer; send REST again (REST 0 for the whole file) or reconnect"
    )]
    StaleRestart(u64),
    /// The server is shutting down: no new transfers.
    #[error("the server is shutting down; try again later")]
    ShuttingDown,
    /// The transfer was cut off before it completed.
    #[error("transfer aborted: {0}")]
    Aborted(String),
    /// Reading from or writing to the client failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FtpError {
    /// The libunftp error kind, and therefore the FTP reply, of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FtpError::Core(e) => core_kind(e),
            FtpError::BadPath(_) => ErrorKind::FileNameNotAllowedError,
            FtpError::ReadOnly(_) => ErrorKind::PermissionDenied,
            FtpError::IsDirectory(_) | FtpError::NotFound(_) => {
                ErrorKind::PermanentFileNotAvailable
            }
            FtpError::NotDirectory(_) | FtpError::Exists(_) => {
                ErrorKind::PermanentDirectoryNotAvailable
            }
            FtpError::NotEmpty(_) => ErrorKind::PermanentDirectoryNotEmpty,
            FtpError::Unsupported(_) | FtpError::StaleRestart(_) => {
                ErrorKind::CommandNotImplemented
            }
            FtpError::Aborted(_) => ErrorKind::ConnectionClosed,
            FtpError::ShuttingDown => ErrorKind::LocalError,
            FtpError::Io(e) => match e.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => ErrorKind::ConnectionClosed,
                _ => ErrorKind::LocalError,
            },
        }
    }
}

fn core_kind(e: &CoreError) -> ErrorKind {
    match e {
        CoreError::NoSuchKey(_) | CoreError::InvalidRange { .. } => {
            ErrorKind::PermanentFileNotAvailable
        }
        CoreError::NoSuchBucket(_) | CoreError::BucketAlreadyOwnedByYou(_) => {
            ErrorKind::PermanentDirectoryNotAvailable
        }
        CoreError::BucketNotEmpty(_) => ErrorKind::PermanentDirectoryNotEmpty,
        CoreError::InvalidBucketName(_) | CoreError::InvalidKey(_) => {
            ErrorKind::FileNameNotAllowedError
        }
        CoreError::IncompleteBody(_) => ErrorKind::ConnectionClosed,
        // Upstream trouble (retryable or not), integrity failures and our own faults:
        // 451 "Local error", which clients treat as "try again later".
        _ => ErrorKind::LocalError,
    }
}

impl From<FtpError> for StorageError {
    fn from(e: FtpError) -> Self {
        let kind = e.kind();
        match kind {
            ErrorKind::LocalError | ErrorKind::ConnectionClosed => {
                tracing::warn!(error = %e, "ftp storage error")
            }
            _ => tracing::debug!(error = %e, "ftp storage error"),
        }
        StorageError::new(kind, e)
    }
}

/// Result alias of the back-end's internals.
pub type Result<T, E = FtpError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_table() {
        let k = |e: FtpError| e.kind();
        assert_eq!(
            k(CoreError::NoSuchKey("k".into()).into()),
            ErrorKind::PermanentFileNotAvailable
        );
        assert_eq!(
            k(CoreError::NoSuchBucket("b".into()).into()),
            ErrorKind::PermanentDirectoryNotAvailable
        );
        assert_eq!(
            k(CoreError::BucketNotEmpty("b".into()).into()),
            ErrorKind::PermanentDirectoryNotEmpty
        );
        assert_eq!(
            k(CoreError::InvalidKey("k".into()).into()),
            ErrorKind::FileNameNotAllowedError
        );
        assert_eq!(
            k(CoreError::InvalidBucketName("B".into()).into()),
            ErrorKind::FileNameNotAllowedError
        );
        assert_eq!(
            k(CoreError::Internal("x".into()).into()),
            ErrorKind::LocalError
        );
        assert_eq!(
            k(CoreError::Unavailable("x".into()).into()),
            ErrorKind::LocalError
        );
        assert_eq!(
            k(CoreError::IncompleteBody("x".into()).into()),
            ErrorKind::ConnectionClosed
        );
        assert_eq!(
            k(FtpError::BadPath("..".into())),
            ErrorKind::FileNameNotAllowedError
        );
        assert_eq!(
            k(FtpError::ReadOnly("anonymous".into())),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            k(FtpError::Unsupported("REST + STOR")),
            ErrorKind::CommandNotImplemented
        );
        assert_eq!(
            k(FtpError::StaleRestart(10)),
            ErrorKind::CommandNotImplemented
        );
        assert_eq!(
            k(FtpError::NotEmpty("d".into())),
            ErrorKind::PermanentDirectoryNotEmpty
        );
        assert_eq!(k(FtpError::ShuttingDown), ErrorKind::LocalError);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(k(reset.into()), ErrorKind::ConnectionClosed);
    }
}
