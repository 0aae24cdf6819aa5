//! Reading requests: bounded request-body collection and `Range` header parsing. Failures
//! are [`HubError`]s (413, 416, 400).

use std::pin::Pin;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use crate::error::HubError;

/// Reads a whole request body, refusing (413) more than `limit` bytes, before or while
/// reading. A body that arrives in one frame is kept as is.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: u64) -> Result<Bytes, HubError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = declared_len(headers, limit)?;
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    let mut body = std::pin::pin!(body);
    while let Some(data) = next_data(&mut body).await? {
        if (buf.len() + data.len()) as u64 > limit {
            return Err(HubError::PayloadTooLarge { limit });
        }
        if buf.is_empty() && declared == Some(data.len() as u64) {
            // The whole body arrived in one frame: kept as is, no copy.
            return Ok(data);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// [`read_body`] into `buf` (cleared; its capacity is reused when large enough), starting
/// at the first offset of `buf` aligned to `align` bytes: returns the buffer and that
/// offset (the body is `buf[start..]`). The space for the declared length is reserved
/// first, so the start stays aligned unless the body outgrows it (callers check).
/// One buffer filled frame by frame: collecting the frames and then concatenating them
/// would hold every byte twice (128 MiB for a full xorb).
pub async fn read_body_aligned<B>(
    headers: &HeaderMap,
    body: B,
    limit: u64,
    mut buf: Vec<u8>,
    align: usize,
) -> Result<(Vec<u8>, usize), HubError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    /// Large bodies reserve in steps of this size, so that a reused buffer fits the next
    /// body of about the same size (xorbs vary by a few KiB) without reallocating: a fresh
    /// 64 MiB buffer is page-faulted in again.
    const STEP: usize = 8 << 20;
    let declared = declared_len(headers, limit)?;
    let want = match declared.map_or(0, |n| n as usize) {
        n if n >= STEP => n.next_multiple_of(STEP),
        n => n,
    };
    buf.clear();
    // Exact: `reserve` may double a reused buffer that is a little too small.
    buf.reserve_exact(want + align);
    let start = buf.as_ptr().align_offset(align).min(align);
    buf.resize(start, 0);
    let mut body = std::pin::pin!(body);
    while let Some(data) = next_data(&mut body).await? {
        if (buf.len() - start + data.len()) as u64 > limit {
            return Err(HubError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf, start))
}

/// The declared `Content-Length`, refused (413) above `limit`.
fn declared_len(headers: &HeaderMap, limit: u64) -> Result<Option<u64>, HubError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(HubError::PayloadTooLarge { limit });
    }
    Ok(declared)
}

/// The next data frame of `body` (trailers are skipped), or `None` at its end.
async fn next_data<B>(body: &mut Pin<&mut B>) -> Result<Option<Bytes>, HubError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| HubError::BadRequest(format!("reading request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// An inclusive byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes (never 0: an inclusive range holds at least one byte).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// Parses a `Range: bytes=...` header against a resource of `size` bytes.
///
/// Returns `Ok(None)` when the header is absent or not a `bytes` range (serve everything),
/// `Ok(Some(ranges))` with the satisfiable ranges clamped to the resource, and
/// `Err(RangeNotSatisfiable)` when no range is satisfiable. Malformed specs give 400.
pub fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<Vec<ByteRange>>, HubError> {
    let Some(value) = headers.get(http::header::RANGE) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| HubError::BadRequest("invalid Range header".into()))?
        .trim();
    let Some(spec) = value.strip_prefix("bytes=") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut count = 0usize;
    for part in spec.split(',') {
        count += 1;
        if count > 1000 {
            return Err(HubError::BadRequest("too many ranges".into()));
        }
        let part = part.trim();
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| HubError::BadRequest(format!("invalid range {part:?}")))?;
        let bad = || HubError::BadRequest(format!("invalid range {part:?}"));
        let (a, b) = (a.trim(), b.trim());
        let range = if a.is_empty() {
            // Suffix range: the last `b` bytes.
            let n: u64 = b.parse().map_err(|_| bad())?;
            if n == 0 || size == 0 {
                continue;
            }
            ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            }
        } else {
            let start: u64 = a.parse().map_err(|_| bad())?;
            let end: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().map_err(|_| bad())?
            };
            if end < start {
                return Err(bad());
            }
            if start >= size {
                continue;
            }
            ByteRange {
                start,
                end: end.min(size - 1),
            }
        };
        out.push(range);
    }
    if out.is_empty() {
        return Err(HubError::RangeNotSatisfiable { size });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hdr(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::RANGE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn ranges() {
        let r = parse_range(&hdr("bytes=0-9"), 100).unwrap().unwrap();
        assert_eq!(r, vec![ByteRange { start: 0, end: 9 }]);
        let r = parse_range(&hdr("bytes=90-200, -5,3-"), 100)
            .unwrap()
            .unwrap();
        assert_eq!(
            r,
            vec![
                ByteRange { start: 90, end: 99 },
                ByteRange { start: 95, end: 99 },
                ByteRange { start: 3, end: 99 }
            ]
        );
        assert!(matches!(
            parse_range(&hdr("bytes=100-"), 100),
            Err(HubError::RangeNotSatisfiable { size: 100 })
        ));
        assert!(matches!(
            parse_range(&hdr("bytes=5-1"), 100),
            Err(HubError::BadRequest(_))
        ));
        assert!(matches!(
            parse_range(&hdr("bytes=x-1"), 100),
            Err(HubError::BadRequest(_))
        ));
        assert!(parse_range(&HeaderMap::new(), 100).unwrap().is_none());
    }
}
