//! The protocol front door shared by every S3 request, before any core call: header
//! limits, routing, authentication (except the health probe), the body verification plan,
//! and the response decorations every answer carries (`x-amz-request-id`, `x-amz-id-2`,
//! XML error bodies).

use std::time::SystemTime;

use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};

use crate::auth::{AuthRequest, Authenticator, BodyPlan, Verified};
use crate::error::{S3Error, S3ErrorCode};
use crate::router::{Operation, RequestIds, Route, RouterConfig, check_header_limits, route};
use crate::runtime::{ResponseBody, empty, full};

/// Operations whose request body is object data (streamed to the core).
fn has_data_body(op: Operation) -> bool {
    matches!(op, Operation::PutObject | Operation::UploadPart)
}

/// Largest XML request body read into memory (CompleteMultipartUpload, Delete, ...).
pub const MAX_XML_BODY: u64 = crate::xml::MAX_COMPLETE_BODY as u64;

/// An admitted request: routed, authenticated, with its body plan.
#[derive(Debug)]
pub struct Admitted {
    /// Where it goes.
    pub route: Route,
    /// Who signed it (`None` only for the health probe).
    pub verified: Option<Verified>,
    /// How to read and verify its body.
    pub body: BodyPlan,
}

/// Protocol configuration and state shared by all requests of a core.
#[derive(Debug)]
pub struct Frontend {
    router: RouterConfig,
    auth: Authenticator,
    ids: RequestIds,
    host_id: String,
}

/// Request ids of one request.
#[derive(Debug, Clone)]
pub struct Ids {
    /// `x-amz-request-id`.
    pub request_id: String,
    /// `x-amz-id-2`.
    pub host_id: String,
}

impl Frontend {
    /// A front door with the given addressing and credentials.
    pub fn new(router: RouterConfig, auth: Authenticator) -> Self {
        Self {
            router,
            auth,
            ids: RequestIds::new(),
            host_id: String::new(),
        }
    }

    /// Fresh ids for a request.
    pub fn ids(&self) -> Ids {
        let (request_id, host_id) = self.ids.next();
        let host_id = if self.host_id.is_empty() {
            host_id
        } else {
            self.host_id.clone()
        };
        Ids {
            request_id,
            host_id,
        }
    }

    /// Checks limits, routes and authenticates a request head.
    pub fn admit(&self, parts: &Parts, now: SystemTime) -> Result<Admitted, S3Error> {
        check_header_limits(&parts.headers)?;
        let raw_path = parts.uri.path();
        let raw_query = parts.uri.query().unwrap_or("");
        let route = route(
            &self.router,
            &parts.method,
            raw_path,
            raw_query,
            &parts.headers,
        )?;
        if route.op.is_anonymous() {
            return Ok(Admitted {
                route,
                verified: None,
                body: BodyPlan::unchecked(0),
            });
        }
        let req = AuthRequest {
            method: parts.method.as_str(),
            raw_path,
            raw_query,
            headers: &parts.headers,
        };
        let vhost = route
            .virtual_host
            .then_some(route.bucket.as_deref())
            .flatten();
        let verified = self.auth.verify(&req, vhost, now)?;
        let max = if has_data_body(route.op) {
            crate::auth::payload::MAX_PUT_SIZE
        } else {
            MAX_XML_BODY
        };
        let body = BodyPlan::new(&parts.headers, &verified, max)?;
        if route.op == Operation::NotImplemented {
            return Err(S3Error::new(S3ErrorCode::NotImplemented));
        }
        Ok(Admitted {
            route,
            verified: Some(verified),
            body,
        })
    }
}

/// Reads a whole (small) verified request body, e.g. an XML document, refusing more than
/// `limit` bytes.
pub async fn collect_body<S>(mut body: S, limit: usize) -> Result<bytes::Bytes, S3Error>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, S3Error>> + Unpin,
{
    use futures_util::StreamExt;
    let mut out = bytes::BytesMut::new();
    while let Some(piece) = body.next().await {
        let piece = piece?;
        if out.len() + piece.len() > limit {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The request body is larger than allowed.",
            ));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out.freeze())
}

/// Adds the headers every response carries.
pub fn decorate(resp: &mut Response<ResponseBody>, ids: &Ids) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        h.insert("x-amz-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.host_id) {
        h.insert("x-amz-id-2", v);
    }
    h.insert(http::header::SERVER, HeaderValue::from_static("HugBucket"));
}

