//! `hugbucket serve` over S3, on both runtimes, next to a baseline measured in the same run:
//! a plain hyper server on loopback that streams the same bytes from memory (GET) or
//! discards them (PUT). Reports 1 GiB PUT and warm GET throughput as ratios to the baseline,
//! and 4 KiB PUT/GET/HEAD ops/s at concurrency 64 with p50/p99 latency.
//!
//! Run: `cargo build --release -p hugbucket && cargo bench -p hugbucket-bench --bench
//! s3_gateway`. Env: `HB_BIN` (default `target/release/hugbucket`), `S3_BENCH_MIB` (object
//! size, default 1024), `S3_BENCH_SECS` (seconds per small-object phase, default 5),
//! `S3_BENCH_CONCURRENCY` (default 64).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hugbucket_bench::load::sigv4::{SigV4Signer, UNSIGNED_PAYLOAD};
use hugbucket_bench::mb_per_s;
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

const PIECE: usize = 1 << 20;

struct Target {
    addr: SocketAddr,
    signer: Option<SigV4Signer>,
}

/// A body made of `data` (distinct pieces: the object does not deduplicate).
fn pieces(data: Arc<Vec<Bytes>>) -> Body {
    let n = data.len();
    let stream = futures::stream::iter((0..n).map(move |i| Ok(Frame::data(data[i].clone()))));
    BodyExt::boxed(StreamBody::new(stream))
}

fn empty() -> Body {
    BodyExt::boxed(Empty::new().map_err(|e| match e {}))
}

async fn request(
    c: &HttpClient,
    t: &Target,
    method: &str,
    path: &str,
    body: Body,
    len: Option<u64>,
) -> (u16, u64) {
    let host = t.addr.to_string();
    let mut headers = hyper::HeaderMap::new();
    headers.insert("host", host.parse().unwrap());
    if let Some(s) = &t.signer {
        s.sign(
            method,
            path,
            "",
            &mut headers,
            UNSIGNED_PAYLOAD,
            SystemTime::now(),
        )
        .expect("sign");
    }
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{host}{path}"));
    if let Some(h) = b.headers_mut() {
        h.extend(headers);
    }
    if let Some(n) = len {
        b = b.header("content-length", n);
    }
    let resp = c.request(b.body(body).unwrap()).await.expect("request");
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.expect("body").into_data() {
            n += d.len() as u64;
        }
    }
    (status, n)
}

