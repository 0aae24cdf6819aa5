//! Request authentication: SigV4 (header and presigned), SigV2 (presigned and header),
//! and verification of the request body against what was signed.

pub mod checksum;
pub mod chunked;
pub mod payload;
pub mod sigv2;
pub mod sigv4;

use std::time::SystemTime;

pub use checksum::ChecksumAlgorithm;
pub use payload::{BodyPlan, VerifyingBody};
pub use sigv4::{AuthRequest, ChunkSigner, Credentials, PayloadMode, Verified};

use crate::error::{S3Error, S3ErrorCode};

/// Checks signatures against a set of credential pairs.
#[derive(Debug, Clone)]
pub struct Authenticator {
    creds: Credentials,
}

impl Authenticator {
    /// An authenticator over `creds` (several access keys may be configured).
    pub fn new(creds: Credentials) -> Self {
        Self { creds }
    }

    /// The configured credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// Authenticates a request. `vhost_bucket` is the bucket named by the Host header
    /// (virtual-hosted-style), needed by SigV2. Anonymous requests are refused.
    pub fn verify(
        &self,
        req: &AuthRequest<'_>,
        vhost_bucket: Option<&str>,
        now: SystemTime,
    ) -> Result<Verified, S3Error> {
        let auth = req
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str());
        let q = req.raw_query;
        let has_param = |name: &str| q.split('&').any(|kv| kv.split('=').next() == Some(name));
        let v4_query = has_param("X-Amz-Signature") || has_param("X-Amz-Credential");
        let v2_query = has_param("Signature") && has_param("AWSAccessKeyId");
        match auth {
            Some(Ok(a)) => {
                if v4_query || v2_query {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
                    ));
                }
                if a.starts_with("AWS4-HMAC-SHA256") {
                    sigv4::SigV4Verifier::new(&self.creds).verify_header(req, a, now)
                } else if a.starts_with("AWS ") {
                    sigv2::verify_header(&self.creds, req, a, vhost_bucket, now)
                } else {
                    Err(S3Error::with_message(
                        S3ErrorCode::AuthorizationHeaderMalformed,
                        "unsupported authorization type",
                    ))
                }
            }
            Some(Err(_)) => Err(S3Error::new(S3ErrorCode::AuthorizationHeaderMalformed)),
            None if v4_query => sigv4::SigV4Verifier::new(&self.creds).verify_presigned(req, now),
            None if v2_query => sigv2::verify_presigned(&self.creds, req, vhost_bucket, now),
            None => Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Anonymous access is not allowed",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn dispatch() {
        let mut c = Credentials::new();
        c.insert("AK", "SK");
        let a = Authenticator::new(c);
        let h = HeaderMap::new();
        let req = AuthRequest {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: &h,
        };
        assert_eq!(
            a.verify(&req, None, SystemTime::now()).unwrap_err().code(),
            S3ErrorCode::AccessDenied
        );
        let mut h2 = HeaderMap::new();
        h2.insert("authorization", HeaderValue::from_static("Bearer x"));
        let req = AuthRequest {
            headers: &h2,
            ..req
        };
        assert_eq!(
            a.verify(&req, None, SystemTime::now()).unwrap_err().code(),
            S3ErrorCode::AuthorizationHeaderMalformed
        );
        let req = AuthRequest {
            raw_query: "X-Amz-Signature=1",
            ..req
        };
        assert_eq!(
            a.verify(&req, None, SystemTime::now()).unwrap_err().code(),
            S3ErrorCode::InvalidArgument
        );
    }
}
