//! Client behaviour that the embedded hub cannot provoke (retries of scripted statuses,
//! connections dropped mid-body, the upload-grant flow), checked against a tiny scripted
//! HTTP/1.1 server written on raw tokio sockets. It is a fixture for the client's own logic,
//! not a Hub emulation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hugbucket_engine::XetHash;
use hugbucket_upstream::{
    BucketId, ByteRange, CasClient, Fault, HubClient, RetryConfig, UpstreamConfig, UpstreamError,
    XetToken, XorbUpload,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A handler answer that makes the fixture stall (no response) for 3 s, then close.
const STALL: &[u8] = b"__stall__";

/// What the fixture sends back: raw bytes written before closing the connection.
type Handler = Arc<dyn Fn(&Recorded, usize) -> Vec<u8> + Send + Sync>;

struct Fixture {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Fixture {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

async fn fixture(handler: Handler) -> Fixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log2.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                let index = {
                    let mut l = log.lock().unwrap();
                    l.push(req.clone());
                    l.len() - 1
                };
                let resp = handler(&req, index);
                if resp == STALL {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    return;
                }
                let _ = sock.write_all(&resp).await;
                let _ = sock.flush().await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Fixture { addr, log }
}

fn response(status: u16, extra_headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
    for (k, v) in extra_headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn config(max_attempts: u32) -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        retry: RetryConfig {
            max_attempts,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(40),
            total_budget: Duration::from_secs(10),
        },
        ..UpstreamConfig::default()
    }
}

const INFO: &[u8] =
    br#"{"id":"u/b","private":false,"createdAt":"2026-11-25T00:00:00Z","size":0,"totalFiles":0}"#;

#[tokio::test]
async fn retries_503_twice_then_succeeds() {
    let fx = fixture(Arc::new(|_, i| {
        if i < 2 {
            response(503, &[], b"busy")
        } else {
            response(200, &[("content-type", "application/json")], INFO)
        }
    }))
    .await;
    let hub = HubClient::new(&fx.url(), Some("hf_x".into()), config(5)).unwrap();
    let info = hub
        .bucket_info(&BucketId::parse("u/b").unwrap())
        .await
        .unwrap();
    assert_eq!(info.id, "u/b");
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter()
            .all(|r| r.header("authorization") == Some("Bearer hf_x"))
    );
    assert!(reqs.iter().all(|r| r.path == "/api/buckets/u/b"));
}

#[tokio::test]
async fn non_retryable_statuses_are_not_retried() {
    for status in [400u16, 401, 403, 404, 409, 422] {
        let fx = fixture(Arc::new(move |_, _| {
            response(status, &[("x-error-message", "nope")], b"{}")
        }))
        .await;
        let hub = HubClient::new(&fx.url(), None, config(5)).unwrap();
        let err = hub
            .bucket_info(&BucketId::parse("u/b").unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert!(!err.is_retryable());
        assert_eq!(err.http_failure().unwrap().message, "nope");
        assert_eq!(fx.requests().len(), 1, "status {status}");
    }
}

#[tokio::test]
async fn retry_attempts_and_time_are_bounded() {
    let fx = fixture(Arc::new(|_, _| response(429, &[("retry-after", "0")], b""))).await;
    let hub = HubClient::new(&fx.url(), None, config(4)).unwrap();
    let err = hub
        .bucket_info(&BucketId::parse("u/b").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited(_)));
    assert!(err.is_retryable());
    assert_eq!(err.fault(), Fault::Upstream);
    assert_eq!(fx.requests().len(), 4);

    // Many attempts allowed, but a 250 ms total budget with 100 ms delays.
    let fx = fixture(Arc::new(|_, _| response(502, &[], b""))).await;
    let mut cfg = config(100);
    cfg.retry.base_delay = Duration::from_millis(100);
    cfg.retry.max_delay = Duration::from_millis(100);
    cfg.retry.total_budget = Duration::from_millis(250);
    let hub = HubClient::new(&fx.url(), None, cfg).unwrap();
    let t0 = Instant::now();
    let err = hub
        .bucket_info(&BucketId::parse("u/b").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502));
    let n = fx.requests().len();
    assert!((2..=6).contains(&n), "{n} attempts");
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn connect_errors_are_retryable_upstream_faults() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let hub = HubClient::new(&format!("http://{addr}"), None, config(2)).unwrap();
    let err = hub
        .bucket_info(&BucketId::parse("u/b").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.fault(), Fault::Upstream);
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn link_pagination_is_followed_verbatim() {
    let fx = fixture(Arc::new(|req, _| {
        let entry = |p: &str| {
            format!(
                r#"{{"type":"file","path":"{p}","size":1,"xetHash":"{}"}}"#,
                "0".repeat(64)
            )
        };
        match req.path.as_str() {
            "/api/buckets/u/b/tree/a%2Fb%20c?recursive=true" => {
                let host = req.header("host").unwrap().to_string();
                let link =
                    format!("<http://{host}/api/buckets/u/b/tree?cursor=opaque%2F1>; rel=\"next\"");
                response(
                    200,
                    &[("link", &link)],
                    format!("[{}]", entry("p1")).as_bytes(),
                )
            }
            "/api/buckets/u/b/tree?cursor=opaque%2F1" => response(
                200,
                &[("link", "</api/buckets/u/b/tree?cursor=2>; rel=\"next\"")],
                format!("[{},{}]", entry("p2"), entry("p3")).as_bytes(),
            ),
            "/api/buckets/u/b/tree?cursor=2" => {
                response(200, &[], format!("[{}]", entry("p4")).as_bytes())
            }
            _ => response(404, &[], b""),
        }
    }))
    .await;
    let hub = HubClient::new(&fx.url(), None, config(2)).unwrap();
    let id = BucketId::parse("u/b").unwrap();
    let all = hub
        .list_tree(&id, Some("a/b c"), Some(true))
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    let paths: Vec<&str> = all.iter().map(|e| e.path()).collect();
    assert_eq!(paths, ["p1", "p2", "p3", "p4"]);
    assert_eq!(fx.requests().len(), 3);
}