/// The S3 error response (no body for HEAD requests, as S3).
pub fn error_response(
    err: &S3Error,
    method: &Method,
    resource: &str,
    ids: &Ids,
) -> Response<ResponseBody> {
    let err = if err.to_xml("", "").contains("<Resource>") {
        err.clone()
    } else {
        err.clone().resource(resource)
    };
    let body = if method == Method::HEAD {
        empty()
    } else {
        full(err.to_xml(&ids.request_id, &ids.host_id))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = err.status();
    if method != Method::HEAD {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
    }
    for (n, v) in err.headers() {
        resp.headers_mut().insert(n.clone(), v.clone());
    }
    decorate(&mut resp, ids);
    resp
}

/// An XML success response.
pub fn xml_response(status: StatusCode, xml: String, ids: &Ids) -> Response<ResponseBody> {
    let mut resp = Response::new(full(xml));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    decorate(&mut resp, ids);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;
    use crate::auth::sigv4::{EMPTY_SHA256, format_amz_date, hmac, signing_key};
    use http::Request;
    use http_body_util::BodyExt;
    use sha2::{Digest, Sha256};

    fn frontend() -> Frontend {
        let mut c = Credentials::new();
        c.insert("AK1", "SK1").insert("AK2", "SK2");
        Frontend::new(
            RouterConfig {
                base_domains: vec!["localhost".into()],
            },
            Authenticator::new(c),
        )
    }

    /// Signs a request the way SDKs do (header auth, empty payload hash).
    fn signed(method: &str, uri: &str, host: &str, ak: &str, sk: &str, now: SystemTime) -> Parts {
        let date = format_amz_date(now);
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host)
            .header("x-amz-date", &date)
            .header("x-amz-content-sha256", EMPTY_SHA256)
            .body(())
            .unwrap();
        let (path, query) = (
            req.uri().path().to_string(),
            req.uri().query().unwrap_or("").to_string(),
        );
        let ar = AuthRequest {
            method,
            raw_path: &path,
            raw_query: &query,
            headers: req.headers(),
        };
        let signed_h = ["host", "x-amz-content-sha256", "x-amz-date"];
        let creq =
            crate::auth::sigv4::canonical_request(&ar, &signed_h, EMPTY_SHA256, &[]).unwrap();
        let scope = format!("{}/us-east-1/s3/aws4_request", &date[..8]);
        let sts = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex::encode(Sha256::digest(creq.as_bytes()))
        );
        let sig = hex::encode(hmac(
            &signing_key(sk, &date[..8], "us-east-1", "s3"),
            sts.as_bytes(),
        ));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={}, Signature={sig}",
            signed_h.join(";")
        );
        req.headers_mut()
            .insert("authorization", HeaderValue::from_str(&auth).unwrap());
        req.into_parts().0
    }

    #[test]
    fn admits_signed_requests_from_several_keys() {
        let f = frontend();
        let now = SystemTime::now();
        for (ak, sk) in [("AK1", "SK1"), ("AK2", "SK2")] {
            let p = signed(
                "GET",
                "/b/a%20key+%25/%C3%A9?list-type=2",
                "127.0.0.1:9000",
                ak,
                sk,
                now,
            );
            let a = f.admit(&p, now).unwrap();
            assert_eq!(a.route.op, Operation::GetObject);
            assert_eq!(a.route.key.as_deref(), Some("a key+%/é"));
            assert_eq!(a.verified.unwrap().access_key, ak);
        }
        let p = signed("GET", "/b/k", "127.0.0.1", "AK1", "SK2", now);
        assert_eq!(
            f.admit(&p, now).unwrap_err().code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
        let p = signed("GET", "/k", "bucket.localhost", "AK1", "SK1", now);
        let a = f.admit(&p, now).unwrap();
        assert_eq!(
            (a.route.bucket.as_deref(), a.route.key.as_deref()),
            (Some("bucket"), Some("k"))
        );
        let p = signed("GET", "/b?tagging", "127.0.0.1", "AK1", "SK1", now);
        assert_eq!(
            f.admit(&p, now).unwrap_err().code(),
            S3ErrorCode::NotImplemented
        );
    }

    #[test]
    fn health_needs_no_auth_but_everything_else_does() {
        let f = frontend();
        let (p, _) = Request::get("/health")
            .header("host", "x")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            f.admit(&p, SystemTime::now()).unwrap().route.op,
            Operation::Health
        );
        let (p, _) = Request::get("/b/k")
            .header("host", "x")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            f.admit(&p, SystemTime::now()).unwrap_err().code(),
            S3ErrorCode::AccessDenied
        );
    }

    #[test]
    fn collect_body_is_bounded() {
        let ok = futures_util::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"ab")),
            Ok(bytes::Bytes::from_static(b"cd")),
        ]);
        assert_eq!(
            futures_lite::future::block_on(collect_body(ok, 4)).unwrap(),
            "abcd"
        );
        let big = futures_util::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"abc")),
            Ok(bytes::Bytes::from_static(b"de")),
        ]);
        assert_eq!(
            futures_lite::future::block_on(collect_body(big, 4))
                .unwrap_err()
                .code(),
            S3ErrorCode::MalformedXML
        );
        let err = futures_util::stream::iter(vec![Err(S3Error::new(S3ErrorCode::BadDigest))]);
        assert_eq!(
            futures_lite::future::block_on(collect_body(err, 4))
                .unwrap_err()
                .code(),
            S3ErrorCode::BadDigest
        );
    }

    #[test]
    fn error_responses_carry_ids_and_xml() {
        let f = frontend();
        let ids = f.ids();
        let r = error_response(&S3Error::invalid_range(5), &Method::GET, "/b/k", &ids);
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()["content-range"], "bytes */5");
        assert_eq!(r.headers()["x-amz-request-id"], ids.request_id.as_str());
        let body = futures_lite::future::block_on(r.into_body().collect())
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("<Code>InvalidRange</Code>")
                && text.contains("<Resource>/b/k</Resource>")
        );
        assert!(text.contains(&format!("<RequestId>{}</RequestId>", ids.request_id)));
        let r = error_response(
            &S3Error::new(S3ErrorCode::NoSuchKey),
            &Method::HEAD,
            "/b/k",
            &ids,
        );
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = futures_lite::future::block_on(r.into_body().collect())
            .unwrap()
            .to_bytes();
        assert!(body.is_empty());
    }
}
