//! AWS Signature Version 4 for S3: canonical request, signing key, header and presigned
//! (query) authentication, and the per-chunk signer used by aws-chunked bodies.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use crate::dates::parse_http_date;
pub use crate::dates::{format_amz_date, parse_amz_date};
use crate::encoding::{KEY_ENCODE_SET, URI_ENCODE_SET};
use crate::error::{S3Error, S3ErrorCode};

type HmacSha256 = Hmac<Sha256>;

/// `x-amz-content-sha256` of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Largest accepted clock difference for header-signed requests (as S3).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// Longest presigned URL validity (7 days, as S3).
pub const MAX_PRESIGNED_EXPIRY: u64 = 604_800;

/// Access key → secret key pairs.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// No keys (every request is refused).
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a key pair.
    pub fn insert(
        &mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> &mut Self {
        self.keys.insert(access_key.into(), secret_key.into());
        self
    }
    /// One pair from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, if both are set.
    pub fn from_env() -> Self {
        let mut c = Self::new();
        if let (Ok(a), Ok(s)) = (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            if !a.is_empty() {
                c.insert(a, s);
            }
        }
        c
    }
    /// The secret for an access key.
    pub fn secret(&self, access_key: &str) -> Option<&str> {
        self.keys.get(access_key).map(String::as_str)
    }

    /// The secret of `access_key`, or the `InvalidAccessKeyId` error S3 answers for a key
    /// it does not know.
    pub(crate) fn known_secret(&self, access_key: &str) -> Result<&str, S3Error> {
        self.secret(access_key)
            .ok_or_else(|| S3Error::new(S3ErrorCode::InvalidAccessKeyId))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// No pairs configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The parts of a request that authentication looks at.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// Method, e.g. `GET`.
    pub method: &'a str,
    /// Path exactly as on the wire (percent-encoded), starting with `/`.
    pub raw_path: &'a str,
    /// Query exactly as on the wire, without `?` (empty if none).
    pub raw_query: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// How the request body must be checked after a successful signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadMode {
    /// `UNSIGNED-PAYLOAD` (or a presigned URL).
    Unsigned,
    /// The body's SHA-256 must equal this.
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: aws-chunked with chunk signatures.
    StreamingSigned {
        /// A signed trailer follows the last chunk.
        trailer: bool,
    },
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked without signatures, with a trailer.
    StreamingUnsignedTrailer,
}

/// Result of a successful authentication.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The access key that signed the request.
    pub access_key: String,
    /// How to check the body.
    pub payload: PayloadMode,
    /// For signed aws-chunked bodies: the chain seed and key.
    pub chunk_signer: Option<ChunkSigner>,
}

impl Verified {
    /// `access_key` signed the request but not its body (presigned URLs, SigV2).
    pub(crate) fn unsigned_payload(access_key: &str) -> Self {
        Self {
            access_key: access_key.to_string(),
            payload: PayloadMode::Unsigned,
            chunk_signer: None,
        }
    }
}

/// Signs/verifies the chunks and trailer of an aws-chunked body.
#[derive(Clone)]
pub struct ChunkSigner {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    previous: String,
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("scope", &self.scope)
            .field("previous", &self.previous)
            .finish()
    }
}

impl ChunkSigner {
    /// A chain starting at `seed_signature` (the request's signature).
    pub fn new(signing_key: [u8; 32], amz_date: &str, scope: &str, seed_signature: &str) -> Self {
        Self {
            key: signing_key,
            amz_date: amz_date.into(),
            scope: scope.into(),
            previous: seed_signature.into(),
        }
    }

    /// The signature of the next chunk, given the SHA-256 of its data; advances the chain.
    pub fn next_chunk(&mut self, data_sha256: &[u8; 32]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            EMPTY_SHA256,
            hex::encode(data_sha256)
        );
        self.previous = signature(&self.key, &sts);
        self.previous.clone()
    }

    /// The trailer signature for canonical trailer text (`name:value\n` lines); advances.
    pub fn trailer(&mut self, canonical_trailers: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(Sha256::digest(canonical_trailers.as_bytes()))
        );
        self.previous = signature(&self.key, &sts);
        self.previous.clone()
    }
}

/// The hex signature of `string_to_sign` under a [`signing_key`] (the last SigV4 step, for
/// request, chunk and trailer signatures alike).
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The SigV4 signing key for `date` (YYYYMMDD), region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Constant-time equality of two ASCII signatures.
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Canonical URI of an S3 request: the decoded path re-encoded with AWS's rules
/// (no normalisation: `//` and trailing `/` are kept).
pub fn canonical_uri(raw_path: &str) -> String {
    let decoded = percent_decode_str(raw_path).collect::<Vec<u8>>();
    let mut out = String::with_capacity(raw_path.len() + 8);
    for chunk in percent_encoding::percent_encode(&decoded, KEY_ENCODE_SET) {
        out.push_str(chunk);
    }
    if out.is_empty() { "/".to_string() } else { out }
}

