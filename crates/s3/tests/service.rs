//! The S3 service in process: a hyper client against `service::start` on 127.0.0.1, over
//! a gateway core on an embedded hub. Covers routing (path and virtual-hosted style), SigV4
//! authentication (header and presigned, good and bad), the XML documents and the mapping
//! of core errors to S3 errors. Requests are signed by the small SigV4 signer below,
//! written from the AWS specification and independent of the crate's verifier.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hugbucket_core::{CoreConfig, Gateway, HubClient, RetryConfig, UpstreamConfig};
use hugbucket_hub::stats::Route;
use hugbucket_hub::{FaultRule, HubConfig, RunningHub};
use hugbucket_s3::auth::Credentials;
use hugbucket_s3::router::RouterConfig;
use hugbucket_s3::runtime::bridge::Bridge;
use hugbucket_s3::runtime::{RuntimeKind, ServeConfig};
use hugbucket_s3::service::{S3Config, S3Server};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

const AK: &str = "AKTEST";
const SK: &str = "secret-test-key";
const REGION: &str = "us-east-1";

struct Env {
    rt: tokio::runtime::Runtime,
    hub: RunningHub,
    server: Option<S3Server>,
    _dir: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (hub, gateway) = rt.block_on(async {
            let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("hub"));
            cfg.namespace = "tester".into();
            cfg.tokens = vec!["hf_s3_test".into()];
            let hub = hugbucket_hub::start(cfg).await.unwrap();
            let upstream = UpstreamConfig {
                retry: RetryConfig {
                    max_attempts: 2,
                    base_delay: Duration::from_millis(5),
                    max_delay: Duration::from_millis(10),
                    total_budget: Duration::from_secs(2),
                    ..RetryConfig::default()
                },
                ..UpstreamConfig::default()
            };
            let client =
                HubClient::new(&hub.url(), Some(hub.token().to_string()), upstream).unwrap();
            let gateway = Gateway::new(CoreConfig::new(dir.path().join("gw")), client)
                .await
                .unwrap();
            (hub, gateway)
        });
        let mut credentials = Credentials::new();
        credentials.insert(AK, SK);
        let config = S3Config {
            runtime: RuntimeKind::Tokio,
            serve: ServeConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                cpus: vec![0],
                ..ServeConfig::default()
            },
            router: RouterConfig {
                base_domains: vec!["s3.test".into()],
            },
            credentials,
            region: REGION.into(),
        };
        let server =
            hugbucket_s3::service::start(gateway, Bridge::new(rt.handle().clone()), config)
                .unwrap();
        Env {
            rt,
            hub,
            server: Some(server),
            _dir: dir,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    /// Sends one request (a fresh connection each time) and reads the whole answer.
    fn send(&self, req: Request<Full<Bytes>>) -> Answer {
        let addr = self.addr();
        self.rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            let resp = tx.send_request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
    }

    /// A request signed with SigV4 in the `Authorization` header (path style).
    fn signed(&self, method: Method, path_and_query: &str, body: &[u8]) -> Answer {
        self.send(sign(
            method,
            "127.0.0.1",
            path_and_query,
            body,
            AK,
            SK,
            SystemTime::now(),
        ))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown(Duration::from_secs(5)));
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 error document.
    fn code(&self) -> String {
        let t = self.text();
        let start = t.find("<Code>").map(|i| i + 6);
        let end = t.find("</Code>");
        match (start, end) {
            (Some(s), Some(e)) => t[s..e].to_string(),
            _ => panic!("not an S3 error document: {t}"),
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// SigV4, from the AWS specification
// ---------------------------------------------------------------------------------------

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// AWS URI encoding: everything but `A-Za-z0-9-_.~` as `%XX` (and `/` too unless `path`).
fn uri_encode(s: &str, path: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (path && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `name=value` pairs (already decoded), sorted and encoded as SigV4 wants.
fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn split_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .unwrap()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

fn signature(secret: &str, date: &str, string_to_sign: &str) -> String {
    let k = hmac(format!("AWS4{secret}").as_bytes(), &date[..8]);
    let k = hmac(&k, REGION);
    let k = hmac(&k, "s3");
    let k = hmac(&k, "aws4_request");
    hex::encode(hmac(&k, string_to_sign))
}

/// A header-signed request; `path_and_query` holds only unreserved characters, `/`, `=`
/// and `&`.
fn sign(
    method: Method,
    host: &str,
    path_and_query: &str,
    body: &[u8],
    ak: &str,
    sk: &str,
    now: SystemTime,
) -> Request<Full<Bytes>> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let date = amz_date(now);
    let payload = sha256_hex(body);
    let scope = format!("{}/{REGION}/s3/aws4_request", &date[..8]);
    let creq = format!(
        "{method}\n{}\n{}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}",
        uri_encode(path, true),
        canonical_query(&split_query(query)),
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(creq.as_bytes())
    );
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
        signature(sk, &date, &sts)
    );
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", host)
        .header("x-amz-date", &date)
        .header("x-amz-content-sha256", &payload)
        .header("authorization", auth)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
}

/// A presigned GET URL (path and query) valid for `expires` seconds from `now`.
fn presign(path: &str, now: SystemTime, expires: u64) -> String {
    let date = amz_date(now);
    let scope = format!("{}/{REGION}/s3/aws4_request", &date[..8]);
    let params = vec![
        (
            "X-Amz-Algorithm".to_string(),
            "AWS4-HMAC-SHA256".to_string(),
        ),
        ("X-Amz-Credential".to_string(), format!("{AK}/{scope}")),
        ("X-Amz-Date".to_string(), date.clone()),
        ("X-Amz-Expires".to_string(), expires.to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ];
    let query = canonical_query(&params);
    let creq = format!(
        "GET\n{}\n{query}\nhost:127.0.0.1\n\nhost\nUNSIGNED-PAYLOAD",
        uri_encode(path, true)
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(creq.as_bytes())
    );
    format!(
        "{path}?{query}&X-Amz-Signature={}",
        signature(SK, &date, &sts)
    )
}

fn unsigned(method: Method, uri: &str, host: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn routing_and_xml_documents() {
    let env = Env::start();
    let r = env.signed(Method::PUT, "/photos", b"");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let r = env.signed(Method::GET, "/", b"");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/xml");
    let t = r.text();
    assert!(
        t.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{t}"
    );
    assert!(
        t.contains("<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"),
        "{t}"
    );
    assert!(t.contains("<Name>photos</Name>"), "{t}");

    let data = b"hello, in-process S3".repeat(100);
    let r = env.signed(Method::PUT, "/photos/2024/a&b.txt", &data);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let etag = r.header("etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 66,
        "{etag}"
    );
    let r = env.signed(Method::PUT, "/photos/2024/b.txt", b"b");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = env.signed(Method::PUT, "/photos/top.txt", b"top");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let r = env.signed(Method::GET, "/photos/2024/a&b.txt", b"");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), &data[..]);
    assert_eq!(r.header("etag"), etag);

    let r = env.signed(Method::HEAD, "/photos/2024/a&b.txt", b"");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), data.len().to_string());
    assert!(r.body.is_empty());

    // ListObjectsV2 with a delimiter: one common prefix, one object.
    let r = env.signed(Method::GET, "/photos?list-type=2&delimiter=/", b"");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = r.text();
    assert!(t.contains("<ListBucketResult xmlns="), "{t}");
    assert!(t.contains("<KeyCount>2</KeyCount>"), "{t}");
    assert!(
        t.contains("<CommonPrefixes><Prefix>2024/</Prefix></CommonPrefixes>"),
        "{t}"
    );
    assert!(t.contains("<Key>top.txt</Key>"), "{t}");
    assert!(!t.contains("<Key>2024/b.txt</Key>"), "{t}");

    // The key's `&` is escaped in XML.
    let r = env.signed(Method::GET, "/photos?list-type=2&prefix=2024/", b"");
    let t = r.text();
    assert!(t.contains("<Key>2024/a&amp;b.txt</Key>"), "{t}");
    assert!(t.contains("<Size>2000</Size>"), "{t}");
    assert!(
        t.contains(&format!("<ETag>{}</ETag>", etag.replace('"', "&quot;"))),
        "{t}"
    );

    // Virtual-hosted style: the bucket is in the Host header.
    let host = "photos.s3.test";
    let r = env.send(sign(
        Method::GET,
        host,
        "/top.txt",
        b"",
        AK,
        SK,
        SystemTime::now(),
    ));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body.as_ref(), b"top");

    // Delete, then the key is gone.
    let r = env.signed(Method::DELETE, "/photos/top.txt", b"");
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = env.signed(Method::GET, "/photos/top.txt", b"");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "NoSuchKey");
    assert_eq!(r.header("content-type"), "application/xml");
    assert!(r.text().contains("<Key>top.txt</Key>") || r.text().contains("<Resource>"));
}