/// Plain hyper on loopback: GET streams `size` bytes from memory, PUT discards the body.
async fn baseline_server(size: u64, data: Arc<Vec<Bytes>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let data = data.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let data = data.clone();
                        async move {
                            let n = if req.method() == hyper::Method::GET {
                                size
                            } else {
                                4096
                            };
                            let mut body = req.into_body();
                            while let Some(f) = body.frame().await {
                                let _ = f;
                            }
                            let out = if n < PIECE as u64 {
                                BodyExt::boxed(
                                    Full::new(data[0].slice(..n as usize)).map_err(|e| match e {}),
                                )
                            } else {
                                pieces(data)
                            };
                            let mut resp = hyper::Response::new(out);
                            resp.headers_mut().insert("content-length", n.into());
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

struct Serve {
    child: Child,
    addr: SocketAddr,
    signer: SigV4Signer,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve(bin: &PathBuf, runtime: &str) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--mode",
            "s3",
            "--runtime",
            runtime,
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--s3-listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hugbucket binary (set HB_BIN or build it in release)");
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let (mut key, mut secret) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "serve exited");
        if let Some(v) = line.trim().strip_prefix("AWS_ACCESS_KEY_ID=") {
            key = v.into();
        }
        if let Some(v) = line.trim().strip_prefix("AWS_SECRET_ACCESS_KEY=") {
            secret = v.into();
        }
        if line.contains("hugbucket is ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in r.lines() {});
    Serve {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        signer: SigV4Signer::new(key, secret),
        _dir: dir,
    }
}

/// Small-object phase: `conc` workers doing `method` on 4 KiB objects for `secs`.
async fn small_ops(
    c: &HttpClient,
    t: &Arc<Target>,
    method: &'static str,
    conc: usize,
    secs: u64,
) -> (f64, Duration, Duration) {
    let data = Bytes::from(vec![7u8; 4096]);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (c, t, data) = (c.clone(), t.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let path = format!("/bench/small/{w}-{}", i % 16);
                let s = Instant::now();
                let (status, _) = match method {
                    "PUT" => {
                        request(
                            &c,
                            &t,
                            "PUT",
                            &path,
                            BodyExt::boxed(Full::new(data.clone()).map_err(|e| match e {})),
                            Some(4096),
                        )
                        .await
                    }
                    m => request(&c, &t, m, &path, empty(), None).await,
                };
                assert!(status < 300, "{method} {path}: {status}");
                lat.push(s.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / secs as f64, pct(0.50), pct(0.99))
}

fn main() {
    let env = hugbucket_bench::env_number::<u64>;
    let (mib, secs, conc) = (
        env("S3_BENCH_MIB", 1024),
        env("S3_BENCH_SECS", 5),
        env("S3_BENCH_CONCURRENCY", 64) as usize,
    );
    let bin = std::env::var("HB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/hugbucket")
        });
    let size = mib << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http();
        let n = (size / PIECE as u64) as usize;
        let data: Arc<Vec<Bytes>> = Arc::new(
            (0..n)
                .map(|i| {
                    let mut piece = vec![0u8; PIECE];
                    blake3::Hasher::new()
                        .update(&(i as u64).to_le_bytes())
                        .finalize_xof()
                        .fill(&mut piece);
                    Bytes::from(piece)
                })
                .collect(),
        );

        let base = Target { addr: baseline_server(size, data.clone()).await, signer: None };
        // Best of three for the baseline (it shares the client's runtime).
        let (mut base_put, mut base_get) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            let t = Instant::now();
            request(&c, &base, "PUT", "/x", pieces(data.clone()), Some(size)).await;
            base_put = base_put.min(t.elapsed());
            let t = Instant::now();
            let (_, got) = request(&c, &base, "GET", "/x", empty(), None).await;
            assert_eq!(got, size);
            base_get = base_get.min(t.elapsed());
        }
        let s = size as usize;
        println!("S3 benchmark: {mib} MiB object, 4 KiB ops at concurrency {conc} for {secs} s each");
        println!("baseline (plain hyper on loopback): PUT {:.0} MB/s, GET {:.0} MB/s", mb_per_s(s, base_put), mb_per_s(s, base_get));
        for runtime in ["glommio", "tokio"] {
            let srv = start_serve(&bin, runtime);
            let t = Arc::new(Target { addr: srv.addr, signer: Some(srv.signer.clone()) });
            assert!(request(&c, &t, "PUT", "/bench", empty(), Some(0)).await.0 < 300);
            let s0 = Instant::now();
            let (st, _) = request(&c, &t, "PUT", "/bench/big", pieces(data.clone()), Some(size)).await;
            assert_eq!(st, 200);
            let put = s0.elapsed();
            request(&c, &t, "GET", "/bench/big", empty(), None).await; // warms the cache
            let s0 = Instant::now();
            let (_, got) = request(&c, &t, "GET", "/bench/big", empty(), None).await;
            assert_eq!(got, size);
            let get = s0.elapsed();
            println!(
                "{runtime:<8} PUT {:>6.0} MB/s ({:>5.1}% of baseline)  GET warm {:>6.0} MB/s ({:>5.1}% of baseline)",
                mb_per_s(s, put), 100.0 * base_put.as_secs_f64() / put.as_secs_f64(),
                mb_per_s(s, get), 100.0 * base_get.as_secs_f64() / get.as_secs_f64(),
            );
            for method in ["PUT", "GET", "HEAD"] {
                let (ops, p50, p99) = small_ops(&c, &t, method, conc, secs).await;
                println!("{runtime:<8} 4 KiB {method:<4} {ops:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
            }
        }
    });
}