/// Decoded `(name, value)` pairs of a raw query string (`+` is kept literal).
pub fn parse_query(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// Canonical query string; parameters named in `exclude` are left out.
pub fn canonical_query(raw_query: &str, exclude: &[&str]) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .map(|(k, v)| (reencode(k), reencode(v)))
        .filter(|(k, _)| {
            !exclude
                .iter()
                .any(|e| percent_decode_str(k).decode_utf8_lossy() == *e)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn reencode(s: &str) -> String {
    let bytes: Vec<u8> = percent_decode_str(s).collect();
    percent_encoding::percent_encode(&bytes, URI_ENCODE_SET).to_string()
}

/// `name:value\n` lines of the signed headers (values trimmed, inner spaces collapsed,
/// repeated headers joined by `,`).
pub fn canonical_headers(headers: &HeaderMap, signed: &[&str]) -> Result<String, S3Error> {
    let mut out = String::new();
    for name in signed {
        let mut values = headers.get_all(*name).iter().peekable();
        if values.peek().is_none() {
            return Err(S3Error::with_message(
                S3ErrorCode::SignatureDoesNotMatch,
                format!("signed header {name} is missing from the request"),
            ));
        }
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for v in values {
            if !first {
                out.push(',');
            }
            first = false;
            let s = String::from_utf8_lossy(v.as_bytes());
            let mut last_space = false;
            for c in s.trim().chars() {
                if c == ' ' || c == '\t' {
                    if !last_space {
                        out.push(' ');
                    }
                    last_space = true;
                } else {
                    out.push(c);
                    last_space = false;
                }
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// The full canonical request.
pub fn canonical_request(
    req: &AuthRequest<'_>,
    signed_headers: &[&str],
    payload_hash: &str,
    query_exclude: &[&str],
) -> Result<String, S3Error> {
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.raw_path),
        canonical_query(req.raw_query, query_exclude),
        canonical_headers(req.headers, signed_headers)?,
        signed_headers.join(";"),
        payload_hash
    ))
}

/// `AWS4-HMAC-SHA256\n{date}\n{scope}\n{hash(canonical request)}`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// Whether `t` is within [`MAX_SKEW`] of `now`, either way.
pub(crate) fn skew_ok(t: SystemTime, now: SystemTime) -> bool {
    match now.duration_since(t) {
        Ok(d) => d <= MAX_SKEW,
        Err(e) => e.duration() <= MAX_SKEW,
    }
}

/// A parsed credential scope `AK/date/region/service/aws4_request`.
struct Scope<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl<'a> Scope<'a> {
    fn parse(s: &'a str, code: S3ErrorCode) -> Result<Self, S3Error> {
        let mut it = s.rsplitn(5, '/');
        let (term, service, region, date, access_key) =
            (it.next(), it.next(), it.next(), it.next(), it.next());
        match (access_key, date, region, service, term) {
            (Some(access_key), Some(date), Some(region), Some(service), Some("aws4_request"))
                if !access_key.is_empty() && date.len() == 8 =>
            {
                if service != "s3" {
                    return Err(S3Error::with_message(
                        code,
                        format!("wrong service '{service}': expecting 's3'"),
                    ));
                }
                Ok(Self {
                    access_key,
                    date,
                    region,
                    service,
                })
            }
            _ => Err(S3Error::with_message(code, "the credential is malformed")),
        }
    }
    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

pub(crate) fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies SigV4 header and presigned requests against a set of credentials.
#[derive(Debug, Clone)]
pub struct SigV4Verifier<'c> {
    creds: &'c Credentials,
}

impl<'c> SigV4Verifier<'c> {
    /// A verifier over `creds`.
    pub fn new(creds: &'c Credentials) -> Self {
        Self { creds }
    }

    fn secret(&self, access_key: &str) -> Result<&'c str, S3Error> {
        self.creds.known_secret(access_key)
    }

    /// Verifies an `Authorization: AWS4-HMAC-SHA256 ...` request.
    pub fn verify_header(
        &self,
        req: &AuthRequest<'_>,
        auth: &str,
        now: SystemTime,
    ) -> Result<Verified, S3Error> {
        let bad =
            |m: &'static str| S3Error::with_message(S3ErrorCode::AuthorizationHeaderMalformed, m);
        let rest = auth
            .strip_prefix("AWS4-HMAC-SHA256")
            .ok_or_else(|| bad("unsupported algorithm"))?;
        let (mut cred, mut signed, mut sig) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                cred = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                sig = Some(v);
            } else if !part.is_empty() {
                return Err(bad("unexpected component in the Authorization header"));
            }
        }
        let (cred, signed, sig) = match (cred, signed, sig) {
            (Some(c), Some(s), Some(g)) => (c, s, g),
            _ => {
                return Err(bad(
                    "the Authorization header needs Credential, SignedHeaders and Signature",
                ));
            }
        };
        let scope = Scope::parse(cred, S3ErrorCode::AuthorizationHeaderMalformed)?;
        let secret = self.secret(scope.access_key)?;

        let amz_date = match header_str(req.headers, "x-amz-date") {
            Some(d) => d.to_string(),
            None => {
                let d = header_str(req.headers, "date").ok_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::AccessDenied,
                        "AWS authentication requires a valid Date or x-amz-date header",
                    )
                })?;
                format_amz_date(parse_http_date(d).ok_or_else(|| {
                    S3Error::with_message(S3ErrorCode::AccessDenied, "invalid Date header")
                })?)
            }
        };
        let t = parse_amz_date(&amz_date).ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "AWS authentication requires a valid Date or x-amz-date header",
            )
        })?;
        if amz_date.get(..8) != Some(scope.date) {
            return Err(S3Error::with_message(
                S3ErrorCode::SignatureDoesNotMatch,
                "credential date does not match the request date",
            ));
        }
        if !skew_ok(t, now) {
            return Err(S3Error::new(S3ErrorCode::RequestTimeTooSkewed));
        }

        let content = header_str(req.headers, "x-amz-content-sha256").ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "Missing required header for this request: x-amz-content-sha256",
            )
        })?;
        let payload = match content {
            "UNSIGNED-PAYLOAD" => PayloadMode::Unsigned,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => PayloadMode::StreamingSigned { trailer: false },
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => {
                PayloadMode::StreamingSigned { trailer: true }
            }
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => PayloadMode::StreamingUnsignedTrailer,
            s if s.starts_with("STREAMING-") => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    format!("{s} is not supported"),
                ));
            }
            hexhash => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(hexhash, &mut h).map_err(|_| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        "x-amz-content-sha256 must be a SHA-256 or a known payload mode",
                    )
                })?;
                PayloadMode::Sha256(h)
            }
        };

        let signed_list: Vec<&str> = signed.split(';').collect();
        if !signed_list.contains(&"host") {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "the host header must be signed",
            ));
        }
        let creq = canonical_request(req, &signed_list, content, &[])?;
        let scope_str = scope.scope();
        let sts = string_to_sign(&amz_date, &scope_str, &creq);
        let key = signing_key(secret, scope.date, scope.region, scope.service);
        let expected = signature(&key, &sts);
        if !ct_eq(&expected, sig) {
            tracing::debug!(canonical_request = %creq, "SigV4 signature mismatch");
            return Err(S3Error::new(S3ErrorCode::SignatureDoesNotMatch));
        }
        let chunk_signer = matches!(payload, PayloadMode::StreamingSigned { .. })
            .then(|| ChunkSigner::new(key, &amz_date, &scope_str, &expected));
        Ok(Verified {
            access_key: scope.access_key.to_string(),
            payload,
            chunk_signer,
        })
    }

    /// Verifies a presigned (`X-Amz-Signature` in the query) request.
    pub fn verify_presigned(
        &self,
        req: &AuthRequest<'_>,
        now: SystemTime,
    ) -> Result<Verified, S3Error> {
        let q: HashMap<String, String> = parse_query(req.raw_query).into_iter().collect();
        let bad = |m: &'static str| {
            S3Error::with_message(S3ErrorCode::AuthorizationQueryParametersError, m)
        };
        let get = |k: &str| q.get(k).map(String::as_str);
        if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
            return Err(bad("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""));
        }
        let cred = get("X-Amz-Credential").ok_or_else(|| bad("missing X-Amz-Credential"))?;
        let amz_date = get("X-Amz-Date").ok_or_else(|| bad("missing X-Amz-Date"))?;
        let expires = get("X-Amz-Expires").ok_or_else(|| bad("missing X-Amz-Expires"))?;
        let signed =
            get("X-Amz-SignedHeaders").ok_or_else(|| bad("missing X-Amz-SignedHeaders"))?;
        let sig = get("X-Amz-Signature").ok_or_else(|| bad("missing X-Amz-Signature"))?;
        let scope = Scope::parse(cred, S3ErrorCode::AuthorizationQueryParametersError)?;
        let expires: u64 = expires
            .parse()
            .map_err(|_| bad("X-Amz-Expires must be a number"))?;
        if expires == 0 || expires > MAX_PRESIGNED_EXPIRY {
            return Err(bad("X-Amz-Expires must be between 1 and 604800 seconds"));
        }
        let t = parse_amz_date(amz_date)
            .ok_or_else(|| bad("X-Amz-Date must be in the ISO8601 Long Format"))?;
        if amz_date.get(..8) != Some(scope.date) {
            return Err(S3Error::with_message(
                S3ErrorCode::SignatureDoesNotMatch,
                "credential date does not match X-Amz-Date",
            ));
        }
        let secret = self.secret(scope.access_key)?;
        if t > now + MAX_SKEW {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Request is not valid yet",
            ));
        }
        if now > t + Duration::from_secs(expires) {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Request has expired",
            ));
        }
        let signed_list: Vec<&str> = signed.split(';').collect();
        let payload_hash = get("X-Amz-Content-Sha256").unwrap_or("UNSIGNED-PAYLOAD");
        let creq = canonical_request(req, &signed_list, payload_hash, &["X-Amz-Signature"])?;
        let scope_str = scope.scope();
        let sts = string_to_sign(amz_date, &scope_str, &creq);
        let key = signing_key(secret, scope.date, scope.region, scope.service);
        let expected = signature(&key, &sts);
        if !ct_eq(&expected, sig) {
            tracing::debug!(canonical_request = %creq, "SigV4 presigned signature mismatch");
            return Err(S3Error::new(S3ErrorCode::SignatureDoesNotMatch));
        }
        Ok(Verified::unsigned_payload(scope.access_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const AK: &str = "AKIAIOSFODNN7EXAMPLE";

    fn creds() -> Credentials {
        let mut c = Credentials::new();
        c.insert(AK, SECRET).insert("OTHERKEY", "othersecret");
        c
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn t0() -> SystemTime {
        parse_amz_date("20130524T000000Z").unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(
            t0().duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_369_353_600
        );
        assert_eq!(format_amz_date(t0()), "20130524T000000Z");
        assert!(parse_amz_date("20131324T000000Z").is_none());
        assert!(parse_amz_date("2013052400000Z").is_none());
        assert!(parse_amz_date("2013-5-24T000000Z").is_none());
    }

    /// AWS example "GET Object" (Range bytes=0-9).
    #[test]
    fn aws_get_object() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ]);
        let req = AuthRequest {
            method: "GET",
            raw_path: "/test.txt",
            raw_query: "",
            headers: &h,
        };
        let c = creds();
        let v = SigV4Verifier::new(&c);
        let auth = h["authorization"].to_str().unwrap();
        let ok = v.verify_header(&req, auth, t0()).unwrap();
        assert_eq!(ok.access_key, AK);
        let mut hash = [0u8; 32];
        hex::decode_to_slice(EMPTY_SHA256, &mut hash).unwrap();
        assert_eq!(ok.payload, PayloadMode::Sha256(hash));
        // Clock skew: 16 minutes later is refused, 14 is fine.
        assert_eq!(
            v.verify_header(&req, auth, t0() + Duration::from_secs(16 * 60))
                .unwrap_err()
                .code(),
            S3ErrorCode::RequestTimeTooSkewed
        );
        assert!(
            v.verify_header(&req, auth, t0() - Duration::from_secs(14 * 60))
                .is_ok()
        );
        // A different path breaks it.
        let req2 = AuthRequest {
            raw_path: "/test.txT",
            ..req
        };
        assert_eq!(
            v.verify_header(&req2, auth, t0()).unwrap_err().code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
        // Unknown key.
        let bad = auth.replace(AK, "AKIAUNKNOWN");
        assert_eq!(
            v.verify_header(&req, &bad, t0()).unwrap_err().code(),
            S3ErrorCode::InvalidAccessKeyId
        );
    }

    /// AWS example "PUT Object" (`/test$file.text`, Date header signed, storage class).
    #[test]
    fn aws_put_object() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            (
                "x-amz-content-sha256",
                "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            ),
        ]);
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
        let c = creds();
        // `$` sent raw or encoded gives the same canonical URI.
        for path in ["/test$file.text", "/test%24file.text"] {
            let req = AuthRequest {
                method: "PUT",
                raw_path: path,
                raw_query: "",
                headers: &h,
            };
            let ok = SigV4Verifier::new(&c)
                .verify_header(&req, auth, t0())
                .unwrap();
            assert_eq!(
                Sha256::digest(b"Welcome to Amazon S3.").as_slice(),
                match ok.payload {
                    PayloadMode::Sha256(h) => h.to_vec(),
                    _ => vec![],
                }
            );
        }
    }

    /// AWS examples "GET Bucket Lifecycle" and "Get Bucket (List Objects)".
    #[test]
    fn aws_bucket_queries() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ]);
        let c = creds();
        let v = SigV4Verifier::new(&c);
        let auth = |sig: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature={sig}"
            )
        };
        let req = AuthRequest {
            method: "GET",
            raw_path: "/",
            raw_query: "lifecycle",
            headers: &h,
        };
        v.verify_header(
            &req,
            &auth("fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
            t0(),
        )
        .unwrap();
        // Query order on the wire does not matter.
        for q in ["max-keys=2&prefix=J", "prefix=J&max-keys=2"] {
            let req = AuthRequest {
                method: "GET",
                raw_path: "/",
                raw_query: q,
                headers: &h,
            };
            v.verify_header(
                &req,
                &auth("34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
                t0(),
            )
            .unwrap();
        }
    }

    /// AWS example presigned GET (`X-Amz-Expires=86400`).
    #[test]
    fn aws_presigned() {
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let req = AuthRequest {
            method: "GET",
            raw_path: "/test.txt",
            raw_query: q,
            headers: &h,
        };
        let c = creds();
        let v = SigV4Verifier::new(&c);
        v.verify_presigned(&req, t0() + Duration::from_secs(3600))
            .unwrap();
        let e = v
            .verify_presigned(&req, t0() + Duration::from_secs(86_401))
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (S3ErrorCode::AccessDenied, "Request has expired")
        );
        let bad = q.replace("aeeed9", "aeeed8");
        let req = AuthRequest {
            raw_query: &bad,
            ..req
        };
        assert_eq!(
            v.verify_presigned(&req, t0()).unwrap_err().code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
    }

    #[test]
    fn canonical_uri_rules() {
        assert_eq!(canonical_uri("/b/a%20b"), "/b/a%20b");
        assert_eq!(canonical_uri("/b/a+b"), "/b/a%2Bb");
        assert_eq!(canonical_uri("/b/a%2Bb"), "/b/a%2Bb");
        assert_eq!(canonical_uri("/b//x//"), "/b//x//");
        assert_eq!(canonical_uri("/b/%C3%A9%25"), "/b/%C3%A9%25");
        assert_eq!(canonical_uri("/b/é"), "/b/%C3%A9");
        assert_eq!(canonical_uri("/b/~a-b_c.d"), "/b/~a-b_c.d");
        assert_eq!(
            canonical_query("b=2&a=%20x&a=1&c", &[]),
            "a=%20x&a=1&b=2&c="
        );
        assert_eq!(
            canonical_query("x=a+b&X-Amz-Signature=zz", &["X-Amz-Signature"]),
            "x=a%2Bb"
        );
    }

    #[test]
    fn header_canonicalisation() {
        let h = headers(&[("x-a", "  a   b  c "), ("x-b", "1"), ("x-b", " 2 ")]);
        assert_eq!(
            canonical_headers(&h, &["x-a", "x-b"]).unwrap(),
            "x-a:a b c\nx-b:1,2\n"
        );
        assert!(canonical_headers(&h, &["x-c"]).is_err());
    }

    #[test]
    fn malformed_authorization() {
        let h = headers(&[
            ("host", "h"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ]);
        let req = AuthRequest {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: &h,
        };
        let c = creds();
        let v = SigV4Verifier::new(&c);
        for a in [
            "AWS4-HMAC-SHA256 Credential=AK/2013/us/s3/aws4_request,SignedHeaders=host,Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/ec2/aws4_request,SignedHeaders=host,Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host,Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=00,Foo=1",
        ] {
            assert_eq!(
                v.verify_header(&req, a, t0()).unwrap_err().code(),
                S3ErrorCode::AuthorizationHeaderMalformed,
                "{a}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(method in "[A-Z]{0,6}", path in "\\PC{0,40}", query in "\\PC{0,60}", auth in "\\PC{0,200}") {
            let h = headers(&[("host", "h"), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")]);
            let req = AuthRequest { method: &method, raw_path: &path, raw_query: &query, headers: &h };
            let c = creds();
            let v = SigV4Verifier::new(&c);
            let _ = v.verify_header(&req, &auth, t0());
            let _ = v.verify_header(&req, &format!("AWS4-HMAC-SHA256 {auth}"), t0());
            let _ = v.verify_presigned(&req, t0());
            let _ = parse_amz_date(&auth);
            let _ = canonical_uri(&path);
        }
    }
}