#[test]
fn sigv4_header_and_presigned_authentication() {
    let env = Env::start();
    assert_eq!(env.signed(Method::PUT, "/auth", b"").status, StatusCode::OK);
    assert_eq!(
        env.signed(Method::PUT, "/auth/k", b"secret bytes").status,
        StatusCode::OK
    );
    let now = SystemTime::now();

    // A wrong secret: the signature does not match.
    let r = env.send(sign(
        Method::GET,
        "127.0.0.1",
        "/auth/k",
        b"",
        AK,
        "wrong",
        now,
    ));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "SignatureDoesNotMatch");

    // An unknown access key.
    let r = env.send(sign(
        Method::GET,
        "127.0.0.1",
        "/auth/k",
        b"",
        "NOPE",
        SK,
        now,
    ));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "InvalidAccessKeyId");

    // A body that is not the one signed.
    let mut req = sign(Method::PUT, "127.0.0.1", "/auth/k2", b"signed", AK, SK, now);
    *req.body_mut() = Full::new(Bytes::from_static(b"tampered"));
    req.headers_mut()
        .insert("content-length", http::HeaderValue::from_static("8"));
    let r = env.send(req);
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.code(), "XAmzContentSHA256Mismatch");
    assert_eq!(
        env.signed(Method::GET, "/auth/k2", b"").status,
        StatusCode::NOT_FOUND
    );

    // Clock skew beyond 15 minutes.
    let old = now - Duration::from_secs(3600);
    let r = env.send(sign(Method::GET, "127.0.0.1", "/auth/k", b"", AK, SK, old));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "RequestTimeTooSkewed");

    // No credentials at all.
    let r = env.send(unsigned(Method::GET, "/auth/k", "127.0.0.1"));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "AccessDenied");

    // Presigned: valid, tampered, expired.
    let url = presign("/auth/k", now, 300);
    let r = env.send(unsigned(Method::GET, &url, "127.0.0.1"));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body.as_ref(), b"secret bytes");

    let tampered = url.replace("/auth/k?", "/auth/other?");
    let r = env.send(unsigned(Method::GET, &tampered, "127.0.0.1"));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "SignatureDoesNotMatch");

    let expired = presign("/auth/k", now - Duration::from_secs(120), 60);
    let r = env.send(unsigned(Method::GET, &expired, "127.0.0.1"));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "AccessDenied");
    assert!(r.text().contains("expired"), "{}", r.text());
}

