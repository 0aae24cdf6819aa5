//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads and ListParts.

use super::headers::{client_mtime, object_extra, parse_copy_range, write_condition};
use super::{Req, S3Result, Service, status_response, xml_ok};
use crate::error::{S3Error, S3ErrorCode};
use crate::router::parse_copy_source;
use crate::xml;
use http::{HeaderValue, StatusCode};

/// `uploadId` of a request (the router only routes here with one).
fn upload_id(req: &Req) -> Result<String, S3Error> {
    req.query("uploadId")
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| S3Error::new(S3ErrorCode::NoSuchUpload))
}

/// `partNumber` of a request (validated 1..=10000).
fn part_number(req: &Req) -> Result<u32, S3Error> {
    req.route.query.part_number()?.ok_or_else(|| {
        S3Error::with_message(S3ErrorCode::InvalidArgument, "partNumber is required")
    })
}

impl Service {
    pub(super) async fn create_multipart_upload(&self, req: Req) -> S3Result {
        let obj = self.object(req.bucket(), req.key())?;
        // Conditions belong to the Complete; the metadata is stored then.
        let extra = object_extra(&req.parts.headers)?;
        let opts = hugbucket_core::PutOptions {
            content_type: req.header("content-type").map(str::to_string),
            mtime_ms: client_mtime(&extra),
            extra,
            ..Default::default()
        };
        let id = self.core(obj.create_multipart(opts)).await?;
        Ok(xml_ok(xml::initiate_multipart(
            req.bucket(),
            req.key(),
            &id,
        )))
    }

    pub(super) async fn upload_part(&self, req: Req) -> S3Result {
        let obj = self.object(req.bucket(), req.key())?;
        let (id, n) = (upload_id(&req)?, part_number(&req)?);
        let size = req.declared_length;
        let part = self
            .core_with_body(req.body, |body| obj.upload_part(&id, n, body, size))
            .await?;
        let mut r = status_response(StatusCode::OK);
        if let Ok(v) = HeaderValue::from_str(&part.etag) {
            r.headers_mut().insert(http::header::ETAG, v);
        }
        Ok(r)
    }

    pub(super) async fn upload_part_copy(&self, req: Req) -> S3Result {
        let source = req.header("x-amz-copy-source").unwrap_or_default();
        let (src_bucket, src_key) = parse_copy_source(source)?;
        let range = req
            .header("x-amz-copy-source-range")
            .map(parse_copy_range)
            .transpose()?;
        let (id, n) = (upload_id(&req)?, part_number(&req)?);
        self.check_copy_source(&req, &src_bucket, &src_key).await?;
        let src = self.object(&src_bucket, &src_key)?;
        let obj = self.object(req.bucket(), req.key())?;
        let part = self.core(obj.upload_part_copy(&id, n, &src, range)).await?;
        Ok(xml_ok(xml::copy_result(
            true,
            &part.etag,
            part.last_modified,
        )))
    }

    pub(super) async fn complete_multipart_upload(&self, req: Req) -> S3Result {
        let obj = self.object(req.bucket(), req.key())?;
        let id = upload_id(&req)?;
        let condition = write_condition(&req.parts.headers)?;
        let host = req.header("host").unwrap_or("localhost").to_string();
        let body = req.collect(xml::MAX_COMPLETE_BODY).await?;
        let parts: Vec<(u32, String)> = xml::parse_complete_multipart(&body)?
            .into_iter()
            .map(|p| (p.part_number, p.etag))
            .collect();
        let meta = self
            .core(obj.complete_multipart(&id, &parts, condition))
            .await?;
        let (b, k) = (obj.bucket(), obj.key());
        let location = format!("http://{host}/{b}/{}", crate::xml::url_encode_key(k));
        Ok(xml_ok(xml::complete_multipart(&location, b, k, &meta.etag)))
    }

    pub(super) async fn abort_multipart_upload(&self, req: Req) -> S3Result {
        let obj = self.object(req.bucket(), req.key())?;
        let id = upload_id(&req)?;
        self.core(obj.abort_multipart(&id)).await?;
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    pub(super) async fn list_multipart_uploads(&self, req: Req) -> S3Result {
        let prefix = req.query("prefix").unwrap_or("").to_string();
        let max = req.route.query.max_keys("max-uploads")?;
        let uploads = self
            .core(self.gateway.list_multipart_uploads(req.bucket(), &prefix))
            .await?;
        let rows: Vec<xml::UploadEntry> = uploads
            .into_iter()
            .map(|u| xml::UploadEntry {
                key: u.key,
                upload_id: u.upload_id,
                initiated: u.initiated,
            })
            .collect();
        Ok(xml_ok(xml::list_multipart_uploads(
            req.bucket(),
            &prefix,
            max,
            &rows,
            &self.owner,
        )))
    }

    pub(super) async fn list_parts(&self, req: Req) -> S3Result {
        let obj = self.object(req.bucket(), req.key())?;
        let id = upload_id(&req)?;
        let max = req
            .route
            .query
            .int("max-parts")?
            .map_or(1000, |n| n.min(1000) as usize);
        let marker = req.route.query.int("part-number-marker")?.unwrap_or(0);
        let parts = self.core(obj.list_parts(&id)).await?;
        let rows: Vec<xml::PartEntry> = parts
            .into_iter()
            .filter(|p| u64::from(p.part_number) > marker)
            .map(|p| xml::PartEntry {
                part_number: p.part_number,
                etag: p.etag,
                size: p.size,
                last_modified: p.last_modified,
            })
            .collect();
        Ok(xml_ok(xml::list_parts(
            req.bucket(),
            req.key(),
            &id,
            max,
            &rows,
            &self.owner,
        )))
    }
}