fn static_cas(fx: &Fixture, cfg: UpstreamConfig) -> CasClient {
    CasClient::with_static_token(
        XetToken {
            access_token: "xet_tok".into(),
            exp: u64::MAX,
            cas_url: fx.url(),
        },
        cfg,
    )
    .unwrap()
}

#[tokio::test]
async fn fetch_resumes_after_a_dropped_connection() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let data2 = data.clone();
    let fx = fixture(Arc::new(move |req, i| {
        let range = req.header("range").unwrap();
        let (s, e) = range
            .strip_prefix("bytes=")
            .unwrap()
            .split_once('-')
            .unwrap();
        let (s, e): (usize, usize) = (s.parse().unwrap(), e.parse().unwrap());
        let cr = format!("bytes {s}-{e}/1000");
        if i == 0 {
            // Promise the whole range, send 400 bytes, close.
            let mut out = format!(
                "HTTP/1.1 206 Partial\r\ncontent-range: {cr}\r\ncontent-length: {}\r\n\r\n",
                e - s + 1
            )
            .into_bytes();
            out.extend_from_slice(&data2[s..s + 400]);
            out
        } else {
            response(206, &[("content-range", &cr)], &data2[s..=e])
        }
    }))
    .await;
    let cas = static_cas(&fx, config(4));
    let url = format!("{}/xorbs/default/x?sig=abc", fx.url());
    let mut stream = cas
        .fetch_xorb_range(&url, ByteRange::new(0, 999).unwrap())
        .await
        .unwrap();
    assert_eq!(stream.len(), 1000);
    let mut got = Vec::new();
    while let Some(piece) = stream.next().await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(got, data);
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), Some("bytes=0-999"));
    assert_eq!(reqs[1].header("range"), Some("bytes=400-999"));
    assert_eq!(reqs[0].path, "/xorbs/default/x?sig=abc");
    // Presigned URLs never get Authorization; the session id is sent.
    assert!(reqs.iter().all(|r| r.header("authorization").is_none()));
    assert!(reqs.iter().all(|r| r.header("x-xet-session-id").is_some()));
}

