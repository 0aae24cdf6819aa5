//! Bucket operations and listings: ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
//! GetBucketLocation, GetBucketVersioning, ListObjects (V1) and ListObjectsV2.

use http::{HeaderValue, StatusCode};
use hugbucket_core::ListRequest;

use super::{Req, S3Result, Service, status_response, xml_ok};
use crate::error::{S3Error, S3ErrorCode};
use crate::xml;

/// ListBuckets continuation tokens: the hex of the last bucket name returned.
fn bucket_token_encode(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn bucket_token_decode(token: &str) -> Option<String> {
    if token.len() % 2 != 0 || token.len() > 256 {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

impl Service {
    /// ListBuckets, with S3's optional paging: `prefix`, `max-buckets` (1..=10000) and
    /// `continuation-token` (the hex of the last name of the previous page).
    pub(super) async fn list_buckets(&self, req: Req) -> S3Result {
        let q = &req.route.query;
        let prefix = q
            .get("prefix")
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let max = match q.int("max-buckets")? {
            None => usize::MAX,
            Some(n @ 1..=10_000) => n as usize,
            Some(_) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "max-buckets must be an integer between 1 and 10000",
                ));
            }
        };
        let after = match q.get("continuation-token").filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(bucket_token_decode(t).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "The continuation token provided is incorrect",
                )
            })?),
        };
        let buckets = self.core(self.gateway.list_buckets()).await?;
        let mut rows: Vec<_> = buckets
            .into_iter()
            .filter(|b| prefix.as_deref().is_none_or(|p| b.name.starts_with(p)))
            .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
            .map(|b| (b.name, b.created))
            .collect();
        let next = (rows.len() > max).then(|| {
            rows.truncate(max);
            bucket_token_encode(&rows[max - 1].0)
        });
        Ok(xml_ok(xml::list_buckets_page(
            &self.owner,
            &rows,
            next.as_deref(),
            prefix.as_deref(),
        )))
    }

    pub(super) async fn create_bucket(&self, req: Req) -> S3Result {
        let bucket = req.bucket().to_string();
        let body = req.collect(xml::MAX_CREATE_BUCKET_BODY).await?;
        // The location constraint is accepted and ignored: there is one region.
        xml::parse_create_bucket(&body)?;
        match self.core(self.gateway.create_bucket(&bucket)).await {
            // us-east-1 S3 answers 200 to creating a bucket you already own.
            Err(e)
                if e.code() == S3ErrorCode::BucketAlreadyOwnedByYou
                    && self.region == "us-east-1" => {}
            r => r?,
        }
        let mut r = status_response(StatusCode::OK);
        if let Ok(v) = HeaderValue::from_str(&format!("/{bucket}")) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        Ok(r)
    }

    pub(super) async fn delete_bucket(&self, req: Req) -> S3Result {
        self.core(self.gateway.delete_bucket(req.bucket())).await?;
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    async fn existing_bucket(&self, req: &Req) -> Result<(), S3Error> {
        self.core(self.gateway.head_bucket(req.bucket()))
            .await
            .map(drop)
    }

    pub(super) async fn head_bucket(&self, req: Req) -> S3Result {
        self.existing_bucket(&req).await?;
        let mut r = status_response(StatusCode::OK);
        if let Ok(v) = HeaderValue::from_str(&self.region) {
            r.headers_mut().insert("x-amz-bucket-region", v);
        }
        Ok(r)
    }

    pub(super) async fn get_bucket_location(&self, req: Req) -> S3Result {
        self.existing_bucket(&req).await?;
        Ok(xml_ok(xml::location_constraint(&self.region)))
    }

    pub(super) async fn get_bucket_versioning(&self, req: Req) -> S3Result {
        self.existing_bucket(&req).await?;
        Ok(xml_ok(xml::versioning_unversioned()))
    }

    /// ListObjectsV2 (`v2`) or ListObjects (V1, `marker`).
    pub(super) async fn list_objects(&self, req: Req, v2: bool) -> S3Result {
        let q = &req.route.query;
        let max_keys = q.max_keys("max-keys")?;
        let encoding_url = q.encoding_url()?;
        let prefix = q.get("prefix").unwrap_or("").to_string();
        let delimiter = q.get("delimiter").map(str::to_string);
        let (marker, token) = if v2 {
            (
                q.get("start-after").map(str::to_string),
                q.get("continuation-token").map(str::to_string),
            )
        } else {
            (q.get("marker").map(str::to_string), None)
        };
        // An empty token is no token, as S3 treats it.
        let token = token.filter(|t| !t.is_empty());
        let echo = xml::ListEcho {
            bucket: req.bucket().to_string(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone().filter(|d| !d.is_empty()),
            max_keys,
            encoding_url,
            marker: marker.clone().filter(|m| !m.is_empty()),
            continuation_token: token.clone(),
            fetch_owner: q.get("fetch-owner") == Some("true"),
        };
        let list = ListRequest {
            prefix,
            delimiter,
            start_after: marker.filter(|m| !m.is_empty()),
            continuation_token: token,
            max_keys,
        };
        let page = self
            .core(self.gateway.list_objects(req.bucket(), list))
            .await?;
        let next = if v2 {
            page.next_continuation_token.clone()
        } else {
            // V1 NextMarker: the last key or common prefix of the page.
            let last_key = page.objects.last().map(|o| o.key.clone());
            let last_prefix = page.common_prefixes.last().cloned();
            last_key.max(last_prefix)
        };
        let out = xml::ListPage {
            objects: page
                .objects
                .into_iter()
                .map(|o| xml::ObjectEntry {
                    key: o.key,
                    last_modified: o.last_modified,
                    etag: o.etag,
                    size: o.size,
                })
                .collect(),
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next,
        };
        let doc = if v2 {
            xml::list_objects_v2(&echo, &out, &self.owner)
        } else {
            xml::list_objects_v1(&echo, &out, &self.owner)
        };
        Ok(xml_ok(doc))
    }
}
