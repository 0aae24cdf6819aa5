//! AWS Signature Version 2: presigned URLs (`AWSAccessKeyId`, `Expires`, `Signature`) and
//! the `Authorization: AWS key:signature` header (used by older s3cmd configurations).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use http::HeaderMap;

use super::sigv4::{AuthRequest, Credentials, Verified, ct_eq, header_str, parse_query, skew_ok};
use crate::error::{S3Error, S3ErrorCode};

/// Sub-resources that are part of the SigV2 canonical resource.
const SUBRESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

fn header<'h>(h: &'h HeaderMap, n: &str) -> &'h str {
    header_str(h, n).unwrap_or("")
}

/// The SigV2 string to sign. `vhost_bucket` is the bucket named by the Host header, if any.
pub fn string_to_sign(
    req: &AuthRequest<'_>,
    date_or_expires: &str,
    vhost_bucket: Option<&str>,
) -> String {
    let mut amz: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers {
        let n = name.as_str();
        if n.starts_with("x-amz-") && n != "x-amz-date"
            || (n == "x-amz-date" && date_or_expires.is_empty())
        {
            amz.entry(n.to_string())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).trim().to_string());
        }
    }
    let mut s = format!(
        "{}\n{}\n{}\n{}\n",
        req.method,
        header(req.headers, "content-md5"),
        header(req.headers, "content-type"),
        date_or_expires
    );
    for (k, v) in amz {
        s.push_str(&k);
        s.push(':');
        s.push_str(&v.join(","));
        s.push('\n');
    }
    if let Some(b) = vhost_bucket {
        s.push('/');
        s.push_str(b);
    }
    s.push_str(req.raw_path);
    let mut subs: Vec<(String, String)> = parse_query(req.raw_query)
        .into_iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .collect();
    subs.sort();
    for (i, (k, v)) in subs.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        if !v.is_empty()
            || req
                .raw_query
                .split('&')
                .any(|p| p.starts_with(&format!("{k}=")))
        {
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

/// Base64 HMAC-SHA1 signature.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(string_to_sign.as_bytes());
    B64.encode(m.finalize().into_bytes())
}

/// Whether `sig` signs the request. A path-style request addressing only a bucket
/// (`/bucket`) is also accepted signed as `/bucket/`: botocore signs bucket operations
/// that way while sending the path without the slash, and S3 accepts it.
fn signature_matches(
    secret: &str,
    req: &AuthRequest<'_>,
    date_or_expires: &str,
    vhost_bucket: Option<&str>,
    sig: &str,
) -> bool {
    if ct_eq(
        &sign(secret, &string_to_sign(req, date_or_expires, vhost_bucket)),
        sig,
    ) {
        return true;
    }
    let bucket_only = vhost_bucket.is_none()
        && req
            .raw_path
            .strip_prefix('/')
            .is_some_and(|b| !b.is_empty() && !b.contains('/'));
    if !bucket_only {
        return false;
    }
    let slashed = format!("{}/", req.raw_path);
    let alt = AuthRequest {
        raw_path: &slashed,
        ..*req
    };
    ct_eq(
        &sign(secret, &string_to_sign(&alt, date_or_expires, vhost_bucket)),
        sig,
    )
}