/// A URL signed for its exact range (`X-Xet-Signed-Range`) refuses any other range, so a
/// broken body is not resumed with a narrower `Range` on it: the error goes to the caller
/// (the core re-queries the reconstruction). Every request names hugbucket as its agent.
#[tokio::test]
async fn range_signed_fetch_is_not_resumed_on_the_same_url() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 3 % 251) as u8).collect();
    let fx = fixture(Arc::new(move |_req, _i| {
        let mut out =
            b"HTTP/1.1 206 Partial\r\ncontent-range: bytes 0-999/1000\r\ncontent-length: 1000\r\n\r\n"
                .to_vec();
        out.extend_from_slice(&data[..400]);
        out
    }))
    .await;
    let cas = static_cas(&fx, config(4));
    let url = format!(
        "{}/xorbs/default/x?X-Xet-Signed-Range=1&Expires=9999999999&Signature=s",
        fx.url()
    );
    let mut stream = cas
        .fetch_xorb_range(&url, ByteRange::new(0, 999).unwrap())
        .await
        .unwrap();
    let mut got = 0;
    let mut failed = None;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(p) => got += p.len(),
            Err(e) => failed = Some(e),
        }
    }
    let err = failed.expect("a cut body must end with an error");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(got, 400);
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 1, "no second request on a range-signed URL");
    let agent = reqs[0].header("user-agent").unwrap();
    assert_eq!(agent, concat!("hugbucket/", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn fetch_rejects_wrong_ranges() {
    let fx = fixture(Arc::new(|req, _| match req.path.as_str() {
        "/ignored" => response(200, &[], &[0u8; 10]),
        "/shifted" => response(206, &[("content-range", "bytes 1-10/20")], &[0u8; 10]),
        "/long" => response(206, &[("content-range", "bytes 0-9/20")], &[0u8; 12]),
        "/gone" => response(403, &[], b"expired"),
        _ => response(404, &[], b""),
    }))
    .await;
    let cas = static_cas(&fx, config(1));
    let r = ByteRange::new(0, 9).unwrap();
    for (path, expect_mismatch) in [("/ignored", true), ("/shifted", true), ("/long", true)] {
        let err = cas
            .fetch_xorb_range_bytes(&format!("{}{path}", fx.url()), r)
            .await
            .unwrap_err();
        assert_eq!(
            matches!(err, UpstreamError::RangeMismatch { .. }),
            expect_mismatch,
            "{path}: {err:?}"
        );
        assert!(err.is_retryable());
    }
    let err = cas
        .fetch_xorb_range_bytes(&format!("{}/gone", fx.url()), r)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::FetchUrlExpired(_)));
    let err = cas
        .fetch_xorb_range_bytes(&format!("{}/missing", fx.url()), r)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::NotFound(_)));
}

#[tokio::test]
async fn xorb_upload_through_a_grant() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
    let hash = XetHash::from_bytes([0x11; 32]);
    let hex = hash.to_hex();
    let hex2 = hex.clone();
    let fx = fixture(Arc::new(move |req, _| {
        let host = req.header("host").unwrap().to_string();
        if req.path == format!("/v1/xorb-grants/default/{hex2}") {
            let body = format!(
                r#"{{"id":"g 1","method":"PUT","url":"http://{host}/upload/g1?sig=s","headers":{{"x-amz-meta-test":"v"}}}}"#
            );
            response(201, &[], body.as_bytes())
        } else if req.path == "/upload/g1?sig=s" && req.method == "PUT" {
            response(200, &[], b"")
        } else if req.path == format!("/v1/xorb-commits/default/{hex2}/grant/g%201") {
            response(200, &[], br#"{"was_inserted":true}"#)
        } else {
            response(500, &[], b"unexpected")
        }
    }))
    .await;
    let cas = static_cas(&fx, config(2));
    let out = cas
        .upload_xorb(&hash, Bytes::from(data.clone()))
        .await
        .unwrap();
    assert_eq!(out, XorbUpload::ViaGrant { was_inserted: true });
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    // 1. grant request: length + CRC-64/NVME as a decimal string, CAS auth.
    let grant: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(grant["length"], 5000);
    assert_eq!(grant["checksum"]["algo"], "crc64nvme");
    assert_eq!(
        grant["checksum"]["value"],
        hugbucket_engine::crc64::crc64_nvme(&data).to_string()
    );
    assert_eq!(reqs[0].header("authorization"), Some("Bearer xet_tok"));
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    // 2. bytes to the grant URL with the grant's headers and no auth.
    assert_eq!(reqs[1].method, "PUT");
    assert_eq!(reqs[1].body, data);
    assert_eq!(reqs[1].header("x-amz-meta-test"), Some("v"));
    assert!(reqs[1].header("authorization").is_none());
    // 3. commit with CAS auth.
    assert_eq!(reqs[2].method, "POST");
    assert_eq!(reqs[2].header("authorization"), Some("Bearer xet_tok"));
    let session = reqs[0].header("x-xet-session-id").unwrap();
    assert!(
        reqs.iter()
            .all(|r| r.header("x-xet-session-id") == Some(session))
    );
}

