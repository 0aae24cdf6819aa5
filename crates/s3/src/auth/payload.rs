//! Verification of request bodies against what the client declared: `x-amz-content-sha256`
//! (signed payloads), aws-chunked framing with chunk signatures and checksum trailers,
//! `Content-MD5`, `x-amz-checksum-*` headers, and declared lengths.
//!
//! [`VerifyingBody`] wraps any `http_body::Body` and yields the *decoded* bytes as a
//! stream. Verification failures end the stream with an error carrying the S3 error
//! (`BadDigest`, `XAmzContentSHA256Mismatch`, `SignatureDoesNotMatch`, `IncompleteBody`);
//! consumers must only commit after a clean end of stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures_util::Stream;
use http::HeaderMap;
use http_body::Body;
use md5::Digest as _;
use sha2::Sha256;

use super::checksum::{ChecksumAlgorithm, ChecksumHasher};
use super::chunked::{ChunkedConfig, ChunkedDecoder};
use super::sigv4::{PayloadMode, Verified};
use crate::error::{S3Error, S3ErrorCode};

/// Largest single PUT body (5 GiB, as S3).
pub const MAX_PUT_SIZE: u64 = 5 << 30;

/// What to check on a body, derived from the headers and the authentication result.
#[derive(Debug, Clone)]
pub struct BodyPlan {
    chunked: Option<ChunkedConfig>,
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    checksum_header: Option<(ChecksumAlgorithm, String)>,
    /// Decoded length the client declared (Content-Length or x-amz-decoded-content-length).
    pub declared_length: Option<u64>,
    max_length: u64,
}

fn header<'h>(h: &'h HeaderMap, n: &str) -> Option<&'h str> {
    h.get(n).and_then(|v| v.to_str().ok())
}

impl BodyPlan {
    /// Builds the plan for a request. `max_length` bounds the decoded body
    /// (EntityTooLarge beyond it).
    pub fn new(headers: &HeaderMap, verified: &Verified, max_length: u64) -> Result<Self, S3Error> {
        let parse_len = |name: &str| -> Result<Option<u64>, S3Error> {
            header(headers, name)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        S3Error::with_message(
                            S3ErrorCode::InvalidArgument,
                            format!("invalid {name}"),
                        )
                    })
                })
                .transpose()
        };
        let md5 = match header(headers, "content-md5") {
            None => None,
            Some(v) => {
                let raw = B64
                    .decode(v.trim())
                    .map_err(|_| S3Error::new(S3ErrorCode::InvalidDigest))?;
                Some(
                    <[u8; 16]>::try_from(raw.as_slice())
                        .map_err(|_| S3Error::new(S3ErrorCode::InvalidDigest))?,
                )
            }
        };
        let checksum_header = ChecksumAlgorithm::ALL
            .into_iter()
            .find_map(|a| header(headers, a.header_name()).map(|v| (a, v.trim().to_string())));
        let trailer = match header(headers, "x-amz-trailer") {
            None => None,
            Some(t) => Some(ChecksumAlgorithm::from_header_name(t).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    format!("unsupported x-amz-trailer {t}"),
                )
            })?),
        };
        let streaming = matches!(
            verified.payload,
            PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer
        );
        let (chunked, declared_length, sha256) = if streaming {
            let decoded = parse_len("x-amz-decoded-content-length")?.ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::MissingContentLength,
                    "x-amz-decoded-content-length is required for aws-chunked bodies",
                )
            })?;
            let (signer, signed_trailer) = match verified.payload {
                PayloadMode::StreamingSigned { trailer: t } => (verified.chunk_signer.clone(), t),
                _ => (None, false),
            };
            if matches!(verified.payload, PayloadMode::StreamingSigned { .. }) && signer.is_none() {
                return Err(S3Error::new(S3ErrorCode::InternalError));
            }
            if (signed_trailer || verified.payload == PayloadMode::StreamingUnsignedTrailer)
                && trailer.is_none()
            {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "x-amz-trailer is required for trailer payloads",
                ));
            }
            let cfg = ChunkedConfig {
                signer,
                trailer,
                signed_trailer,
                decoded_length: Some(decoded),
            };
            (Some(cfg), Some(decoded), None)
        } else {
            let sha = match verified.payload {
                PayloadMode::Sha256(h) => Some(h),
                _ => None,
            };
            (None, parse_len("content-length")?, sha)
        };
        if declared_length.is_some_and(|l| l > max_length) {
            return Err(S3Error::new(S3ErrorCode::EntityTooLarge));
        }
        Ok(Self {
            chunked,
            sha256,
            md5,
            checksum_header,
            declared_length,
            max_length,
        })
    }

    /// A plan that checks nothing but the size bound (for trusted/test bodies).
    pub fn unchecked(max_length: u64) -> Self {
        Self {
            chunked: None,
            sha256: None,
            md5: None,
            checksum_header: None,
            declared_length: None,
            max_length,
        }
    }
}

