//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects and
//! CopyObject.

use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hugbucket_core::{ByteRange, CopyMetadata, GetResult, ObjectMeta};

use super::headers::{
    Conditions, Verdict, apply_overrides, content_range, object_headers, parse_range, parts_count,
    validators, write_options,
};
use super::{Req, S3Result, Service, status_response, xml_ok};
use crate::core_error::to_s3;
use crate::error::{S3Error, S3ErrorCode};
use crate::router::parse_copy_source;
use crate::runtime::{BoxError, ResponseBody};
use crate::xml;

/// The `304 Not Modified` answer: no body, the object's validators.
fn not_modified(meta: &ObjectMeta) -> Response<ResponseBody> {
    let mut r = status_response(StatusCode::NOT_MODIFIED);
    validators(&mut r, meta);
    r
}

/// `x-amz-metadata-directive` of CopyObject: whether to replace the metadata.
fn replace_metadata(req: &Req) -> Result<bool, S3Error> {
    match req.header("x-amz-metadata-directive") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("COPY") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("REPLACE") => Ok(true),
        Some(_) => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "Unknown metadata directive.",
        )),
    }
}

/// `partNumber` of a GET/HEAD (S3 refuses it together with `Range`).
fn part_read(req: &Req) -> Result<Option<u32>, S3Error> {
    let part = req.route.query.part_number()?;
    if part.is_some() && req.header("range").is_some() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    Ok(part)
}

impl Service {
    /// Metadata of an object.
    pub(super) async fn stat(&self, bucket: &str, key: &str) -> Result<ObjectMeta, S3Error> {
        self.core(self.object(bucket, key)?.head()).await
    }

    /// Checks the `x-amz-copy-source-if-*` conditions of a copy against its source; any
    /// failing one is a 412, as S3.
    pub(super) async fn check_copy_source(
        &self,
        req: &Req,
        src_bucket: &str,
        src_key: &str,
    ) -> Result<(), S3Error> {
        let cond = Conditions::from_headers(&req.parts.headers, "x-amz-copy-source-");
        if cond.is_empty() {
            return Ok(());
        }
        let meta = self.stat(src_bucket, src_key).await?;
        match cond.evaluate(&meta.etag, meta.last_modified) {
            Verdict::Proceed => Ok(()),
            Verdict::NotModified | Verdict::Failed => {
                Err(S3Error::new(S3ErrorCode::PreconditionFailed))
            }
        }
    }

    pub(super) async fn put_object(&self, req: Req) -> S3Result {
        let obj = self.object(req.bucket(), req.key())?;
        let opts = write_options(&req.parts.headers, req.declared_length)?;
        let meta = self
            .core_with_body(req.body, |body| obj.put(body, opts))
            .await?;
        let mut r = status_response(StatusCode::OK);
        if let Ok(v) = HeaderValue::from_str(&meta.etag) {
            r.headers_mut().insert(http::header::ETAG, v);
        }
        Ok(r)
    }

    /// Evaluates GET/HEAD conditionals; `Some(response)` when they answer the request.
    async fn conditional(&self, req: &Req) -> Result<Option<Response<ResponseBody>>, S3Error> {
        let cond = Conditions::from_headers(&req.parts.headers, "");
        if cond.is_empty() {
            return Ok(None);
        }
        let meta = self.stat(req.bucket(), req.key()).await?;
        match cond.evaluate(&meta.etag, meta.last_modified) {
            Verdict::Proceed => Ok(None),
            Verdict::NotModified => Ok(Some(not_modified(&meta))),
            Verdict::Failed => Err(S3Error::new(S3ErrorCode::PreconditionFailed)),
        }
    }

    pub(super) async fn get_object(&self, req: Req) -> S3Result {
        let part = part_read(&req)?;
        if let Some(r) = self.conditional(&req).await? {
            return Ok(r);
        }
        let range = req.header("range").and_then(parse_range);
        let obj = self.object(req.bucket(), req.key())?;
        let got: GetResult = match part {
            Some(n) => self.core(obj.get_part(n)).await?,
            None => self.core(obj.get(range)).await?,
        };
        let length = match got.range {
            Some((a, z)) => z - a + 1,
            None => got.meta.size,
        };
        let body = self
            .bridge
            .response_body(got.body, Some(length))
            .map_err(BoxError::from)
            .boxed_unsync();
        let mut r = Response::new(body);
        object_headers(&mut r, &got.meta, length);
        if part.is_some() {
            parts_count(&mut r, &got.meta);
        }
        if let Some(range) = got.range {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            content_range(&mut r, range, got.meta.size);
        }
        apply_overrides(&mut r, &req.route.query)?;
        Ok(r)
    }

    pub(super) async fn head_object(&self, req: Req) -> S3Result {
        let part = part_read(&req)?;
        if let Some(r) = self.conditional(&req).await? {
            return Ok(r);
        }
        let meta = self.stat(req.bucket(), req.key()).await?;
        let mut r = status_response(StatusCode::OK);
        let range = match part {
            None => req.header("range").and_then(parse_range),
            Some(n) => {
                parts_count(&mut r, &meta);
                match meta.part_range(n) {
                    None => return Err(S3Error::new(S3ErrorCode::InvalidPartNumber)),
                    // Part 1 of a single-part object: all of it.
                    Some(_) if meta.parts.is_empty() => None,
                    Some(p) => p.map(|(a, z)| ByteRange::FromTo(a, z)),
                }
            }
        };
        match range {
            None => object_headers(&mut r, &meta, meta.size),
            Some(range) => {
                let (a, z) = range
                    .resolve(meta.size)
                    .ok_or_else(|| S3Error::invalid_range(meta.size))?;
                object_headers(&mut r, &meta, z - a + 1);
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                content_range(&mut r, (a, z), meta.size);
            }
        }
        apply_overrides(&mut r, &req.route.query)?;
        Ok(r)
    }

    pub(super) async fn delete_object(&self, req: Req) -> S3Result {
        self.core(self.object(req.bucket(), req.key())?.delete())
            .await?;
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    pub(super) async fn delete_objects(&self, req: Req) -> S3Result {
        let bucket = req.bucket().to_string();
        let body = req.collect(xml::MAX_DELETE_BODY).await?;
        let del = xml::parse_delete(&body)?;
        let results = self
            .core(self.gateway.delete_objects(&bucket, &del.keys))
            .await?;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, r) in results {
            match r {
                Ok(()) => deleted.push(key),
                Err(e) => errors.push((key, to_s3(&e))),
            }
        }
        Ok(xml_ok(xml::delete_result(del.quiet, &deleted, &errors)))
    }

    pub(super) async fn copy_object(&self, req: Req) -> S3Result {
        let source = req.header("x-amz-copy-source").unwrap_or_default();
        let (src_bucket, src_key) = parse_copy_source(source)?;
        let replace = replace_metadata(&req)?;
        if src_bucket == req.bucket() && src_key == req.key() && !replace {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        self.check_copy_source(&req, &src_bucket, &src_key).await?;
        let metadata = if replace {
            CopyMetadata::Replace(write_options(&req.parts.headers, None)?)
        } else {
            CopyMetadata::Copy
        };
        let src = self.object(&src_bucket, &src_key)?;
        let dst = self.object(req.bucket(), req.key())?;
        let meta = self.core(dst.copy_from(&src, metadata)).await?;
        Ok(xml_ok(xml::copy_result(
            false,
            &meta.etag,
            meta.last_modified,
        )))
    }
}