#[tokio::test]
async fn grant_200_means_already_stored_and_404_falls_back() {
    let fx = fixture(Arc::new(|_, _| response(200, &[], b"{}"))).await;
    let cas = static_cas(&fx, config(2));
    let out = cas
        .upload_xorb(&XetHash::from_bytes([1; 32]), Bytes::from_static(b"abc"))
        .await
        .unwrap();
    assert_eq!(out, XorbUpload::AlreadyExists);
    assert_eq!(fx.requests().len(), 1);

    let fx = fixture(Arc::new(|req, _| {
        if req.path.starts_with("/v1/xorb-grants/") {
            response(404, &[], b"")
        } else {
            response(200, &[], br#"{"was_inserted":true}"#)
        }
    }))
    .await;
    let cas = static_cas(&fx, config(2));
    for _ in 0..2 {
        let out = cas
            .upload_xorb(&XetHash::from_bytes([1; 32]), Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(out, XorbUpload::Direct { was_inserted: true });
    }
    let paths: Vec<String> = fx.requests().into_iter().map(|r| r.path).collect();
    let grant_calls = paths
        .iter()
        .filter(|p| p.starts_with("/v1/xorb-grants/"))
        .count();
    assert_eq!(
        grant_calls, 1,
        "grants unavailability is remembered: {paths:?}"
    );
    assert_eq!(paths.len(), 3);
}

#[tokio::test]
async fn shard_stream_outcomes() {
    // Error frame, not retryable: one request.
    let fx = fixture(Arc::new(|_, _| {
        response(
            200,
            &[("content-type", "application/x-ndjson")],
            b"{\"type\":\"validating\",\"verified\":0,\"total\":1}\n{\"type\":\"error\",\"message\":\"unknown xorb\",\"retryable\":false}\n",
        )
    }))
    .await;
    let cas = static_cas(&fx, config(3));
    let err = cas
        .upload_shard(Bytes::from_static(b"shard"))
        .await
        .unwrap_err();
    match &err {
        UpstreamError::ShardRejected { message, retryable } => {
            assert_eq!(message, "unknown xorb");
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.requests().len(), 1);
    assert_eq!(fx.requests()[0].body, b"shard");

    // A stream that ends without a result is retried, then succeeds.
    let fx = fixture(Arc::new(|_, i| {
        if i == 0 {
            response(
                200,
                &[],
                b"{\"type\":\"validating\",\"verified\":0,\"total\":1}\n",
            )
        } else {
            response(
                200,
                &[],
                b"{\"type\":\"committing\",\"stage\":\"syncing\"}\n{\"type\":\"result\"}",
            )
        }
    }))
    .await;
    let cas = static_cas(&fx, config(3));
    assert_eq!(
        cas.upload_shard(Bytes::from_static(b"s")).await.unwrap(),
        hugbucket_upstream::ShardUpload::V2
    );
    assert_eq!(fx.requests().len(), 2);
}

#[tokio::test]
async fn token_fetch_is_retried_and_uses_hub_auth() {
    let fx = fixture(Arc::new(|req, i| {
        if i == 0 {
            return response(500, &[], b"");
        }
        let host = req.header("host").unwrap().to_string();
        let body = format!(
            r#"{{"accessToken":"xt","exp":{},"casUrl":"http://{host}/"}}"#,
            u64::MAX / 2
        );
        response(200, &[], body.as_bytes())
    }))
    .await;
    let hub = HubClient::new(&fx.url(), Some("hf_tok".into()), config(3)).unwrap();
    let id = BucketId::parse("u/b").unwrap();
    let t = hub
        .xet_token(&id, hugbucket_upstream::TokenScope::Write)
        .await
        .unwrap();
    assert_eq!(t.access_token, "xt");
    assert_eq!(t.cas_url, fx.url());
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].path, "/api/buckets/u/b/xet-write-token");
    assert_eq!(reqs[1].header("authorization"), Some("Bearer hf_tok"));
    assert!(reqs[1].header("x-xet-session-id").is_some());
    // Cached now.
    hub.xet_token(&id, hugbucket_upstream::TokenScope::Write)
        .await
        .unwrap();
    assert_eq!(fx.requests().len(), 2);
}

#[tokio::test]
async fn resolve_head_reads_metadata_and_follows_same_origin_redirects_only() {
    let hash = "3e5567705bbf4e0fd6ec7808314cf7fecec15a7dfe36c1e58342d8b1669ace67";
    let fx = fixture(Arc::new(move |req, _| {
        let host = req.header("host").unwrap().to_string();
        match req.path.as_str() {
            // Same-origin redirect without metadata: followed.
            "/buckets/u/b/resolve/dir%2Fa%20b.txt" => {
                response(302, &[("location", "/buckets/u/b/resolve/moved.txt")], b"")
            }
            "/buckets/u/b/resolve/moved.txt" => {
                let link = format!(
                    "<https://huggingface.co/api/buckets/u/b/xet-read-token>; rel=\"xet-auth\", <http://{host}/v1/reconstructions/{hash}>; rel=\"xet-reconstruction-info\""
                );
                // Cross-origin redirect with metadata: not followed, read as is.
                response(
                    302,
                    &[
                        ("x-xet-hash", hash),
                        ("x-linked-size", "13000"),
                        ("link", &link),
                        ("location", "http://other.invalid/signed"),
                    ],
                    b"",
                )
            }
            "/buckets/u/b/resolve/plain.txt" => response(
                200,
                &[("x-xet-hash", hash), ("x-xet-refresh-route", "/api/buckets/u/b/xet-read-token")],
                b"0123456789",
            ),
            _ => response(404, &[("x-error-code", "EntryNotFound")], b""),
        }
    }))
    .await;
    let hub = HubClient::new(&fx.url(), Some("hf".into()), config(2)).unwrap();
    let id = BucketId::parse("u/b").unwrap();
    let r = hub.resolve_head(&id, "dir/a b.txt").await.unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.xet_hash.unwrap().to_hex(), hash);
    assert_eq!(r.size, Some(13000));
    assert_eq!(
        r.xet_auth_url.as_deref(),
        Some(format!("{}/api/buckets/u/b/xet-read-token", fx.url()).as_str())
    );
    assert_eq!(
        r.reconstruction_url,
        Some(format!("{}/v1/reconstructions/{hash}", fx.url()))
    );
    assert_eq!(r.location.as_deref(), Some("http://other.invalid/signed"));
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|q| q.method == "HEAD"));
    assert!(
        reqs.iter()
            .all(|q| q.header("accept-encoding") == Some("identity"))
    );

    // A plain 200: size from Content-Length, refresh route from the fallback header.
    let r = hub.resolve_head(&id, "plain.txt").await.unwrap();
    assert_eq!((r.status, r.size), (200, Some(10)));
    assert_eq!(
        r.xet_auth_url,
        Some(format!("{}/api/buckets/u/b/xet-read-token", fx.url()))
    );
    let err = hub.resolve_head(&id, "missing").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        err.http_failure().unwrap().error_code.as_deref(),
        Some("EntryNotFound")
    );
}