/// Verifies a SigV2 presigned URL.
pub fn verify_presigned(
    creds: &Credentials,
    req: &AuthRequest<'_>,
    vhost_bucket: Option<&str>,
    now: SystemTime,
) -> Result<Verified, S3Error> {
    let q = parse_query(req.raw_query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let bad =
        |m: &'static str| S3Error::with_message(S3ErrorCode::AuthorizationQueryParametersError, m);
    let ak = get("AWSAccessKeyId").ok_or_else(|| bad("missing AWSAccessKeyId"))?;
    let expires = get("Expires").ok_or_else(|| bad("missing Expires"))?;
    let sig = get("Signature").ok_or_else(|| bad("missing Signature"))?;
    let exp: u64 = expires
        .parse()
        .map_err(|_| bad("Expires must be a number"))?;
    let secret = creds.known_secret(ak)?;
    // An `Expires` beyond what `SystemTime` can hold is simply far in the future (adding
    // it unchecked would panic).
    let expires_at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(exp));
    if expires_at.is_some_and(|t| now > t) {
        return Err(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "Request has expired",
        ));
    }
    if !signature_matches(secret, req, expires, vhost_bucket, sig) {
        return Err(S3Error::new(S3ErrorCode::SignatureDoesNotMatch));
    }
    Ok(Verified::unsigned_payload(ak))
}

