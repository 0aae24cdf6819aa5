//! The ONE mapping from the gateway core's errors to S3 errors.
//!
//! Handlers never map core errors themselves; they call [`to_s3`] (or
//! [`to_s3_with_body_error`] for operations that consumed a request body).

use hugbucket_core::{CoreError, UpstreamFailure, UpstreamKind};

use crate::error::{S3Error, S3ErrorCode};

/// Maps a core error to the S3 error the client sees.
pub fn to_s3(err: &CoreError) -> S3Error {
    use S3ErrorCode as C;
    match err {
        CoreError::NoSuchBucket(b) => S3Error::new(C::NoSuchBucket).resource(b.clone()),
        CoreError::NoSuchKey(k) => S3Error::new(C::NoSuchKey).resource(k.clone()),
        CoreError::BucketAlreadyOwnedByYou(b) => {
            S3Error::new(C::BucketAlreadyOwnedByYou).resource(b.clone())
        }
        CoreError::BucketNotEmpty(b) => S3Error::new(C::BucketNotEmpty).resource(b.clone()),
        CoreError::InvalidBucketName(b) => S3Error::new(C::InvalidBucketName).resource(b.clone()),
        CoreError::InvalidKey(m) => {
            S3Error::with_message(C::InvalidArgument, format!("invalid key: {m}"))
        }
        CoreError::InvalidRange { size } => S3Error::invalid_range(*size),
        CoreError::NoSuchUpload(u) => S3Error::new(C::NoSuchUpload).resource(u.clone()),
        CoreError::InvalidPart(m) => S3Error::with_message(
            C::InvalidPart,
            format!("{}: {m}", C::InvalidPart.default_message()),
        ),
        CoreError::InvalidPartOrder => S3Error::new(C::InvalidPartOrder),
        CoreError::PreconditionFailed(_) => S3Error::new(C::PreconditionFailed),
        CoreError::InvalidPartNumber { .. } => S3Error::new(C::InvalidPartNumber),
        CoreError::EntityTooSmall => S3Error::new(C::EntityTooSmall),
        CoreError::InvalidArgument(m) => S3Error::with_message(C::InvalidArgument, m.clone()),
        CoreError::IncompleteBody(_) => S3Error::new(C::IncompleteBody),
        CoreError::Upstream(u) => upstream(u),
        CoreError::Integrity(m) => {
            tracing::error!(error = %m, "data read back from the CAS did not verify");
            S3Error::new(C::SlowDown)
        }
        CoreError::Unavailable(m) => {
            tracing::warn!(error = %m, "core unavailable");
            S3Error::new(C::ServiceUnavailable)
        }
        CoreError::Internal(m) => {
            tracing::error!(error = %m, "internal error");
            S3Error::new(C::InternalError)
        }
        other if other.is_retryable() => {
            tracing::warn!(error = %other, "retryable core error");
            S3Error::new(C::SlowDown)
        }
        other => {
            tracing::error!(error = %other, "unmapped core error");
            S3Error::new(C::InternalError)
        }
    }
}

/// Like [`to_s3`], but when the core reports an incomplete body and the request body
/// stream itself failed with an S3 error (BadDigest, SignatureDoesNotMatch,
/// XAmzContentSHA256Mismatch, ...), that more precise error wins.
pub fn to_s3_with_body_error(err: &CoreError, body_error: Option<&S3Error>) -> S3Error {
    match (err, body_error) {
        (CoreError::IncompleteBody(_), Some(b)) => b.clone(),
        _ => to_s3(err),
    }
}