#[test]
fn core_errors_become_s3_errors() {
    let env = Env::start();
    let r = env.signed(Method::GET, "/missing-bucket/k", b"");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "NoSuchBucket");

    let r = env.signed(Method::PUT, "/Bad_Name", b"");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "InvalidBucketName");

    assert_eq!(env.signed(Method::PUT, "/errs", b"").status, StatusCode::OK);
    // Creating one's own bucket again succeeds, as S3 does in us-east-1.
    let r = env.signed(Method::PUT, "/errs", b"");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    assert_eq!(
        env.signed(Method::PUT, "/errs/ten", b"0123456789").status,
        StatusCode::OK
    );
    let mut req = sign(
        Method::GET,
        "127.0.0.1",
        "/errs/ten",
        b"",
        AK,
        SK,
        SystemTime::now(),
    );
    req.headers_mut()
        .insert("range", http::HeaderValue::from_static("bytes=20-30"));
    let r = env.send(req);
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.code(), "InvalidRange");
    assert_eq!(r.header("content-range"), "bytes */10");

    let r = env.signed(Method::DELETE, "/errs", b"");
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "BucketNotEmpty");

    let r = env.signed(Method::GET, "/errs/ten?uploadId=nope", b"");
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.code(), "NoSuchUpload");

    // The Hub failing (503 past the upstream client's retries): retryable, so SlowDown.
    env.hub.faults().push(FaultRule::status(
        Route::Tree,
        StatusCode::SERVICE_UNAVAILABLE,
        100,
    ));
    let r = env.signed(Method::GET, "/errs?list-type=2", b"");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.code(), "SlowDown");
    env.hub.faults().clear();
    let r = env.signed(Method::GET, "/errs?list-type=2", b"");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("<Key>ten</Key>"));
}
