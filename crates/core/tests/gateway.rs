//! The gateway core against a real embedded hub (in-process, on a temp dir).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hugbucket_core::{
    ByteRange, ByteStream, CopyMetadata, CoreConfig, CoreError, Gateway, ListRequest, PutOptions,
    UpstreamFailure, UpstreamKind,
};
use hugbucket_hub::{FaultRule, HubConfig, RunningHub};
use hugbucket_upstream::{HubClient, RetryConfig, UpstreamConfig};

struct Env {
    hub: RunningHub,
    gw: Gateway,
    dir: tempfile::TempDir,
}

fn upstream_config() -> UpstreamConfig {
    UpstreamConfig {
        retry: RetryConfig {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            total_budget: Duration::from_secs(5),
            ..RetryConfig::default()
        },
        ..UpstreamConfig::default()
    }
}

/// CopyObject with `x-amz-metadata-directive: REPLACE` and a new content type.
fn replace_type(content_type: &str) -> CopyMetadata {
    CopyMetadata::Replace(PutOptions {
        content_type: Some(content_type.into()),
        ..Default::default()
    })
}

async fn gateway_for(hub: &RunningHub, state_dir: &std::path::Path) -> Gateway {
    gateway_with(hub, CoreConfig::new(state_dir.to_path_buf())).await
}

async fn gateway_with(hub: &RunningHub, config: CoreConfig) -> Gateway {
    let client =
        HubClient::new(&hub.url(), Some(hub.token().to_string()), upstream_config()).unwrap();
    Gateway::new(config, client).await.unwrap()
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("hub"));
    cfg.namespace = "tester".into();
    cfg.tokens = vec!["hf_core_test".into()];
    let hub = hugbucket_hub::start(cfg).await.unwrap();
    let gw = gateway_for(&hub, &dir.path().join("gw")).await;
    Env { hub, gw, dir }
}

fn random(len: usize, label: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(label.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// A body stream that yields `data` in pieces of `piece` bytes.
fn body(data: &[u8], piece: usize) -> ByteStream {
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(pieces))
}

async fn read_all(mut s: ByteStream) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    while let Some(p) = s.next().await {
        out.extend_from_slice(&p?);
    }
    Ok(out)
}

