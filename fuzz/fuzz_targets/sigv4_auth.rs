//! Fuzzes request authentication and routing: the input is split at NUL bytes into method,
//! raw path, raw query and header values (authorization, x-amz-date, date,
//! x-amz-content-sha256, host, content-md5, x-amz-copy-source). These go to
//! `Authenticator::verify` (SigV4 header/presigned, SigV2 header/presigned dispatch),
//! `router::route` and `router::parse_copy_source`. Never panics; a request verifies only
//! for the one configured access key; a routed key is at most 1024 bytes.
//!
//! Oracle: a SigV4 header-signed request over the fuzzed method/path/query/host verifies,
//! and the same request with one signature digit changed is refused with
//! SignatureDoesNotMatch.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use hugbucket_s3::S3ErrorCode;
use hugbucket_s3::auth::sigv4::{
    AuthRequest, canonical_request, parse_amz_date, signing_key, string_to_sign,
};
use hugbucket_s3::auth::{Authenticator, Credentials};
use hugbucket_s3::router::{MAX_KEY_LEN, RouterConfig, parse_copy_source, route};
use libfuzzer_sys::fuzz_target;

const AK: &str = "AKIDFUZZ";
const SK: &str = "fuzz/secret+key";
const HEADERS: [&str; 7] = [
    "authorization",
    "x-amz-date",
    "date",
    "x-amz-content-sha256",
    "host",
    "content-md5",
    "x-amz-copy-source",
];

fn hmac_hex(key: &[u8; 32], data: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    m.update(data.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == 0);
    let mut next = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let method = next();
    let path = next();
    let query = next();
    let mut headers = HeaderMap::new();
    for name in HEADERS {
        let v = next();
        if v.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    let mut creds = Credentials::new();
    creds.insert(AK, SK);
    let auth = Authenticator::new(creds);
    let now = parse_amz_date("20240229T120000Z").expect("valid date");
    let req = AuthRequest {
        method: &method,
        raw_path: &path,
        raw_query: &query,
        headers: &headers,
    };
    for vhost in [None, Some("bucket")] {
        // Far in the past and far in the future too: time arithmetic must not overflow.
        for t in [now, SystemTime::UNIX_EPOCH, now + Duration::from_secs(1 << 40)] {
            if let Ok(v) = auth.verify(&req, vhost, t) {
                assert_eq!(v.access_key, AK);
            }
        }
    }

    let cfg = RouterConfig {
        base_domains: vec!["s3.fuzz.test".into()],
    };
    if let Ok(m) = Method::from_bytes(method.as_bytes()) {
        if let Ok(r) = route(&cfg, &m, &path, &query, &headers) {
            assert!(r.key.as_ref().is_none_or(|k| k.len() <= MAX_KEY_LEN));
            assert!(r.bucket.as_ref().is_none_or(|b| !b.is_empty()));
        }
    }
    if let Some(src) = headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()) {
        if let Ok((b, k)) = parse_copy_source(src) {
            assert!(!b.is_empty() && !k.is_empty() && k.len() <= MAX_KEY_LEN);
        }
    }

    // Oracle: a correctly signed request verifies; a changed signature does not.
    let Ok(host) = HeaderValue::from_str(&next()) else {
        return;
    };
    if !path.starts_with('/') || method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return;
    }
    let amz_date = "20240229T120000Z";
    let mut h = HeaderMap::new();
    h.insert("host", host);
    h.insert("x-amz-date", HeaderValue::from_static(amz_date));
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    let signed = ["host", "x-amz-content-sha256", "x-amz-date"];
    let unsigned = AuthRequest {
        method: &method,
        raw_path: &path,
        raw_query: &query,
        headers: &h,
    };
    let Ok(creq) = canonical_request(&unsigned, &signed, "UNSIGNED-PAYLOAD", &[]) else {
        return;
    };
    let scope = "20240229/us-east-1/s3/aws4_request";
    let key = signing_key(SK, "20240229", "us-east-1", "s3");
    let sig = hmac_hex(&key, &string_to_sign(amz_date, scope, &creq));
    let header = |sig: &str| {
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={}, Signature={sig}",
            signed.join(";")
        ))
        .expect("ASCII header")
    };
    let mut good = h.clone();
    good.insert("authorization", header(&sig));
    let is_presign = query.split('&').any(|kv| {
        let k = kv.split('=').next().unwrap_or("");
        k == "X-Amz-Signature" || k == "X-Amz-Credential" || k == "Signature"
    });
    let r = auth.verify(
        &AuthRequest {
            headers: &good,
            ..unsigned
        },
        None,
        now,
    );
    if is_presign {
        // Two auth mechanisms at once are refused (or, for a lone `Signature`, ignored).
        return;
    }
    assert_eq!(r.expect("a correctly signed request verifies").access_key, AK);
    let mut wrong = sig.into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let mut bad = h.clone();
    bad.insert(
        "authorization",
        header(std::str::from_utf8(&wrong).expect("hex")),
    );
    let e = auth
        .verify(
            &AuthRequest {
                headers: &bad,
                ..unsigned
            },
            None,
            now,
        )
        .expect_err("a changed signature is refused");
    assert_eq!(e.code(), S3ErrorCode::SignatureDoesNotMatch);
});