/// A body stream that decodes and verifies as it goes.
pub struct VerifyingBody<B> {
    inner: B,
    decoder: Option<ChunkedDecoder>,
    sha256: Option<(Sha256, [u8; 32])>,
    md5: Option<(md5::Md5, [u8; 16])>,
    checksum: Option<(ChecksumHasher, ChecksumAlgorithm, String)>,
    declared: Option<u64>,
    max_length: u64,
    seen: u64,
    pending: VecDeque<Bytes>,
    done: bool,
}

impl<B> VerifyingBody<B> {
    /// Wraps `inner` with the checks of `plan`.
    pub fn new(inner: B, plan: BodyPlan) -> Self {
        Self {
            inner,
            decoder: plan.chunked.map(ChunkedDecoder::new),
            sha256: plan.sha256.map(|h| (Sha256::new(), h)),
            md5: plan.md5.map(|h| (md5::Md5::new(), h)),
            checksum: plan.checksum_header.map(|(a, v)| (a.hasher(), a, v)),
            declared: plan.declared_length,
            max_length: plan.max_length,
            seen: 0,
            pending: VecDeque::new(),
            done: false,
        }
    }

    fn account(&mut self, data: &Bytes) -> Result<(), S3Error> {
        self.seen += data.len() as u64;
        if self.seen > self.max_length {
            return Err(S3Error::new(S3ErrorCode::EntityTooLarge));
        }
        if self.decoder.is_none() && self.declared.is_some_and(|d| self.seen > d) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "body larger than Content-Length",
            ));
        }
        if let Some((h, _)) = &mut self.md5 {
            h.update(data);
        }
        if let Some((h, _, _)) = &mut self.checksum {
            h.update(data);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), S3Error> {
        if let Some(d) = &mut self.decoder {
            d.finish()?;
        } else if self.declared.is_some_and(|d| d != self.seen) {
            return Err(S3Error::new(S3ErrorCode::IncompleteBody));
        }
        if let Some((h, expected)) = self.sha256.take() {
            let got: [u8; 32] = h.finalize().into();
            if got != expected {
                return Err(S3Error::new(S3ErrorCode::XAmzContentSHA256Mismatch));
            }
        }
        if let Some((h, expected)) = self.md5.take() {
            let got: [u8; 16] = h.finalize().into();
            if got != expected {
                return Err(S3Error::new(S3ErrorCode::BadDigest));
            }
        }
        if let Some((h, algo, expected)) = self.checksum.take() {
            if h.finish_base64() != expected {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!(
                        "The {} you specified did not match the calculated checksum.",
                        algo.header_name()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl<B> Stream for VerifyingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Item = Result<Bytes, S3Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.done = true;
                    if let Err(e) = this.finish() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    this.done = true;
                    tracing::debug!(error = %e, "request body read failed");
                    return Poll::Ready(Some(Err(S3Error::new(S3ErrorCode::IncompleteBody))));
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Some(sha) = &mut this.sha256 {
                        sha.0.update(&data);
                    }
                    let result = match &mut this.decoder {
                        Some(d) => {
                            let mut out = Vec::new();
                            d.push(data, &mut out).map(|()| out)
                        }
                        None => Ok(vec![data]),
                    };
                    let pieces = match result {
                        Ok(p) => p,
                        Err(e) => {
                            this.done = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    };
                    for p in pieces {
                        if let Err(e) = this.account(&p) {
                            this.done = true;
                            this.pending.clear();
                            return Poll::Ready(Some(Err(e)));
                        }
                        if !p.is_empty() {
                            this.pending.push_back(p);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::chunked;
    use futures_util::StreamExt;
    use http::HeaderValue;
    use http_body_util::{Full, StreamBody};

    fn verified(payload: PayloadMode) -> Verified {
        Verified {
            access_key: "AK".into(),
            payload,
            chunk_signer: None,
        }
    }

    fn collect<B>(body: VerifyingBody<B>) -> Result<Vec<u8>, S3Error>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        futures_lite::future::block_on(async move {
            let mut out = Vec::new();
            let mut body = body;
            while let Some(x) = body.next().await {
                out.extend_from_slice(&x?);
            }
            Ok(out)
        })
    }

    type Frames = futures_util::stream::Iter<
        std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::io::Error>>,
    >;

    fn pieces(data: &[u8], n: usize) -> StreamBody<Frames> {
        let v: Vec<_> = data
            .chunks(n)
            .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(v))
    }

    #[test]
    fn sha256_and_md5() {
        let data = b"Welcome to Amazon S3.";
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from(data.len()));
        h.insert(
            "content-md5",
            HeaderValue::from_str(&B64.encode(md5::Md5::digest(data))).unwrap(),
        );
        let sha: [u8; 32] = sha2::Sha256::digest(data).into();
        let plan = BodyPlan::new(&h, &verified(PayloadMode::Sha256(sha)), MAX_PUT_SIZE).unwrap();
        assert_eq!(
            collect(VerifyingBody::new(pieces(data, 4), plan.clone())).unwrap(),
            data
        );
        let e = collect(VerifyingBody::new(
            pieces(b"Welcome to Amazon S4.", 4),
            plan,
        ))
        .unwrap_err();
        assert_eq!(e.code(), S3ErrorCode::XAmzContentSHA256Mismatch);
        // MD5 mismatch alone: BadDigest.
        let plan = BodyPlan::new(&h, &verified(PayloadMode::Unsigned), MAX_PUT_SIZE).unwrap();
        assert_eq!(
            collect(VerifyingBody::new(
                pieces(b"Welcome to Amazon S4.", 4),
                plan
            ))
            .unwrap_err()
            .code(),
            S3ErrorCode::BadDigest
        );
        // Short body: IncompleteBody.
        let plan = BodyPlan::new(&h, &verified(PayloadMode::Unsigned), MAX_PUT_SIZE).unwrap();
        assert_eq!(
            collect(VerifyingBody::new(pieces(b"Welcome", 4), plan))
                .unwrap_err()
                .code(),
            S3ErrorCode::IncompleteBody
        );
        // Invalid Content-MD5.
        h.insert("content-md5", HeaderValue::from_static("nope"));
        assert_eq!(
            BodyPlan::new(&h, &verified(PayloadMode::Unsigned), MAX_PUT_SIZE)
                .unwrap_err()
                .code(),
            S3ErrorCode::InvalidDigest
        );
        // Too large.
        h.remove("content-md5");
        assert_eq!(
            BodyPlan::new(&h, &verified(PayloadMode::Unsigned), 3)
                .unwrap_err()
                .code(),
            S3ErrorCode::EntityTooLarge
        );
    }

    #[test]
    fn checksum_header_and_unsigned_trailer() {
        let data = vec![7u8; 50_000];
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-checksum-crc32c",
            HeaderValue::from_str(&checksum_b64(ChecksumAlgorithm::Crc32c, &data)).unwrap(),
        );
        let plan = BodyPlan::new(&h, &verified(PayloadMode::Unsigned), MAX_PUT_SIZE).unwrap();
        assert_eq!(
            collect(VerifyingBody::new(
                Full::new(Bytes::from(data.clone())),
                plan.clone()
            ))
            .unwrap(),
            data
        );
        assert_eq!(
            collect(VerifyingBody::new(
                Full::new(Bytes::from(vec![8u8; 50_000])),
                plan
            ))
            .unwrap_err()
            .code(),
            S3ErrorCode::BadDigest
        );

        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-trailer",
            HeaderValue::from_static("x-amz-checksum-crc64nvme"),
        );
        h.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from(data.len()),
        );
        let plan = BodyPlan::new(
            &h,
            &verified(PayloadMode::StreamingUnsignedTrailer),
            MAX_PUT_SIZE,
        )
        .unwrap();
        let body = chunked::encode(&data, 16384, None, Some(ChecksumAlgorithm::Crc64Nvme));
        assert_eq!(
            collect(VerifyingBody::new(pieces(&body, 1000), plan.clone())).unwrap(),
            data
        );
        let mut bad = body.clone();
        bad[100] ^= 0xff;
        assert_eq!(
            collect(VerifyingBody::new(pieces(&bad, 1000), plan))
                .unwrap_err()
                .code(),
            S3ErrorCode::BadDigest
        );
        // Trailer mode needs x-amz-decoded-content-length.
        h.remove("x-amz-decoded-content-length");
        assert!(
            BodyPlan::new(
                &h,
                &verified(PayloadMode::StreamingUnsignedTrailer),
                MAX_PUT_SIZE
            )
            .is_err()
        );
    }

    fn checksum_b64(a: ChecksumAlgorithm, d: &[u8]) -> String {
        crate::auth::checksum::checksum_base64(a, d)
    }
}