async fn get(gw: &Gateway, bucket: &str, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let r = gw.object(bucket, key).unwrap().get(range).await.unwrap();
    read_all(r.body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_lifecycle() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("alpha").await.unwrap();
    gw.create_bucket("beta").await.unwrap();
    assert!(matches!(
        gw.create_bucket("alpha").await,
        Err(CoreError::BucketAlreadyOwnedByYou(_))
    ));
    assert!(matches!(
        gw.create_bucket("Bad_Name").await,
        Err(CoreError::InvalidBucketName(_))
    ));
    assert!(matches!(
        gw.object("Bad_Name", "k"),
        Err(CoreError::InvalidBucketName(_))
    ));
    assert!(matches!(
        gw.object("alpha", ""),
        Err(CoreError::InvalidKey(_))
    ));
    let names: Vec<String> = gw
        .list_buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    gw.head_bucket("alpha").await.unwrap();
    assert!(matches!(
        gw.head_bucket("gamma").await,
        Err(CoreError::NoSuchBucket(_))
    ));
    gw.object("alpha", "k")
        .unwrap()
        .put(body(b"x", 1), PutOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        gw.delete_bucket("alpha").await,
        Err(CoreError::BucketNotEmpty(_))
    ));
    gw.object("alpha", "k").unwrap().delete().await.unwrap();
    gw.delete_bucket("alpha").await.unwrap();
    assert!(matches!(
        gw.head_bucket("alpha").await,
        Err(CoreError::NoSuchBucket(_))
    ));
    assert!(matches!(
        gw.object("nope", "k")
            .unwrap()
            .put(body(b"x", 1), PutOptions::default())
            .await,
        Err(CoreError::NoSuchBucket(_))
    ));
    assert!(matches!(
        gw.object("beta", "missing").unwrap().head().await,
        Err(CoreError::NoSuchKey(_))
    ));
    assert!(matches!(
        gw.object("nope", "missing").unwrap().head().await,
        Err(CoreError::NoSuchBucket(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_roundtrip_and_ranges() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("data").await.unwrap();
    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("line {i} of text\n").into_bytes())
        .collect();
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("empty", Vec::new(), 1),
        ("one", vec![7], 1),
        ("small", random(100_000, "small"), 4103),
        ("three-mib", random(3 << 20, "three"), 1 << 20),
        ("text", text, 65_536),
        ("big", random(70 << 20, "big"), 8 << 20),
    ];
    for (key, data, piece) in &cases {
        let meta = gw
            .object("data", key)
            .unwrap()
            .put(
                body(data, *piece),
                PutOptions {
                    content_type: Some("application/x-test".into()),
                    size_hint: Some(data.len() as u64),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(
            meta.xet_hash,
            hugbucket_engine::chunking::file_hash_of(data),
            "{key}"
        );
        assert_eq!(meta.etag, format!("\"{}-1\"", meta.xet_hash));
        let head = gw.object("data", key).unwrap().head().await.unwrap();
        assert_eq!(head.etag, meta.etag);
        assert_eq!(head.size, meta.size);
        assert_eq!(head.content_type.as_deref(), Some("application/x-test"));
        assert_eq!(get(gw, "data", key, None).await, *data, "{key}");
    }
    // Ranges at chunk, term and xorb boundaries and at the last byte.
    let big = &cases[5].1;
    let n = big.len() as u64;
    let bounds = hugbucket_engine::chunking::chunk_boundaries(big);
    let first_xorb_end = 64u64 << 20;
    let mut ranges = vec![
        (0, 0),
        (0, bounds[0] as u64 - 1),
        (bounds[0] as u64 - 1, bounds[0] as u64),
        (bounds[3] as u64, bounds[7] as u64 + 5),
        (first_xorb_end - 10, first_xorb_end + 10),
        (n - 1, n - 1),
        (12345, n - 1),
    ];
    // The actual cut between the two xorbs.
    let mut acc = 0u64;
    for w in bounds.windows(2) {
        if w[1] as u64 > first_xorb_end {
            acc = w[0] as u64;
            break;
        }
    }
    ranges.push((acc - 1, acc));
    for (a, b) in ranges {
        let got = get(gw, "data", "big", Some(ByteRange::FromTo(a, b))).await;
        assert_eq!(got, &big[a as usize..=b as usize], "range {a}-{b}");
    }
    assert_eq!(
        get(gw, "data", "big", Some(ByteRange::Suffix(1000))).await,
        &big[big.len() - 1000..]
    );
    assert_eq!(
        get(gw, "data", "big", Some(ByteRange::From(n - 3))).await,
        &big[big.len() - 3..]
    );
    assert_eq!(
        get(
            gw,
            "data",
            "small",
            Some(ByteRange::FromTo(99_990, 1 << 30))
        )
        .await,
        &cases[2].1[99_990..]
    );
    assert!(matches!(
        gw.object("data", "big").unwrap().get(Some(ByteRange::From(n))).await,
        Err(CoreError::InvalidRange { size }) if size == n
    ));
    assert!(matches!(
        gw.object("data", "empty")
            .unwrap()
            .get(Some(ByteRange::FromTo(0, 0)))
            .await,
        Err(CoreError::InvalidRange { size: 0 })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_and_failed_put_keep_the_old_version() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("bkt").await.unwrap();
    let v1 = random(300_000, "v1");
    gw.object("bkt", "k")
        .unwrap()
        .put(body(&v1, 65536), PutOptions::default())
        .await
        .unwrap();
    // A body that fails half-way.
    let v2 = random(300_000, "v2");
    let mut pieces: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::copy_from_slice(&v2[..150_000]))];
    pieces.push(Err(std::io::Error::other("client went away")));
    let failing: ByteStream = Box::pin(futures::stream::iter(pieces));
    assert!(matches!(
        gw.object("bkt", "k")
            .unwrap()
            .put(failing, PutOptions::default())
            .await,
        Err(CoreError::IncompleteBody(_))
    ));
    assert_eq!(get(gw, "bkt", "k", None).await, v1);
    // A body shorter than declared.
    assert!(matches!(
        gw.object("bkt", "k")
            .unwrap()
            .put(
                body(&v2[..10], 5),
                PutOptions {
                    size_hint: Some(11),
                    ..Default::default()
                }
            )
            .await,
        Err(CoreError::IncompleteBody(_))
    ));
    // The hub refusing shards (for the whole retry budget: 3 attempts) fails the PUT
    // with a typed retryable error; nothing changes.
    e.hub
        .faults()
        .push("shard_v2:500:3".parse::<FaultRule>().unwrap());
    let err = gw
        .object("bkt", "k")
        .unwrap()
        .put(body(&v2, 65536), PutOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(get(gw, "bkt", "k", None).await, v1);
    gw.object("bkt", "k")
        .unwrap()
        .put(body(&v2, 65536), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(get(gw, "bkt", "k", None).await, v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_prefix_delimiter_pagination_and_markers() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("lst").await.unwrap();
    let keys = [
        "a.txt",
        "dir/x",
        "dir/y",
        "dir/sub/z",
        "dir2/q",
        "dirz",
        "e f+g%h",
        "ünï/code",
        "zz",
    ];
    for k in keys {
        gw.object("lst", k)
            .unwrap()
            .put(body(k.as_bytes(), 3), PutOptions::default())
            .await
            .unwrap();
    }
    gw.object("lst", "empty-folder/")
        .unwrap()
        .put(body(b"", 1), PutOptions::default())
        .await
        .unwrap();
    let list = |prefix: &str, delim: Option<&str>, max: usize, token: Option<String>| {
        let req = ListRequest {
            prefix: prefix.into(),
            delimiter: delim.map(str::to_string),
            start_after: None,
            continuation_token: token,
            max_keys: max,
        };
        let gw = gw.clone();
        async move { gw.list_objects("lst", req).await.unwrap() }
    };
    let all = list("", None, 1000, None).await;
    let names: Vec<&str> = all.objects.iter().map(|o| o.key.as_str()).collect();
    let mut sorted = keys.to_vec();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(!all.is_truncated);

    let top = list("", Some("/"), 1000, None).await;
    let objs: Vec<&str> = top.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(objs, vec!["a.txt", "dirz", "e f+g%h", "zz"]);
    assert_eq!(
        top.common_prefixes,
        vec!["dir/", "dir2/", "empty-folder/", "ünï/"]
    );

    let d = list("dir/", Some("/"), 1000, None).await;
    assert_eq!(
        d.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        vec!["dir/x", "dir/y"]
    );
    assert_eq!(d.common_prefixes, vec!["dir/sub/"]);

    let partial = list("di", Some("/"), 1000, None).await;
    assert_eq!(
        partial
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        vec!["dirz"]
    );
    assert_eq!(partial.common_prefixes, vec!["dir/", "dir2/"]);

    let lexical = list("dir", None, 1000, None).await;
    assert_eq!(
        lexical
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        vec!["dir/sub/z", "dir/x", "dir/y", "dir2/q", "dirz"]
    );

    // Pagination, two at a time, over mixed objects and prefixes.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let p = list("", Some("/"), 2, token.clone()).await;
        assert!(p.objects.len() + p.common_prefixes.len() <= 2);
        seen.extend(p.objects.iter().map(|o| o.key.clone()));
        seen.extend(p.common_prefixes.iter().cloned());
        if !p.is_truncated {
            break;
        }
        token = p.next_continuation_token.clone();
        assert!(token.is_some());
    }
    seen.sort();
    let mut expect: Vec<String> = [
        "a.txt",
        "dirz",
        "e f+g%h",
        "zz",
        "dir/",
        "dir2/",
        "empty-folder/",
        "ünï/",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expect.sort();
    assert_eq!(seen, expect);

    let after = gw
        .list_objects(
            "lst",
            ListRequest {
                start_after: Some("dir/y".into()),
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        after.objects.first().map(|o| o.key.as_str()),
        Some("dir2/q")
    );
    assert!(matches!(
        gw.list_objects(
            "lst",
            ListRequest {
                continuation_token: Some("zz-not-hex".into()),
                max_keys: 5,
                ..Default::default()
            }
        )
        .await,
        Err(CoreError::InvalidArgument(_))
    ));
    // The folder object itself is readable as an empty object.
    assert_eq!(
        gw.object("lst", "empty-folder/")
            .unwrap()
            .head()
            .await
            .unwrap()
            .size,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_moves_no_bytes_and_delete_objects() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("src").await.unwrap();
    gw.create_bucket("dst").await.unwrap();
    let data = random(2 << 20, "copy");
    gw.object("src", "orig")
        .unwrap()
        .put(body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    let uploads_before = e.hub.stats().xorb_uploads.load(Ordering::Relaxed);
    let bytes_before = e.hub.stats().xorb_upload_bytes.load(Ordering::Relaxed);
    let fetch_before = e.hub.stats().xorb_range_bytes.load(Ordering::Relaxed);
    let m1 = gw
        .object("dst", "copied")
        .unwrap()
        .copy_from(&gw.object("src", "orig").unwrap(), CopyMetadata::Copy)
        .await
        .unwrap();
    let m2 = gw
        .object("src", "again")
        .unwrap()
        .copy_from(
            &gw.object("src", "orig").unwrap(),
            replace_type("text/plain"),
        )
        .await
        .unwrap();
    assert_eq!(
        e.hub.stats().xorb_uploads.load(Ordering::Relaxed),
        uploads_before
    );
    assert_eq!(
        e.hub.stats().xorb_upload_bytes.load(Ordering::Relaxed),
        bytes_before
    );
    assert_eq!(
        e.hub.stats().xorb_range_bytes.load(Ordering::Relaxed),
        fetch_before
    );
    assert_eq!(m1.xet_hash, m2.xet_hash);
    assert_eq!(get(gw, "dst", "copied", None).await, data);
    assert_eq!(
        gw.object("src", "again")
            .unwrap()
            .head()
            .await
            .unwrap()
            .content_type
            .as_deref(),
        Some("text/plain")
    );
    assert!(matches!(
        gw.object("dst", "x")
            .unwrap()
            .copy_from(&gw.object("src", "missing").unwrap(), CopyMetadata::Copy)
            .await,
        Err(CoreError::NoSuchKey(_))
    ));

    let results = gw
        .delete_objects(
            "src",
            &[
                "orig".into(),
                "again".into(),
                "never-existed".into(),
                "bad//key".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    for (k, r) in &results {
        if k == "bad//key" {
            assert!(matches!(r, Err(CoreError::InvalidKey(_))));
        } else {
            assert!(r.is_ok(), "{k}: {r:?}");
        }
    }
    assert!(matches!(
        gw.object("src", "orig").unwrap().head().await,
        Err(CoreError::NoSuchKey(_))
    ));
    // The copy survives the source's deletion.
    assert_eq!(get(gw, "dst", "copied", None).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_out_of_order_across_restart() {
    let e = env().await;
    e.gw.create_bucket("mpu").await.unwrap();
    let part = |n: u8| random(5 << 20 | (n as usize * 1000), &format!("part{n}"));
    let (p1, p2, p3) = (part(1), part(2), random(123_456, "last"));
    let id =
        e.gw.object("mpu", "obj")
            .unwrap()
            .create_multipart(PutOptions::default())
            .await
            .unwrap();
    let m3 =
        e.gw.object("mpu", "obj")
            .unwrap()
            .upload_part(&id, 3, body(&p3, 65536), None)
            .await
            .unwrap();
    let m1 =
        e.gw.object("mpu", "obj")
            .unwrap()
            .upload_part(&id, 1, body(&p1, 1 << 20), None)
            .await
            .unwrap();
    // Restart the gateway (drop it, reopen its state) between parts.
    let state_dir = e.dir.path().join("gw");
    drop(e.gw);
    let gw = gateway_for(&e.hub, &state_dir).await;
    let uploads = gw.list_multipart_uploads("mpu", "").await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].upload_id, id);
    // Same part number twice keeps the last.
    gw.object("mpu", "obj")
        .unwrap()
        .upload_part(&id, 2, body(&p3, 65536), None)
        .await
        .unwrap();
    let m2 = gw
        .object("mpu", "obj")
        .unwrap()
        .upload_part(&id, 2, body(&p2, 1 << 20), None)
        .await
        .unwrap();
    let parts = gw
        .object("mpu", "obj")
        .unwrap()
        .list_parts(&id)
        .await
        .unwrap();
    assert_eq!(
        parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(parts[1].etag, m2.etag);

    assert!(matches!(
        gw.object("mpu", "obj")
            .unwrap()
            .complete_multipart(&id, &[(2, m2.etag.clone()), (1, m1.etag.clone())], None)
            .await,
        Err(CoreError::InvalidPartOrder)
    ));
    assert!(matches!(
        gw.object("mpu", "obj")
            .unwrap()
            .complete_multipart(&id, &[(1, m2.etag.clone())], None)
            .await,
        Err(CoreError::InvalidPart(_))
    ));
    assert!(matches!(
        gw.object("mpu", "obj")
            .unwrap()
            .complete_multipart(
                &id,
                &[
                    (1, m1.etag.clone()),
                    (3, m3.etag.clone()),
                    (4, m3.etag.clone())
                ],
                None
            )
            .await,
        Err(CoreError::EntityTooSmall) | Err(CoreError::InvalidPart(_))
    ));
    assert!(matches!(
        gw.object("mpu", "obj")
            .unwrap()
            .complete_multipart(&id, &[(3, m3.etag.clone()), (4, "x".into())], None)
            .await,
        Err(CoreError::InvalidPart(_))
    ));
    let uploads_before = e.hub.stats().xorb_uploads.load(Ordering::Relaxed);
    let bytes_before = e.hub.stats().xorb_upload_bytes.load(Ordering::Relaxed);
    let parts = [
        (1, m1.etag.clone()),
        (2, m2.etag.clone()),
        (3, m3.etag.clone()),
    ];
    let done = gw
        .object("mpu", "obj")
        .unwrap()
        .complete_multipart(&id, &parts, None)
        .await
        .unwrap();
    // The one new xorb is the small sidecar holding the parts layout.
    assert!(e.hub.stats().xorb_upload_bytes.load(Ordering::Relaxed) - bytes_before < 4096);
    assert_eq!(
        e.hub.stats().xorb_uploads.load(Ordering::Relaxed),
        uploads_before + 1,
        "complete re-uploads nothing but the sidecar"
    );
    assert!(done.etag.ends_with("-3\""), "{}", done.etag);
    let again = gw
        .object("mpu", "obj")
        .unwrap()
        .complete_multipart(&id, &parts, None)
        .await
        .unwrap();
    assert_eq!(again.etag, done.etag);
    let whole: Vec<u8> = [&p1[..], &p2, &p3].concat();
    assert_eq!(done.size, whole.len() as u64);
    assert_eq!(get(&gw, "mpu", "obj", None).await, whole);
    assert_eq!(
        gw.object("mpu", "obj").unwrap().head().await.unwrap().etag,
        done.etag
    );
    let r = (5u64 << 20) - 5;
    assert_eq!(
        get(&gw, "mpu", "obj", Some(ByteRange::FromTo(r, r + 5_000_000))).await,
        &whole[r as usize..=(r + 5_000_000) as usize]
    );
    assert!(
        gw.list_multipart_uploads("mpu", "")
            .await
            .unwrap()
            .is_empty()
    );

    // Abort.
    let id2 = gw
        .object("mpu", "other")
        .unwrap()
        .create_multipart(PutOptions::default())
        .await
        .unwrap();
    gw.object("mpu", "other")
        .unwrap()
        .upload_part(&id2, 1, body(b"abc", 1), None)
        .await
        .unwrap();
    gw.object("mpu", "other")
        .unwrap()
        .abort_multipart(&id2)
        .await
        .unwrap();
    assert!(matches!(
        gw.object("mpu", "other").unwrap().list_parts(&id2).await,
        Err(CoreError::NoSuchUpload(_))
    ));
    assert!(matches!(
        gw.object("mpu", "other")
            .unwrap()
            .upload_part(&id2, 2, body(b"abc", 1), None)
            .await,
        Err(CoreError::NoSuchUpload(_))
    ));
    // A plain PUT over a multipart object drops the -N ETag.
    let m = gw
        .object("mpu", "obj")
        .unwrap()
        .put(body(b"plain", 2), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        gw.object("mpu", "obj").unwrap().head().await.unwrap().etag,
        m.etag
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_upstream_faults_are_retried_transparently() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("flaky").await.unwrap();
    let data = random(3 << 20, "flaky");
    // Two failures of each kind: fewer than the retry budget (3 attempts).
    for rule in [
        "xorb_upload:503:2",
        "batch:500:2",
        "paths_info:503:1",
        "xet_write_token:502:1",
    ] {
        e.hub.faults().push(rule.parse::<FaultRule>().unwrap());
    }
    gw.object("flaky", "k")
        .unwrap()
        .put(body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    for rule in [
        "fetch:503:2",
        "reconstruction_v2:500:2",
        "xet_read_token:500:1",
    ] {
        e.hub.faults().push(rule.parse::<FaultRule>().unwrap());
    }
    assert_eq!(get(gw, "flaky", "k", None).await, data);
    // A persistent failure surfaces as a typed retryable error, within a bounded time (on an
    // object whose reconstruction is not cached yet).
    gw.object("flaky", "k2")
        .unwrap()
        .put(body(&data[..1000], 100), PutOptions::default())
        .await
        .unwrap();
    e.hub
        .faults()
        .push("reconstruction_v2:503:100".parse::<FaultRule>().unwrap());
    let started = std::time::Instant::now();
    let err = gw
        .object("flaky", "k2")
        .unwrap()
        .get(None)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_stopped_mid_put_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("hub"));
    cfg.namespace = "tester".into();
    cfg.tokens = vec!["hf_core_test".into()];
    let hub = hugbucket_hub::start(cfg.clone()).await.unwrap();
    let addr = hub.local_addr();
    let gw = gateway_for(&hub, &dir.path().join("gw")).await;
    gw.create_bucket("stop").await.unwrap();
    let v1 = random(1 << 20, "v1");
    gw.object("stop", "k")
        .unwrap()
        .put(body(&v1, 65536), PutOptions::default())
        .await
        .unwrap();

    // A slow 200 MiB body: the hub goes away while it is being ingested.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let slow: ByteStream = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let put = tokio::spawn({
        let gw = gw.clone();
        async move {
            gw.object("stop", "k")
                .unwrap()
                .put(slow, PutOptions::default())
                .await
        }
    });
    let feeder = tokio::spawn(async move {
        for i in 0..200u32 {
            let piece = Bytes::from(random(1 << 20, &format!("v2-{i}")));
            if tx.send(Ok(piece)).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    hub.shutdown().await;
    let result = tokio::time::timeout(Duration::from_secs(60), put)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "the PUT must fail when the hub is gone");
    feeder.abort();

    // Restart on the same data dir and port: the previous version is intact.
    cfg.listen = addr;
    let hub = hugbucket_hub::start(cfg).await.unwrap();
    let gw = gateway_for(&hub, &dir.path().join("gw2")).await;
    assert_eq!(get(&gw, "stop", "k", None).await, v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reupload_of_existing_content_sends_no_xorb_bytes() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("dedup").await.unwrap();
    let data = random(5 << 20, "dedup");
    gw.object("dedup", "first")
        .unwrap()
        .put(body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    let stats = e.hub.stats();
    let (up, bytes, existing) = (
        stats.xorb_uploads.load(Ordering::Relaxed),
        stats.xorb_upload_bytes.load(Ordering::Relaxed),
        stats.xorb_uploads_existing.load(Ordering::Relaxed),
    );
    let hits = stats.dedup_hits.load(Ordering::Relaxed);
    // Another gateway (no shared session state): only the CAS knows the content.
    let other = gateway_for(&e.hub, &e.dir.path().join("other")).await;
    let meta = other
        .object("dedup", "second")
        .unwrap()
        .put(body(&data, 777_777), PutOptions::default())
        .await
        .unwrap();
    assert!(
        stats.dedup_hits.load(Ordering::Relaxed) > hits,
        "the first chunk's query hit"
    );
    assert_eq!(
        stats.xorb_uploads.load(Ordering::Relaxed),
        up,
        "no new xorb"
    );
    assert_eq!(stats.xorb_upload_bytes.load(Ordering::Relaxed), bytes);
    assert_eq!(
        stats.xorb_uploads_existing.load(Ordering::Relaxed),
        existing,
        "no xorb bytes sent at all"
    );
    assert_eq!(
        meta.xet_hash,
        gw.object("dedup", "first")
            .unwrap()
            .head()
            .await
            .unwrap()
            .xet_hash
    );
    assert_eq!(get(&other, "dedup", "second", None).await, data);
}

async fn cached_gateway(hub: &RunningHub, dir: &std::path::Path) -> Gateway {
    let client =
        HubClient::new(&hub.url(), Some(hub.token().to_string()), upstream_config()).unwrap();
    let mut cfg = CoreConfig::new(dir.join("state"));
    cfg.cache_dir = Some(dir.join("cache"));
    cfg.cache_capacity = 512 << 20;
    Gateway::new(cfg, client).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_gets_fetch_nothing_upstream_even_after_restart() {
    let e = env().await;
    let dir = e.dir.path().join("cached");
    let gw = cached_gateway(&e.hub, &dir).await;
    gw.create_bucket("warm").await.unwrap();
    let data = random(70 << 20, "warm");
    gw.object("warm", "obj")
        .unwrap()
        .put(body(&data, 8 << 20), PutOptions::default())
        .await
        .unwrap();
    let fetches = || e.hub.stats().xorb_range_fetches.load(Ordering::Relaxed);
    let before = fetches();
    assert_eq!(get(&gw, "warm", "obj", None).await, data);
    let cold = fetches() - before;
    assert!(cold >= 2, "a 70 MiB object spans two xorbs: {cold} fetches");
    assert_eq!(get(&gw, "warm", "obj", None).await, data);
    let r = (10 << 20, (65 << 20) + 7);
    assert_eq!(
        get(&gw, "warm", "obj", Some(ByteRange::FromTo(r.0, r.1))).await,
        &data[r.0 as usize..=r.1 as usize]
    );
    assert_eq!(fetches() - before, cold, "warm reads fetch nothing");
    let stats = gw.cache().unwrap().stats();
    assert!(stats.hits > 0);
    gw.cache().unwrap().flush().unwrap();
    drop(gw);

    let gw = cached_gateway(&e.hub, &dir).await;
    assert_eq!(get(&gw, "warm", "obj", None).await, data);
    assert_eq!(fetches() - before, cold, "still warm after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_gets_fetch_each_range_once() {
    let e = env().await;
    let gw = cached_gateway(&e.hub, &e.dir.path().join("cached")).await;
    gw.create_bucket("cold").await.unwrap();
    let data = random(20 << 20, "cold");
    gw.object("cold", "obj")
        .unwrap()
        .put(body(&data, 8 << 20), PutOptions::default())
        .await
        .unwrap();
    let before = e.hub.stats().xorb_range_fetches.load(Ordering::Relaxed);
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { get(&gw, "cold", "obj", None).await })
        })
        .collect();
    for r in readers {
        assert!(r.await.unwrap() == data);
    }
    let fetched = e.hub.stats().xorb_range_fetches.load(Ordering::Relaxed) - before;
    assert_eq!(fetched, 1, "one term, one fetch for 16 readers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_cached_but_our_writes_are_visible_at_once() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("meta").await.unwrap();
    gw.object("meta", "k")
        .unwrap()
        .put(body(b"one", 1), PutOptions::default())
        .await
        .unwrap();
    let calls = || e.hub.stats().route_count(hugbucket_hub::Route::PathsInfo);
    let before = calls();
    for _ in 0..5 {
        assert_eq!(
            gw.object("meta", "k").unwrap().head().await.unwrap().size,
            3
        );
    }
    assert_eq!(
        calls() - before,
        0,
        "the node knows what its own PUT wrote: HEAD costs no Hub call"
    );
    gw.object("meta", "k")
        .unwrap()
        .put(body(b"three", 2), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        gw.object("meta", "k").unwrap().head().await.unwrap().size,
        5
    );
    assert_eq!(get(gw, "meta", "k", None).await, b"three");
    gw.object("meta", "k")
        .unwrap()
        .copy_from(&gw.object("meta", "k").unwrap(), replace_type("text/x"))
        .await
        .unwrap();
    assert_eq!(
        gw.object("meta", "k")
            .unwrap()
            .head()
            .await
            .unwrap()
            .content_type
            .as_deref(),
        Some("text/x")
    );
    gw.object("meta", "k").unwrap().delete().await.unwrap();
    assert!(matches!(
        gw.object("meta", "k").unwrap().head().await,
        Err(CoreError::NoSuchKey(_))
    ));
}

/// A one-piece body that records the name of the thread that reads it (the thread the
/// PUT's ingest runs on).
fn body_reporting_thread(data: &'static [u8]) -> (ByteStream, Arc<Mutex<Option<String>>>) {
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let mut sent = false;
    let stream = futures::stream::poll_fn(move |_| {
        let name = std::thread::current().name().map(str::to_string);
        record
            .lock()
            .unwrap()
            .get_or_insert_with(|| name.unwrap_or_default());
        let piece = (!sent).then(|| Ok(Bytes::from_static(data)));
        sent = true;
        std::task::Poll::Ready(piece)
    });
    (Box::pin(stream), seen)
}

/// With key shards, every call about an object runs on its owner's pinned runtime
/// (counted there; bucket-wide calls count for no shard), and concurrent writers and
/// readers of one key leave the metadata cache agreeing with the Hub (commits are
/// ordered per key; a lookup racing a write is never cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_shards_own_their_keys_and_order_writes() {
    let e = env().await;
    let mut cfg = CoreConfig::new(e.dir.path().join("sharded"));
    cfg.key_shard_cpus = vec![0, 0, 0];
    cfg.metadata_ttl = Duration::from_secs(3600);
    let gw = gateway_with(&e.hub, cfg).await;
    assert_eq!(gw.shard_count(), 3);
    assert_eq!(gw.shard_runtimes().len(), 3);
    gw.create_bucket("own").await.unwrap();

    let keys: Vec<String> = (0..12).map(|i| format!("dir/key-{i}")).collect();
    for k in &keys {
        let obj = gw.object("own", k).unwrap();
        let (body, seen) = body_reporting_thread(b"owned");
        obj.put(body, PutOptions::default()).await.unwrap();
        assert_eq!(
            seen.lock().unwrap().as_deref(),
            Some(format!("hugbucket-key-{}", obj.owner()).as_str()),
            "{k}"
        );
    }
    gw.list_objects("own", ListRequest::default())
        .await
        .unwrap();
    let calls = gw.shard_calls();
    assert_eq!(calls.iter().sum::<u64>(), 12);
    for (i, n) in calls.iter().enumerate() {
        let owned = keys
            .iter()
            .filter(|k| gw.object("own", k).unwrap().owner() == i)
            .count() as u64;
        assert_eq!(*n, owned, "shard {i} ran the calls of exactly its keys");
    }

    // Writers and readers of one key race; afterwards the cached answer is the Hub's.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let obj = gw.object("own", "hot").unwrap();
        tasks.push(tokio::spawn(async move {
            let data = vec![i; 100 + usize::from(i)];
            obj.put(body(&data, 7), PutOptions::default())
                .await
                .map(drop)
        }));
        let obj = gw.object("own", "hot").unwrap();
        tasks.push(tokio::spawn(async move {
            match obj.head().await {
                Ok(_) | Err(CoreError::NoSuchKey(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let cached = gw.object("own", "hot").unwrap().head().await.unwrap();
    let fresh = gateway_for(&e.hub, &e.dir.path().join("fresh")).await;
    let truth = fresh.object("own", "hot").unwrap().head().await.unwrap();
    assert_eq!(cached.xet_hash, truth.xet_hash);
    assert_eq!(cached.size, truth.size);
    let got = get(&gw, "own", "hot", None).await;
    assert_eq!(got.len() as u64, truth.size);
    assert!(got.iter().all(|&b| usize::from(b) + 100 == got.len()));
}

/// Core calls can be awaited from an executor that is not tokio at all (here the
/// `futures` crate's, on a plain thread, as a glommio core awaits them): the core runs
/// them on its own runtimes, with key shards and without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_can_be_awaited_from_any_executor() {
    let e = env().await;
    let mut cfg = CoreConfig::new(e.dir.path().join("sharded"));
    cfg.key_shard_cpus = vec![0, 0];
    let sharded = gateway_with(&e.hub, cfg).await;
    let plain = e.gw.clone();
    for (name, gw) in [("sharded", sharded), ("plain", plain)] {
        let bucket = format!("any-{name}");
        let (before, b) = (gw.shard_calls(), bucket.clone());
        let out = std::thread::spawn(move || {
            assert!(tokio::runtime::Handle::try_current().is_err());
            futures::executor::block_on(async {
                gw.create_bucket(&b).await?;
                let obj = gw.object(&b, "k")?;
                obj.put(body(b"from anywhere", 4), PutOptions::default())
                    .await?;
                let got = read_all(obj.get(None).await?.body).await.unwrap();
                let all = ListRequest {
                    max_keys: 1000,
                    ..ListRequest::default()
                };
                let listed = gw.list_objects(&b, all).await?;
                obj.delete().await?;
                Ok::<_, CoreError>((got, listed.objects.len(), gw.shard_calls()))
            })
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(out.0, b"from anywhere", "{name}");
        assert_eq!(out.1, 1, "{name}");
        let ran: u64 = out.2.iter().sum::<u64>() - before.iter().sum::<u64>();
        // put, get and delete on the owner; create and list are bucket-wide.
        assert_eq!(ran, if name == "sharded" { 3 } else { 0 }, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_whose_terms_share_a_range_stream_without_deadlock() {
    // 64 copies of the same 1 MiB: 64 terms over the same xorb range. With the cache, the
    // readers of those terms share one fetch; none may wait on another's channel.
    let e = env().await;
    let gw = cached_gateway(&e.hub, &e.dir.path().join("cached")).await;
    gw.create_bucket("rep").await.unwrap();
    let piece = random(1 << 20, "repeated");
    let data: Vec<u8> = piece.iter().copied().cycle().take(64 << 20).collect();
    gw.object("rep", "obj")
        .unwrap()
        .put(body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        let got = tokio::time::timeout(Duration::from_secs(60), get(&gw, "rep", "obj", None))
            .await
            .expect("GET of repeated content must not stall");
        assert!(got == data);
    }
    let r = (5 << 20) + 3;
    let got = get(
        &gw,
        "rep",
        "obj",
        Some(ByteRange::FromTo(r, r + (10 << 20))),
    )
    .await;
    assert!(got == data[r as usize..=(r + (10 << 20)) as usize]);
}

// ------------------------------------------------------------------ fault injection

/// A gateway that caches neither metadata nor reconstructions, so that every GET asks the
/// hub again (each fault below must be met by a real request).
async fn uncached_gateway(hub: &RunningHub, dir: &std::path::Path, cache: bool) -> Gateway {
    let client =
        HubClient::new(&hub.url(), Some(hub.token().to_string()), upstream_config()).unwrap();
    let mut cfg = CoreConfig::new(dir.join("state"));
    cfg.metadata_ttl = Duration::ZERO;
    cfg.reconstruction_ttl = Duration::ZERO;
    if cache {
        cfg.cache_dir = Some(dir.join("cache"));
        cfg.cache_capacity = 256 << 20;
    }
    Gateway::new(cfg, client).await.unwrap()
}

fn push(hub: &RunningHub, rule: &str) {
    hub.faults().push(rule.parse::<FaultRule>().unwrap());
}

fn route_count(hub: &RunningHub, name: &str) -> u64 {
    hub.stats()
        .route_count(hugbucket_hub::Route::from_name(name).unwrap())
}

/// Reads a GET body to its end or its first error: (bytes received, error).
async fn read_until_error(mut s: ByteStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    while let Some(p) = s.next().await {
        match p {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Requests a call needs under `action`: delays and trickles cost no extra request, the
/// other faults one per failure.
fn expected_requests(action: &str) -> u64 {
    if action.starts_with("delay") || action.starts_with("trickle") {
        1
    } else if action == "503:2" || action == "502:2" || action.ends_with(":2") {
        3
    } else {
        2
    }
}

/// Every kind of transient fault on every route a PUT uses is absorbed: the PUT succeeds,
/// the faulty route was really hit (its request count grew past the PUT's own needs), and
/// the object reads back byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_on_put_routes_are_absorbed() {
    let e = env().await;
    e.gw.create_bucket("putf").await.unwrap();
    let routes = ["xet_write_token", "xorb_upload", "shard_v2", "batch"];
    let actions = [
        "503:2",
        "500:1",
        "reset=0:1",
        "reset=3:1",
        "truncate=2:1",
        "delay=150ms:2",
        "trickle=2000:1",
        "expired:1",
    ];
    for (i, action) in actions.iter().enumerate() {
        for route in routes {
            // `expired` is a CAS answer (xet token); the token and batch routes take the
            // Hub token, whose 401 is not transient.
            if (route == "xet_write_token" || route == "batch") && *action == "expired:1" {
                continue;
            }
            // Each attempt with a fresh gateway (fresh token and API caches) and distinct
            // content (no dedup against earlier rounds).
            let gw =
                uncached_gateway(&e.hub, &e.dir.path().join(format!("g{i}{route}")), false).await;
            let data = random(600_000, &format!("put-{i}-{route}"));
            let key = format!("k-{i}-{route}");
            let before = route_count(&e.hub, route);
            push(&e.hub, &format!("{route}:{action}"));
            let meta = gw
                .object("putf", &key)
                .unwrap()
                .put(body(&data, 100_000), PutOptions::default())
                .await
                .unwrap_or_else(|err| panic!("{route}:{action}: {err:?}"));
            assert_eq!(meta.size, data.len() as u64);
            let hits = route_count(&e.hub, route) - before;
            let needed = expected_requests(action);
            assert!(hits >= needed, "{route}:{action}: {hits} requests");
            assert_eq!(get(&gw, "putf", &key, None).await, data, "{route}:{action}");
            e.hub.faults().clear();
        }
    }
}

/// Persistent failures of the PUT routes surface as retryable errors and never leave a
/// partially visible object: a new key stays absent, an existing key keeps its old bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_put_faults_fail_retryably_and_change_nothing() {
    let e = env().await;
    let gw = uncached_gateway(&e.hub, &e.dir.path().join("g"), false).await;
    gw.create_bucket("putp").await.unwrap();
    let old = random(300_000, "old");
    gw.object("putp", "existing")
        .unwrap()
        .put(body(&old, 65536), PutOptions::default())
        .await
        .unwrap();
    for (i, rule) in [
        "xorb_upload:503",
        "xorb_upload:reset=0",
        "shard_v2:503",
        "shard_v2:truncate=1",
        "batch:503",
        "batch:reset=0",
        "xet_write_token:503",
        "xorb_upload:expired",
    ]
    .iter()
    .enumerate()
    {
        // Fresh content and a fresh gateway (no cached token) each time: nothing
        // deduplicates against an earlier attempt, every route is really called.
        let data = random(400_000, &format!("persistent-{i}"));
        let gw = uncached_gateway(&e.hub, &e.dir.path().join(format!("g{i}")), false).await;
        push(&e.hub, rule);
        for key in ["new", "existing"] {
            let err = match gw
                .object("putp", key)
                .unwrap()
                .put(body(&data, 65536), PutOptions::default())
                .await
            {
                Err(err) => err,
                Ok(m) => panic!("{rule}: {key}: the PUT succeeded: {m:?}"),
            };
            if rule.ends_with("expired") {
                // Refreshed once, refused again: the credentials are refused.
                assert!(matches!(
                    err,
                    CoreError::Upstream(UpstreamFailure {
                        kind: UpstreamKind::Unauthorized,
                        ..
                    })
                ));
            } else {
                assert!(err.is_retryable(), "{rule}: {err:?}");
            }
        }
        e.hub.faults().clear();
        if rule.starts_with("batch:reset") {
            // The hub applied the registration but its answer was lost: the outcome is
            // unknown to the client (as after a timeout), yet each key shows one complete
            // version, old or new, never a mix.
            assert_eq!(get(&gw, "putp", "new", None).await, data, "{rule}");
            let now = get(&gw, "putp", "existing", None).await;
            assert!(now == data || now == old, "{rule}");
            gw.object("putp", "new").unwrap().delete().await.unwrap();
            gw.object("putp", "existing")
                .unwrap()
                .put(body(&old, 65536), PutOptions::default())
                .await
                .unwrap();
            continue;
        }
        assert!(
            matches!(
                gw.object("putp", "new").unwrap().head().await,
                Err(CoreError::NoSuchKey(_))
            ),
            "{rule}: the failed PUT is not visible"
        );
        let listed = gw
            .list_objects(
                "putp",
                ListRequest {
                    max_keys: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            listed
                .objects
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["existing"],
            "{rule}"
        );
        assert_eq!(get(&gw, "putp", "existing", None).await, old, "{rule}");
    }
    // With the faults gone the same PUT works.
    let data = random(400_000, "after");
    gw.object("putp", "new")
        .unwrap()
        .put(body(&data, 65536), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(get(&gw, "putp", "new", None).await, data);
}

/// Transient faults on the GET routes (token, reconstruction, xorb range fetch) are retried
/// (a broken fetch resumes where it stopped) and the bytes are identical, for whole and
/// ranged reads, with and without the chunk cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_on_get_routes_are_absorbed() {
    let e = env().await;
    e.gw.create_bucket("getf").await.unwrap();
    let data = random(3 << 20, "get-faults");
    e.gw.object("getf", "k")
        .unwrap()
        .put(body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    let range = (1_000_003u64, 2_500_000u64);
    let want_range = &data[range.0 as usize..=range.1 as usize];
    let cases: &[(&str, &str)] = &[
        ("fetch", "503:2"),
        ("fetch", "reset=0:1"),
        ("fetch", "reset=100000:2"),
        ("fetch", "truncate=0:1"),
        ("fetch", "truncate=777777:2"),
        ("fetch", "delay=200ms:1"),
        ("fetch", "trickle=4000000:1"),
        ("reconstruction_v2", "503:2"),
        ("reconstruction_v2", "reset=10:1"),
        ("reconstruction_v2", "truncate=10:1"),
        ("reconstruction_v2", "expired:1"),
        ("reconstruction_v2", "delay=100ms:1"),
        ("xet_read_token", "502:2"),
        ("xet_read_token", "truncate=5:1"),
        ("paths_info", "503:1"),
    ];
    for (n, (route, action)) in cases.iter().enumerate() {
        for cache in [false, true] {
            for ranged in [false, true] {
                let dir = e.dir.path().join(format!("g{n}-{cache}-{ranged}"));
                let gw = uncached_gateway(&e.hub, &dir, cache).await;
                let tokens = route_count(&e.hub, "xet_read_token");
                let before = route_count(&e.hub, route);
                push(&e.hub, &format!("{route}:{action}"));
                let what = format!("{route}:{action} cache={cache} ranged={ranged}");
                if ranged {
                    let r = ByteRange::FromTo(range.0, range.1);
                    assert!(get(&gw, "getf", "k", Some(r)).await == want_range, "{what}");
                } else {
                    assert!(get(&gw, "getf", "k", None).await == data, "{what}");
                }
                assert!(
                    route_count(&e.hub, route) - before >= expected_requests(action),
                    "{what}: fault not hit"
                );
                if *action == "expired:1" {
                    // The token was fetched again after the 401.
                    assert!(
                        route_count(&e.hub, "xet_read_token") - tokens >= 2,
                        "{what}"
                    );
                }
                e.hub.faults().clear();
            }
        }
    }
}

/// Faults on the GET path that outlast the retry budget: before the response starts they
/// are retryable errors; once it has started the body ends with an error before its last
/// byte, so no client ever takes a short or wrong body for a complete one. A xorb corrupted
/// on the hub's disk is caught by the file hash check (and not left in the chunk cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_get_faults_never_yield_a_complete_looking_body() {
    let e = env().await;
    e.gw.create_bucket("getp").await.unwrap();
    let data = random(2 << 20, "get-persistent");
    e.gw.object("getp", "k")
        .unwrap()
        .put(body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    for (n, rule) in [
        "reconstruction_v2:503",
        "reconstruction_v2:truncate=5",
        "xet_read_token:503",
        "fetch:503",
        "fetch:truncate=100000",
        "fetch:reset=100000",
        "fetch:truncate=0",
    ]
    .iter()
    .enumerate()
    {
        for cache in [false, true] {
            let gw =
                uncached_gateway(&e.hub, &e.dir.path().join(format!("p{n}{cache}")), cache).await;
            push(&e.hub, rule);
            match gw.object("getp", "k").unwrap().get(None).await {
                Err(err) => assert!(err.is_retryable(), "{rule}: {err:?}"),
                Ok(r) => {
                    assert_eq!(r.meta.size, data.len() as u64);
                    let (got, err) = read_until_error(r.body).await;
                    assert!(err.is_some(), "{rule}: the body must end with an error");
                    assert!(got.len() < data.len(), "{rule}: {} bytes", got.len());
                    assert_eq!(got, data[..got.len()], "{rule}: the bytes sent are right");
                }
            }
            e.hub.faults().clear();
            // Nothing wrong was cached: the next read is complete and correct.
            assert!(get(&gw, "getp", "k", None).await == data, "{rule}");
        }
    }

    // Flip one byte of the stored xorb (incompressible data: stored raw, so the chunk
    // still decodes, to the wrong bytes).
    let xorbs = e.dir.path().join("hub").join("xorbs");
    let mut files: Vec<_> = std::fs::read_dir(&xorbs)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xorb"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut originals = Vec::new();
    for f in &files {
        let mut bytes = std::fs::read(f).unwrap();
        originals.push(bytes.clone());
        bytes[1000] ^= 0x40;
        std::fs::write(f, &bytes).unwrap();
    }
    for cache in [false, true] {
        let gw = uncached_gateway(&e.hub, &e.dir.path().join(format!("c{cache}")), cache).await;
        let r = gw.object("getp", "k").unwrap().get(None).await.unwrap();
        let (got, err) = read_until_error(r.body).await;
        let err = err.expect("a corrupted object must not be served complete");
        assert!(err.to_string().contains("hash"), "{err}");
        assert!(got.len() < data.len());
        if cache {
            // The corrupt bytes were dropped from the cache: with the xorb repaired, the
            // next read is right.
            for (f, orig) in files.iter().zip(&originals) {
                std::fs::write(f, orig).unwrap();
            }
            assert!(get(&gw, "getp", "k", None).await == data);
        }
    }
}

/// A gateway with its own state over `hub`: one node of a fleet.
async fn node(hub: &RunningHub, dir: &std::path::Path, interval: Duration) -> Gateway {
    let client =
        HubClient::new(&hub.url(), Some(hub.token().to_string()), upstream_config()).unwrap();
    let mut cfg = CoreConfig::new(dir.to_path_buf());
    cfg.metadata_ttl = Duration::ZERO;
    cfg.part_record_interval = interval;
    Gateway::new(cfg, client).await.unwrap()
}

/// Multipart state lives in the bucket: an upload created on one node takes parts through
/// two others, is listed and completed anywhere, and Complete moves no data bytes; a
/// retried Complete through yet another node answers the same object; an abort through
/// another node than the creator's removes every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_state_is_shared_by_every_node() {
    let e = env().await;
    let interval = Duration::from_millis(200);
    let a = node(&e.hub, &e.dir.path().join("a"), interval).await;
    let b = node(&e.hub, &e.dir.path().join("b"), interval).await;
    let c = node(&e.hub, &e.dir.path().join("c"), interval).await;
    a.create_bucket("fleet").await.unwrap();
    let p1 = random(5 << 20, "fleet1");
    let p2 = random((5 << 20) + 17, "fleet2");
    let p3 = random(70_000, "fleet3");
    let id = a
        .object("fleet", "big/obj")
        .unwrap()
        .create_multipart(PutOptions::default())
        .await
        .unwrap();
    let m2 = c
        .object("fleet", "big/obj")
        .unwrap()
        .upload_part(&id, 2, body(&p2, 1 << 20), None)
        .await
        .unwrap();
    let m1 = b
        .object("fleet", "big/obj")
        .unwrap()
        .upload_part(&id, 1, body(&p1, 1 << 20), None)
        .await
        .unwrap();
    let m3 = c
        .object("fleet", "big/obj")
        .unwrap()
        .upload_part(&id, 3, body(&p3, 4096), None)
        .await
        .unwrap();
    let listed = a
        .object("fleet", "big/obj")
        .unwrap()
        .list_parts(&id)
        .await
        .unwrap();
    let seen: Vec<(u32, String, u64)> = listed
        .iter()
        .map(|p| (p.part_number, p.etag.clone(), p.size))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, m1.etag.clone(), p1.len() as u64),
            (2, m2.etag.clone(), p2.len() as u64),
            (3, m3.etag.clone(), p3.len() as u64),
        ]
    );
    let uploads = c.list_multipart_uploads("fleet", "big/").await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        (uploads[0].upload_id.as_str(), uploads[0].key.as_str()),
        (id.as_str(), "big/obj")
    );
    assert!(
        c.list_multipart_uploads("fleet", "other")
            .await
            .unwrap()
            .is_empty()
    );
    // Another key's name does not open this upload anywhere.
    assert!(matches!(
        b.object("fleet", "big/other")
            .unwrap()
            .list_parts(&id)
            .await,
        Err(CoreError::NoSuchUpload(_))
    ));
    assert!(matches!(
        a.object("fleet", "big/other")
            .unwrap()
            .upload_part(&id, 4, body(b"x", 1), None)
            .await,
        Err(CoreError::NoSuchUpload(_))
    ));

    let parts = [
        (1, m1.etag.clone()),
        (2, m2.etag.clone()),
        (3, m3.etag.clone()),
    ];
    let bytes_before = e.hub.stats().xorb_upload_bytes.load(Ordering::Relaxed);
    let done = b
        .object("fleet", "big/obj")
        .unwrap()
        .complete_multipart(&id, &parts, None)
        .await
        .unwrap();
    // No part data moves: the only xorb is the object's small sidecar (its part sizes).
    let sent = e.hub.stats().xorb_upload_bytes.load(Ordering::Relaxed) - bytes_before;
    assert!(sent < 4096, "complete uploaded {sent} xorb bytes");
    let whole = [&p1[..], &p2, &p3].concat();
    assert_eq!(done.size, whole.len() as u64);
    assert_eq!(get(&a, "fleet", "big/obj", None).await, whole);
    assert_eq!(get(&c, "fleet", "big/obj", None).await, whole);
    // The upload is gone everywhere, its records with it.
    assert!(
        a.list_multipart_uploads("fleet", "")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        c.object("fleet", "big/obj").unwrap().list_parts(&id).await,
        Err(CoreError::NoSuchUpload(_))
    ));
    let left = a
        .hub()
        .list_tree(
            &hugbucket_upstream::BucketId::new("tester", "fleet").unwrap(),
            Some(".hugbucket/uploads"),
            Some(true),
        )
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert!(left.is_empty(), "records left behind: {left:?}");
    // A retried Complete (the first answer was lost) through another node.
    let again = c
        .object("fleet", "big/obj")
        .unwrap()
        .complete_multipart(&id, &parts, None)
        .await
        .unwrap();
    assert_eq!((again.xet_hash, again.size), (done.xet_hash, done.size));
    // ... but not with other parts.
    assert!(matches!(
        c.object("fleet", "big/obj")
            .unwrap()
            .complete_multipart(&id, &parts[..1], None)
            .await,
        Err(CoreError::NoSuchUpload(_))
    ));

    // Abort through C of an upload created on A with a part taken by B.
    let id2 = a
        .object("fleet", "gone")
        .unwrap()
        .create_multipart(PutOptions::default())
        .await
        .unwrap();
    b.object("fleet", "gone")
        .unwrap()
        .upload_part(&id2, 1, body(b"abc", 1), None)
        .await
        .unwrap();
    c.object("fleet", "gone")
        .unwrap()
        .abort_multipart(&id2)
        .await
        .unwrap();
    for n in [&a, &b, &c] {
        assert!(matches!(
            n.object("fleet", "gone").unwrap().list_parts(&id2).await,
            Err(CoreError::NoSuchUpload(_))
        ));
        assert!(matches!(
            n.object("fleet", "gone")
                .unwrap()
                .complete_multipart(&id2, &[(1, m1.etag.clone())], None)
                .await,
            Err(CoreError::NoSuchUpload(_))
        ));
    }
    assert!(matches!(
        a.object("fleet", "gone").unwrap().head().await,
        Err(CoreError::NoSuchKey(_))
    ));
}

/// Parts taken concurrently by one node share their `/batch` calls: many parts cost a
/// couple of calls, and parts the node already knows the upload of cost no lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_records_are_coalesced_into_few_hub_calls() {
    let e = env().await;
    let a = node(&e.hub, &e.dir.path().join("a"), Duration::from_millis(500)).await;
    let b = node(&e.hub, &e.dir.path().join("b"), Duration::from_millis(500)).await;
    a.create_bucket("budget").await.unwrap();
    let id = a
        .object("budget", "k")
        .unwrap()
        .create_multipart(PutOptions::default())
        .await
        .unwrap();
    let (batches, lookups) = (
        route_count(&e.hub, "batch"),
        route_count(&e.hub, "paths_info"),
    );
    let parts = 24u32;
    let uploads = (1..=parts).map(|n| {
        let b = b.clone();
        let id = id.clone();
        async move {
            let data = random(200_000, &format!("budget{n}"));
            b.object("budget", "k")
                .unwrap()
                .upload_part(&id, n, body(&data, 65536), None)
                .await
                .unwrap()
        }
    });
    let metas = futures::future::join_all(uploads).await;
    let batch_calls = route_count(&e.hub, "batch") - batches;
    assert!(
        batch_calls <= 3,
        "{parts} concurrent parts cost {batch_calls} /batch calls"
    );
    assert_eq!(
        route_count(&e.hub, "paths_info") - lookups,
        1,
        "node B looks the upload up once"
    );
    let listed = a
        .object("budget", "k")
        .unwrap()
        .list_parts(&id)
        .await
        .unwrap();
    assert_eq!(listed.len(), parts as usize);
    for (m, l) in metas.iter().zip(&listed) {
        assert_eq!((m.part_number, &m.etag), (l.part_number, &l.etag));
    }
}

/// Uploads recorded in local state by a version before the upstream layout still take
/// parts, list and complete after the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_recorded_locally_by_an_older_version_still_complete() {
    let e = env().await;
    e.gw.create_bucket("old").await.unwrap();
    let dir = e.dir.path().join("upgraded");
    let id = "legacy-upload-0001";
    {
        // What the previous version wrote at CreateMultipartUpload.
        let state = hugbucket_core::SledState::open(&dir).unwrap();
        let rec = serde_json::json!({
            "bucket": "old", "key": "obj", "created_ms": 1_700_000_000_000u64,
            "content_type": "text/plain", "completed": null
        });
        hugbucket_core::StateStore::put(
            &state,
            "multipart_uploads",
            id.as_bytes(),
            &serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
    }
    let client = HubClient::new(
        &e.hub.url(),
        Some(e.hub.token().to_string()),
        upstream_config(),
    )
    .unwrap();
    let state = std::sync::Arc::new(hugbucket_core::SledState::open(&dir).unwrap());
    let gw = Gateway::with_parts(CoreConfig::new(dir.clone()), client, state, None).unwrap();
    let p1 = random(5 << 20, "legacy1");
    let p2 = random(1000, "legacy2");
    let m1 = gw
        .object("old", "obj")
        .unwrap()
        .upload_part(id, 1, body(&p1, 1 << 20), None)
        .await
        .unwrap();
    let m2 = gw
        .object("old", "obj")
        .unwrap()
        .upload_part(id, 2, body(&p2, 100), None)
        .await
        .unwrap();
    let uploads = gw.list_multipart_uploads("old", "").await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].upload_id, id);
    assert_eq!(
        gw.object("old", "obj")
            .unwrap()
            .list_parts(id)
            .await
            .unwrap()
            .len(),
        2
    );
    let done = gw
        .object("old", "obj")
        .unwrap()
        .complete_multipart(id, &[(1, m1.etag), (2, m2.etag)], None)
        .await
        .unwrap();
    assert!(done.etag.ends_with("-2\""), "{}", done.etag);
    assert_eq!(get(&gw, "old", "obj", None).await, [&p1[..], &p2].concat());
    let head = gw.object("old", "obj").unwrap().head().await.unwrap();
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert!(
        gw.list_multipart_uploads("old", "")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Without metadata reuse (fleet mode), a node sees a write made through another node at
/// once, for one paths-info call per HEAD; with it, the other node may serve the old
/// version until its entry expires (what fleet mode is for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mode_reads_see_other_nodes_writes() {
    let e = env().await;
    let a = node(&e.hub, &e.dir.path().join("a"), Duration::from_secs(1)).await;
    let b = node(&e.hub, &e.dir.path().join("b"), Duration::from_secs(1)).await;
    let cached = gateway_for(&e.hub, &e.dir.path().join("cached")).await;
    a.create_bucket("raw").await.unwrap();
    for round in 0..20u32 {
        let data = format!("version {round}");
        let put = a
            .object("raw", "k")
            .unwrap()
            .put(body(data.as_bytes(), 4), PutOptions::default())
            .await
            .unwrap();
        let calls = route_count(&e.hub, "paths_info");
        assert_eq!(
            b.object("raw", "k").unwrap().head().await.unwrap().etag,
            put.etag
        );
        assert_eq!(route_count(&e.hub, "paths_info") - calls, 1);
        assert_eq!(get(&b, "raw", "k", None).await, data.as_bytes());
    }
    // A node that reuses metadata (the default TTL) still answers the version it cached
    // after another node replaced it: the staleness fleet mode removes.
    let before = cached.object("raw", "k").unwrap().head().await.unwrap();
    let newer = a
        .object("raw", "k")
        .unwrap()
        .put(body(b"newest", 4), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        cached
            .object("raw", "k")
            .unwrap()
            .head()
            .await
            .unwrap()
            .etag,
        before.etag
    );
    assert_eq!(
        b.object("raw", "k").unwrap().head().await.unwrap().etag,
        newer.etag
    );
    a.object("raw", "k").unwrap().delete().await.unwrap();
    assert!(matches!(
        b.object("raw", "k").unwrap().head().await,
        Err(CoreError::NoSuchKey(_))
    ));
}

/// The expiry sweep removes uploads older than the limit from the bucket (record and
/// parts), through any node, and leaves younger ones alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_uploads_are_removed_from_the_bucket() {
    let e = env().await;
    let a = node(&e.hub, &e.dir.path().join("a"), Duration::from_millis(100)).await;
    a.create_bucket("sweep").await.unwrap();
    let old = a
        .object("sweep", "old")
        .unwrap()
        .create_multipart(PutOptions::default())
        .await
        .unwrap();
    a.object("sweep", "old")
        .unwrap()
        .upload_part(&old, 1, body(b"abandoned", 3), None)
        .await
        .unwrap();
    // A node with the default limit (7 days) removes nothing.
    assert_eq!(a.expire_multipart().await.unwrap(), 0);
    assert_eq!(
        a.object("sweep", "old")
            .unwrap()
            .list_parts(&old)
            .await
            .unwrap()
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let young = a
        .object("sweep", "young")
        .unwrap()
        .create_multipart(PutOptions::default())
        .await
        .unwrap();
    // Another node, with a one-second limit, sweeps the old upload only.
    let client = HubClient::new(
        &e.hub.url(),
        Some(e.hub.token().to_string()),
        upstream_config(),
    )
    .unwrap();
    let mut cfg = CoreConfig::new(e.dir.path().join("sweeper"));
    cfg.multipart_expiry = Duration::from_secs(1);
    let sweeper = Gateway::new(cfg, client).await.unwrap();
    assert_eq!(sweeper.expire_multipart().await.unwrap(), 1);
    assert!(matches!(
        a.object("sweep", "old").unwrap().list_parts(&old).await,
        Err(CoreError::NoSuchUpload(_))
    ));
    let left = a.list_multipart_uploads("sweep", "").await.unwrap();
    assert_eq!(
        left.iter()
            .map(|u| u.upload_id.as_str())
            .collect::<Vec<_>>(),
        vec![young.as_str()]
    );
    let entries = a
        .hub()
        .list_tree(
            &hugbucket_upstream::BucketId::new("tester", "sweep").unwrap(),
            Some(&format!(".hugbucket/uploads/{old}")),
            Some(true),
        )
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert!(entries.is_empty(), "{entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_carry_metadata_until_the_object_changes_under_them() {
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("side").await.unwrap();
    let mut extra = hugbucket_core::ObjectExtra::default();
    extra.meta.insert("color".into(), "blue".into());
    extra
        .headers
        .insert("cache-control".into(), "max-age=5".into());
    let opts = PutOptions {
        extra: extra.clone(),
        mtime_ms: Some(1_700_000_000_123),
        ..Default::default()
    };
    gw.object("side", "k")
        .unwrap()
        .put(body(b"with metadata", 4), opts)
        .await
        .unwrap();
    let m = gw.object("side", "k").unwrap().head().await.unwrap();
    assert_eq!(m.extra, extra);
    assert_eq!(
        m.last_modified,
        std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    );
    // A second node (fresh state, no cache) sees it from the bucket.
    let other = gateway_for(&e.hub, &e.dir.path().join("gw2")).await;
    assert_eq!(
        other
            .object("side", "k")
            .unwrap()
            .head()
            .await
            .unwrap()
            .extra,
        extra
    );
    // A PUT without metadata writes no sidecar: the old one is stale and ignored.
    gw.object("side", "k")
        .unwrap()
        .put(body(b"plain", 2), PutOptions::default())
        .await
        .unwrap();
    assert!(
        gw.object("side", "k")
            .unwrap()
            .head()
            .await
            .unwrap()
            .extra
            .is_empty()
    );
    let sidecar = hugbucket_core::sidecar_path("k");
    assert!(sidecar.starts_with(".hugbucket/meta/"));
    let listed = gw
        .list_objects(
            "side",
            ListRequest {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        vec!["k"],
        "the sidecar is not listed"
    );
    assert!(matches!(
        gw.object("side", &sidecar),
        Err(CoreError::InvalidKey(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_check_the_current_object() {
    use hugbucket_core::WriteCondition;
    let e = env().await;
    let gw = &e.gw;
    gw.create_bucket("cond").await.unwrap();
    let when = |c: WriteCondition| PutOptions {
        condition: Some(c),
        ..Default::default()
    };
    let first = gw
        .object("cond", "k")
        .unwrap()
        .put(body(b"1", 1), when(WriteCondition::IfNoneMatch))
        .await
        .unwrap();
    assert!(matches!(
        gw.object("cond", "k")
            .unwrap()
            .put(body(b"2", 1), when(WriteCondition::IfNoneMatch))
            .await,
        Err(CoreError::PreconditionFailed(_))
    ));
    assert!(matches!(
        gw.object("cond", "k")
            .unwrap()
            .put(
                body(b"2", 1),
                when(WriteCondition::IfMatch("\"abc-1\"".into()))
            )
            .await,
        Err(CoreError::PreconditionFailed(_))
    ));
    gw.object("cond", "k")
        .unwrap()
        .put(
            body(b"2", 1),
            when(WriteCondition::IfMatch(first.etag.clone())),
        )
        .await
        .unwrap();
    assert!(matches!(
        gw.object("cond", "missing")
            .unwrap()
            .put(body(b"2", 1), when(WriteCondition::IfMatch(first.etag)))
            .await,
        Err(CoreError::NoSuchKey(_))
    ));
    assert_eq!(get(gw, "cond", "k", None).await, b"2");
}

// ---------------------------------------------------------------- the real Hub's behaviour

/// A hub with a second user (`alice`), `--strict-deletes` and short fetch URLs, and a
/// gateway over it (chunk cache off, so every read fetches).
async fn strict_env(fetch_url_ttl: Option<Duration>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("hub"));
    cfg.namespace = "tester".into();
    cfg.tokens = vec!["hf_core_test".into()];
    cfg.users = vec![("alice".into(), "hf_alice".into())];
    cfg.strict_deletes = true;
    cfg.fetch_url_ttl = fetch_url_ttl;
    let hub = hugbucket_hub::start(cfg).await.unwrap();
    let gw = gateway_for(&hub, &dir.path().join("gw")).await;
    Env { hub, gw, dir }
}

fn hub_as(hub: &RunningHub, token: Option<&str>) -> HubClient {
    HubClient::new(&hub.url(), token.map(str::to_string), upstream_config()).unwrap()
}

/// Buckets the gateway creates are private (the Hub would make them public): the hub says
/// so, and refuses an anonymous (401) or another user's (404) read of them. Configured
/// `Public`, they are public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_buckets_are_private_by_default() {
    let e = strict_env(None).await;
    e.gw.create_bucket("secret").await.unwrap();
    e.gw.object("secret", "k")
        .unwrap()
        .put(body(b"private bytes", 64), PutOptions::default())
        .await
        .unwrap();
    let id = hugbucket_upstream::BucketId::new("tester", "secret").unwrap();
    assert!(
        hub_as(&e.hub, Some("hf_core_test"))
            .bucket_info(&id)
            .await
            .unwrap()
            .private
    );
    let anonymous = hub_as(&e.hub, None).bucket_info(&id).await.unwrap_err();
    assert_eq!(anonymous.status(), Some(401), "{anonymous:?}");
    let alice = hub_as(&e.hub, Some("hf_alice"));
    assert_eq!(
        alice.bucket_info(&id).await.unwrap_err().status(),
        Some(404)
    );
    let err = alice.paths_info(&id, &["k".to_string()]).await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    let mut cfg = CoreConfig::new(e.dir.path().join("gw-public"));
    cfg.bucket_visibility = hugbucket_upstream::Visibility::Public;
    let public = Gateway::new(cfg, hub_as(&e.hub, Some("hf_core_test")))
        .await
        .unwrap();
    public.create_bucket("open").await.unwrap();
    let id = hugbucket_upstream::BucketId::new("tester", "open").unwrap();
    assert!(!alice.bucket_info(&id).await.unwrap().private);
}

/// CopyObject sends `copyFile` naming its source bucket, as huggingface_hub does (the hub
/// counts the copies it applied and checks the source holds the hash), within and across
/// buckets; the content type follows the source unless replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_sent_as_copy_file() {
    let e = strict_env(None).await;
    e.gw.create_bucket("cpa").await.unwrap();
    e.gw.create_bucket("cpb").await.unwrap();
    let data = random(300_000, "copy-file");
    let opts = PutOptions {
        content_type: Some("text/plain".into()),
        ..PutOptions::default()
    };
    e.gw.object("cpa", "src")
        .unwrap()
        .put(body(&data, 65536), opts)
        .await
        .unwrap();
    let copies = |hub: &RunningHub| hub.stats().copy_ops.load(Ordering::Relaxed);
    let adds_before = e.hub.stats().batch_ops.load(Ordering::Relaxed);
    e.gw.object("cpa", "same")
        .unwrap()
        .copy_from(&e.gw.object("cpa", "src").unwrap(), CopyMetadata::Copy)
        .await
        .unwrap();
    e.gw.object("cpb", "other")
        .unwrap()
        .copy_from(
            &e.gw.object("cpa", "src").unwrap(),
            replace_type("image/png"),
        )
        .await
        .unwrap();
    assert_eq!(copies(&e.hub), 2);
    assert_eq!(
        e.hub.stats().batch_ops.load(Ordering::Relaxed) - adds_before,
        2
    );
    assert_eq!(get(&e.gw, "cpa", "same", None).await, data);
    assert_eq!(get(&e.gw, "cpb", "other", None).await, data);
    let same = e.gw.object("cpa", "same").unwrap().head().await.unwrap();
    assert_eq!(same.content_type.as_deref(), Some("text/plain"));
    let other = e.gw.object("cpb", "other").unwrap().head().await.unwrap();
    assert_eq!(other.content_type.as_deref(), Some("image/png"));
    // The hub refuses a copyFile whose source does not hold the hash.
    let hub = hub_as(&e.hub, Some("hf_core_test"));
    let out = hub
        .batch(
            &hugbucket_upstream::BucketId::new("tester", "cpb").unwrap(),
            &[hugbucket_upstream::BatchOp::CopyFile {
                path: "forged".into(),
                xet_hash: same.xet_hash,
                mtime: 1,
                source_repo_type: "bucket".into(),
                source_repo_id: "tester/empty-src".into(),
                content_type: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(out.failed.len(), 1, "{out:?}");
}

/// A hub that reports `deleteFile` of a missing path as failed ("not found") does not turn
/// S3/FTP deletes of missing keys into errors: the key is gone, which is what was asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_missing_keys_succeeds_on_a_strict_hub() {
    let e = strict_env(None).await;
    e.gw.create_bucket("del").await.unwrap();
    e.gw.object("del", "here")
        .unwrap()
        .put(body(b"x", 1), PutOptions::default())
        .await
        .unwrap();
    // The hub really reports the missing path as a failed operation.
    let id = hugbucket_upstream::BucketId::new("tester", "del").unwrap();
    let out = hub_as(&e.hub, Some("hf_core_test"))
        .batch(
            &id,
            &[hugbucket_upstream::BatchOp::DeleteFile {
                path: "never".into(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(out.failed.len(), 1);
    assert!(out.failed[0].error.contains("not found"), "{out:?}");
    e.gw.object("del", "never").unwrap().delete().await.unwrap();
    let results =
        e.gw.delete_objects("del", &["here".into(), "gone".into()])
            .await
            .unwrap();
    assert_eq!(results.len(), 2);
    for (key, r) in results {
        assert!(r.is_ok(), "{key}: {r:?}");
    }
    assert!(matches!(
        e.gw.object("del", "here").unwrap().head().await,
        Err(CoreError::NoSuchKey(_))
    ));
}

/// Fetch URLs that expire every 2 s under a 1 GiB GET read slowly (about 25 s), plus a
/// connection reset in the middle of a body: the download completes byte-identical. The
/// core re-queries the reconstruction of the bytes it still needs (the hub refused
/// expired URLs, so the refresh was needed) and never asks a range-signed URL for a
/// narrower range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_fetch_urls_and_cut_connections_do_not_break_a_slow_get() {
    const SIZE: u64 = 1 << 30;
    const PERIOD: u64 = 256 << 20; // the content repeats: 256 MiB stored, 1 GiB read
    const RATE: f64 = 40.0 * 1048576.0; // bytes per second the client reads
    let e = strict_env(Some(Duration::from_secs(2))).await;
    e.gw.create_bucket("slow").await.unwrap();
    let piece = |pos: u64, len: usize| {
        let mut out = vec![0u8; len];
        let mut xof = blake3::Hasher::new().update(b"slow-get").finalize_xof();
        let mut filled = 0;
        while filled < len {
            let at = (pos + filled as u64) % PERIOD;
            let n = ((PERIOD - at) as usize).min(len - filled);
            xof.set_position(at);
            xof.fill(&mut out[filled..filled + n]);
            filled += n;
        }
        Bytes::from(out)
    };
    let pieces = futures::stream::iter(
        (0..SIZE / (4 << 20)).map(move |i| Ok::<_, std::io::Error>(piece(i * (4 << 20), 4 << 20))),
    );
    e.gw.object("slow", "big")
        .unwrap()
        .put(Box::pin(pieces), PutOptions::default())
        .await
        .unwrap();
    // One connection reset a few MiB into a body.
    push(&e.hub, "fetch:reset=3000000:1");
    let recons = e.hub.stats().reconstructions.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let r = e.gw.object("slow", "big").unwrap().get(None).await.unwrap();
    let mut body = r.body;
    let mut pos = 0u64;
    while let Some(p) = body.next().await {
        let p = p.unwrap();
        assert!(p[..] == piece(pos, p.len())[..], "bytes differ at {pos}");
        pos += p.len() as u64;
        let due = Duration::from_secs_f64(pos as f64 / RATE);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    assert_eq!(pos, SIZE);
    let stats = e.hub.stats();
    assert!(
        stats.fetch_expired.load(Ordering::Relaxed) >= 1,
        "no URL expired"
    );
    assert!(stats.reconstructions.load(Ordering::Relaxed) - recons >= 3);
    assert_eq!(stats.fetch_range_refused.load(Ordering::Relaxed), 0);
}