/// Verifies `Authorization: AWS access:signature`.
pub fn verify_header(
    creds: &Credentials,
    req: &AuthRequest<'_>,
    auth: &str,
    vhost_bucket: Option<&str>,
    now: SystemTime,
) -> Result<Verified, S3Error> {
    let rest = auth.strip_prefix("AWS ").ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::AuthorizationHeaderMalformed,
            "unsupported algorithm",
        )
    })?;
    let (ak, sig) = rest.trim().rsplit_once(':').ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::AuthorizationHeaderMalformed,
            "expected AWS key:signature",
        )
    })?;
    let secret = creds.known_secret(ak)?;
    let (date_field, date) = match header_str(req.headers, "x-amz-date") {
        Some(d) => ("", d),
        None => {
            let d = header(req.headers, "date");
            (d, d)
        }
    };
    // s3cmd writes RFC 2822 dates with a numeric zone ("... 03:23:50 +0000").
    let t = crate::dates::parse_http_date(date).ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header",
        )
    })?;
    if !skew_ok(t, now) {
        return Err(S3Error::new(S3ErrorCode::RequestTimeTooSkewed));
    }
    if !signature_matches(secret, req, date_field, vhost_bucket, sig) {
        return Err(S3Error::new(S3ErrorCode::SignatureDoesNotMatch));
    }
    Ok(Verified::unsigned_payload(ak))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The classic query-string authentication example of the S3 developer guide.
    #[test]
    fn aws_presigned_example() {
        let mut c = Credentials::new();
        c.insert(
            "44CF9590006BF252F707",
            "OtxrzxIsfpFjA7SwPzILwy8Bw21TLhquhboDYROV",
        );
        let h = HeaderMap::new();
        let q = "AWSAccessKeyId=44CF9590006BF252F707&Expires=1141889120&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D";
        let req = AuthRequest {
            method: "GET",
            raw_path: "/quotes/nelson",
            raw_query: q,
            headers: &h,
        };
        assert_eq!(
            string_to_sign(&req, "1141889120", None),
            "GET\n\n\n1141889120\n/quotes/nelson"
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_141_889_000);
        verify_presigned(&c, &req, None, now).unwrap();
        // Virtual-hosted form of the same request.
        let req_v = AuthRequest {
            raw_path: "/nelson",
            ..req
        };
        verify_presigned(&c, &req_v, Some("quotes"), now).unwrap();
        let late = SystemTime::UNIX_EPOCH + Duration::from_secs(1_141_889_121);
        assert_eq!(
            verify_presigned(&c, &req, None, late).unwrap_err().code(),
            S3ErrorCode::AccessDenied
        );
        let req2 = AuthRequest {
            raw_path: "/quotes/nelsoN",
            ..req
        };
        assert_eq!(
            verify_presigned(&c, &req2, None, now).unwrap_err().code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
    }

    #[test]
    fn header_v2_with_subresources_and_amz_headers() {
        let mut c = Credentials::new();
        c.insert("AK", "SK");
        let mut h = HeaderMap::new();
        h.insert(
            "date",
            HeaderValue::from_static("Tue, 27 Mar 2007 19:36:42 GMT"),
        );
        h.insert("x-amz-meta-b", HeaderValue::from_static(" 2 "));
        h.insert("x-amz-meta-a", HeaderValue::from_static("1"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        let req = AuthRequest {
            method: "PUT",
            raw_path: "/b/k%20x",
            raw_query: "uploadId=U&partNumber=3&foo=1",
            headers: &h,
        };
        let sts = string_to_sign(&req, "Tue, 27 Mar 2007 19:36:42 GMT", None);
        assert_eq!(
            sts,
            "PUT\n\ntext/plain\nTue, 27 Mar 2007 19:36:42 GMT\nx-amz-meta-a:1\nx-amz-meta-b:2\n/b/k%20x?partNumber=3&uploadId=U"
        );
        let auth = format!("AWS AK:{}", sign("SK", &sts));
        let now = crate::dates::parse_http_date("Tue, 27 Mar 2007 19:40:00 GMT").unwrap();
        verify_header(&c, &req, &auth, None, now).unwrap();
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            verify_header(&c, &req, &auth, None, later)
                .unwrap_err()
                .code(),
            S3ErrorCode::RequestTimeTooSkewed
        );
    }
    #[test]
    fn bucket_paths_signed_with_a_slash_and_numeric_zone_dates() {
        let mut c = Credentials::new();
        c.insert("AK", "SK");
        let mut h = HeaderMap::new();
        // s3cmd's x-amz-date form.
        h.insert(
            "x-amz-date",
            HeaderValue::from_static("Tue, 27 Mar 2007 19:36:42 +0000"),
        );
        // botocore signs `/bucket/` for a bucket request sent as `/bucket`.
        let slashed = AuthRequest {
            method: "GET",
            raw_path: "/bucket/",
            raw_query: "list-type=2",
            headers: &h,
        };
        let auth = format!("AWS AK:{}", sign("SK", &string_to_sign(&slashed, "", None)));
        let now = crate::dates::parse_http_date("Tue, 27 Mar 2007 19:40:00 GMT").unwrap();
        let sent = AuthRequest {
            raw_path: "/bucket",
            ..slashed
        };
        verify_header(&c, &sent, &auth, None, now).unwrap();
        verify_header(&c, &slashed, &auth, None, now).unwrap();
        // Only bucket-level paths get the alternative.
        let object = AuthRequest {
            raw_path: "/bucket/k",
            ..slashed
        };
        let auth = format!("AWS AK:{}", sign("SK", &string_to_sign(&object, "", None)));
        let other = AuthRequest {
            raw_path: "/bucket/k/",
            ..slashed
        };
        assert_eq!(
            verify_header(&c, &other, &auth, None, now)
                .unwrap_err()
                .code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
    }

    /// Regression (found by tests/python/test_security.py; fuzz/seeds/sigv4_auth covers it):
    /// an `Expires` past what `SystemTime` can represent panicked the request's executor.
    #[test]
    fn huge_expires_does_not_panic() {
        let mut c = Credentials::new();
        c.insert("AK", "SK");
        let h = HeaderMap::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for exp in [
            "18446744073709551615",
            "9223372036854775807",
            "9223372036854775808",
        ] {
            let unsigned = AuthRequest {
                method: "GET",
                raw_path: "/b/k",
                raw_query: "",
                headers: &h,
            };
            let sig = sign("SK", &string_to_sign(&unsigned, exp, None));
            let sig: String =
                percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            let q = format!("AWSAccessKeyId=AK&Expires={exp}&Signature={sig}");
            let req = AuthRequest {
                raw_query: &q,
                ..unsigned
            };
            // Far in the future: not expired, and the signature is checked as usual.
            verify_presigned(&c, &req, None, now).unwrap();
            let bad = q.replace("Expires=", "Expires=1");
            let req = AuthRequest {
                raw_query: &bad,
                ..unsigned
            };
            assert!(verify_presigned(&c, &req, None, now).is_err());
        }
    }
}
