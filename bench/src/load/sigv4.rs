//! The client-side AWS Signature Version 4 signer (header authentication) used by the load
//! generator and the `s3_gateway` bench. The canonical request, string to sign and signing
//! key come from the gateway's own implementation (`hugbucket_s3::auth::sigv4`), so the
//! client and the verifier share one definition of each step.

use std::time::SystemTime;

use hugbucket_s3::auth::sigv4 as v4;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

/// `x-amz-content-sha256` for a body that is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A header value is not valid in HTTP.
    #[error("invalid header value for {0}")]
    Header(&'static str),
    /// The canonical request could not be built.
    #[error("canonical request: {0}")]
    Canonical(String),
}

/// Signs requests with one access key pair for service `s3`.
#[derive(Clone)]
pub struct SigV4Signer {
    access_key: String,
    secret_key: String,
    region: String,
}

impl std::fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl SigV4Signer {
    /// A signer for region `us-east-1`.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: "us-east-1".into(),
        }
    }

    /// Signs with another region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Signs a request at time `now`: sets `x-amz-date`, `x-amz-content-sha256`
    /// (`payload_sha256`: hex SHA-256 of the body or [`UNSIGNED_PAYLOAD`]) and
    /// `authorization` in `headers`, signing every header present (which must include
    /// `host`). `raw_path` and `raw_query` are exactly as sent (percent-encoded, no `?`).
    pub fn sign(
        &self,
        method: &str,
        raw_path: &str,
        raw_query: &str,
        headers: &mut HeaderMap,
        payload_sha256: &str,
        now: SystemTime,
    ) -> Result<(), SignError> {
        let amz_date = v4::format_amz_date(now);
        let date = &amz_date[..8];
        headers.insert(
            HeaderName::from_static("x-amz-date"),
            HeaderValue::from_str(&amz_date).map_err(|_| SignError::Header("x-amz-date"))?,
        );
        headers.insert(
            HeaderName::from_static("x-amz-content-sha256"),
            HeaderValue::from_str(payload_sha256)
                .map_err(|_| SignError::Header("x-amz-content-sha256"))?,
        );
        headers.remove(hyper::header::AUTHORIZATION);
        let mut signed: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        signed.sort_unstable();
        signed.dedup();
        let req = v4::AuthRequest {
            method,
            raw_path,
            raw_query,
            headers,
        };
        let canonical = v4::canonical_request(&req, &signed, payload_sha256, &[])
            .map_err(|e| SignError::Canonical(e.to_string()))?;
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = v4::string_to_sign(&amz_date, &scope, &canonical);
        let key = v4::signing_key(&self.secret_key, date, &self.region, "s3");
        let signature = v4::signature(&key, &to_sign);
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={},Signature={signature}",
            self.access_key,
            signed.join(";")
        );
        let auth = HeaderValue::from_str(&auth).map_err(|_| SignError::Header("authorization"))?;
        headers.insert(hyper::header::AUTHORIZATION, auth);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hugbucket_s3::auth::sigv4::{
        AuthRequest, Credentials, EMPTY_SHA256, PayloadMode, SigV4Verifier,
    };

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn t0() -> SystemTime {
        v4::parse_amz_date("20130524T000000Z").unwrap()
    }

    /// AWS's documented "GET Object" example (Range bytes=0-9), signature included.
    #[test]
    fn aws_get_object_example() {
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        h.insert("range", HeaderValue::from_static("bytes=0-9"));
        SigV4Signer::new(AK, SECRET)
            .sign("GET", "/test.txt", "", &mut h, EMPTY_SHA256, t0())
            .unwrap();
        assert_eq!(
            h["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(h["x-amz-date"], "20130524T000000Z");
    }

    /// The gateway's verifier accepts what the signer produces (query, odd key,
    /// unsigned payload) and refuses it once anything signed changes.
    #[test]
    fn verifier_accepts_signed_requests() {
        let mut creds = Credentials::new();
        creds.insert(AK, SECRET);
        let verifier = SigV4Verifier::new(&creds);
        let now = SystemTime::now();
        let path = "/bucket/bench/obj%20a%2Bb";
        let query = "partNumber=3&uploadId=abc%2Fdef";
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        let signer = SigV4Signer::new(AK, SECRET);
        signer
            .sign("PUT", path, query, &mut h, UNSIGNED_PAYLOAD, now)
            .unwrap();
        // Signing twice replaces, not duplicates, the auth headers.
        signer
            .sign("PUT", path, query, &mut h, UNSIGNED_PAYLOAD, now)
            .unwrap();
        assert_eq!(h.get_all("authorization").iter().count(), 1);
        let auth = h["authorization"].to_str().unwrap().to_string();
        let req = AuthRequest {
            method: "PUT",
            raw_path: path,
            raw_query: query,
            headers: &h,
        };
        let ok = verifier.verify_header(&req, &auth, now).unwrap();
        assert_eq!(ok.access_key, AK);
        assert_eq!(ok.payload, PayloadMode::Unsigned);
        for (m, p, q) in [
            ("GET", path, query),
            ("PUT", "/bucket/bench/obj%20a%2Bc", query),
            ("PUT", path, "partNumber=4&uploadId=abc%2Fdef"),
        ] {
            let req = AuthRequest {
                method: m,
                raw_path: p,
                raw_query: q,
                headers: &h,
            };
            assert!(
                verifier.verify_header(&req, &auth, now).is_err(),
                "{m} {p}?{q}"
            );
        }
        let wrong = SigV4Signer::new(AK, "not-the-secret");
        let mut h2 = HeaderMap::new();
        h2.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        wrong
            .sign("PUT", path, query, &mut h2, UNSIGNED_PAYLOAD, now)
            .unwrap();
        let auth2 = h2["authorization"].to_str().unwrap().to_string();
        let req = AuthRequest {
            method: "PUT",
            raw_path: path,
            raw_query: query,
            headers: &h2,
        };
        assert!(verifier.verify_header(&req, &auth2, now).is_err());
    }
}