#[tokio::test]
async fn pager_stream_stops_at_the_first_error() {
    let fx = fixture(Arc::new(|req, _| {
        let host = req.header("host").unwrap().to_string();
        if req.path.contains("cursor=bad") {
            return response(500, &[], b"");
        }
        let link = format!("<http://{host}/api/buckets/u?cursor=bad>; rel=\"next\"");
        response(200, &[("link", &link)], INFO_LIST)
    }))
    .await;
    let hub = HubClient::new(&fx.url(), None, config(2)).unwrap();
    let mut stream = hub.list_buckets("u", None).unwrap().into_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.len(), 1);
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(stream.next().await.is_none());
    // 1 first page + 2 attempts on the failing page.
    assert_eq!(fx.requests().len(), 3);
}

const INFO_LIST: &[u8] =
    br#"[{"id":"u/b","private":true,"createdAt":"2026-11-25T00:00:00Z","size":5,"totalFiles":1}]"#;

#[tokio::test]
async fn read_timeouts_are_retryable_and_bounded() {
    let fx = fixture(Arc::new(|_, _| STALL.to_vec())).await;
    let mut cfg = config(2);
    cfg.read_timeout = Duration::from_millis(200);
    let hub = HubClient::new(&fx.url(), None, cfg).unwrap();
    let t0 = Instant::now();
    let err = hub
        .bucket_info(&BucketId::parse("u/b").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.fault(), Fault::Upstream);
    assert_eq!(fx.requests().len(), 2);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}