fn upstream(u: &UpstreamFailure) -> S3Error {
    use S3ErrorCode as C;
    match u.kind {
        // The Hub's rate limit did not reset within the wait budget: SlowDown, with the
        // time until the reset for clients that read it.
        UpstreamKind::SlowDown { retry_after } => {
            let err = S3Error::new(C::SlowDown);
            match retry_after {
                Some(d) => err.header(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(d.as_secs_f64().ceil().max(1.0) as u64),
                ),
                None => err,
            }
        }
        UpstreamKind::Unavailable => {
            tracing::warn!(error = %u, "upstream unreachable");
            S3Error::with_message(
                C::ServiceUnavailable,
                "The upstream storage is unreachable. Please retry.",
            )
        }
        UpstreamKind::RangeNotSatisfiable => S3Error::new(C::InvalidRange),
        _ if u.retryable => {
            tracing::warn!(error = %u, "retryable upstream failure");
            S3Error::new(C::SlowDown)
        }
        _ => {
            tracing::error!(error = %u, "upstream failure");
            S3Error::new(C::InternalError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(kind: UpstreamKind, retryable: bool) -> CoreError {
        CoreError::Upstream(UpstreamFailure {
            kind,
            retryable,
            message: "test".into(),
        })
    }

    #[test]
    fn mapping() {
        use S3ErrorCode as C;
        let cases: Vec<(CoreError, C, u16)> = vec![
            (CoreError::NoSuchBucket("b".into()), C::NoSuchBucket, 404),
            (CoreError::NoSuchKey("k".into()), C::NoSuchKey, 404),
            (
                CoreError::BucketAlreadyOwnedByYou("b".into()),
                C::BucketAlreadyOwnedByYou,
                409,
            ),
            (
                CoreError::BucketNotEmpty("b".into()),
                C::BucketNotEmpty,
                409,
            ),
            (
                CoreError::InvalidBucketName("B".into()),
                C::InvalidBucketName,
                400,
            ),
            (CoreError::InvalidRange { size: 7 }, C::InvalidRange, 416),
            (CoreError::NoSuchUpload("u".into()), C::NoSuchUpload, 404),
            (CoreError::InvalidPart("1".into()), C::InvalidPart, 400),
            (CoreError::InvalidPartOrder, C::InvalidPartOrder, 400),
            (CoreError::EntityTooSmall, C::EntityTooSmall, 400),
            (
                CoreError::Unavailable("shutting down".into()),
                C::ServiceUnavailable,
                503,
            ),
            (
                CoreError::PreconditionFailed("x".into()),
                C::PreconditionFailed,
                412,
            ),
            (
                CoreError::InvalidPartNumber { part: 3, parts: 2 },
                C::InvalidPartNumber,
                416,
            ),
            (
                CoreError::InvalidArgument("x".into()),
                C::InvalidArgument,
                400,
            ),
            (
                CoreError::IncompleteBody("x".into()),
                C::IncompleteBody,
                400,
            ),
            (CoreError::Internal("x".into()), C::InternalError, 500),
            (
                upstream(UpstreamKind::SlowDown { retry_after: None }, true),
                C::SlowDown,
                503,
            ),
            (upstream(UpstreamKind::Server, true), C::SlowDown, 503),
            (upstream(UpstreamKind::Server, false), C::InternalError, 500),
            (
                upstream(UpstreamKind::Unavailable, true),
                C::ServiceUnavailable,
                503,
            ),
            (
                upstream(UpstreamKind::RangeNotSatisfiable, false),
                C::InvalidRange,
                416,
            ),
            (
                upstream(UpstreamKind::Forbidden, false),
                C::InternalError,
                500,
            ),
        ];
        for (e, code, status) in cases {
            let s = to_s3(&e);
            assert_eq!((s.code(), s.status().as_u16()), (code, status), "{e}");
        }
        assert_eq!(
            to_s3(&CoreError::InvalidRange { size: 7 }).headers()[0].1,
            "bytes */7"
        );
        // A rate limit that outlasted the wait budget: SlowDown with the time to the reset.
        let limited = UpstreamKind::SlowDown {
            retry_after: Some(std::time::Duration::from_millis(41_200)),
        };
        let s = to_s3(&upstream(limited, true));
        assert_eq!((s.code(), s.status().as_u16()), (C::SlowDown, 503));
        assert_eq!(
            s.headers()[0],
            (http::header::RETRY_AFTER, "42".parse().unwrap())
        );
        let body = S3Error::new(S3ErrorCode::BadDigest);
        assert_eq!(
            to_s3_with_body_error(&CoreError::IncompleteBody("x".into()), Some(&body)).code(),
            S3ErrorCode::BadDigest
        );
        assert_eq!(
            to_s3_with_body_error(&CoreError::NoSuchKey("k".into()), Some(&body)).code(),
            S3ErrorCode::NoSuchKey
        );
    }
}
