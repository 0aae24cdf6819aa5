//! End-to-end tests of the upstream client against the embedded hub, started in-process.

mod common;

use bytes::Bytes;
use common::*;
use hugbucket_engine::XetHash;
use hugbucket_engine::shard::Shard;
use hugbucket_hub::{FaultRule, Route};
use hugbucket_upstream::{
    BatchOp, BucketId, ByteRange, CreateBucketOptions, Fault, ShardUpload, TokenScope, TreeEntry,
    UpstreamError, Visibility, XorbUpload,
};

fn fault(route: Route, status: u16, count: u64) -> FaultRule {
    FaultRule::status(route, http::StatusCode::from_u16(status).unwrap(), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_management() {
    let th = start_hub().await;
    let hub = client(&th);
    let stats = th.hub.stats();

    // whoami is cached.
    assert_eq!(hub.whoami().await.unwrap().name, NAMESPACE);
    assert_eq!(hub.namespace().await.unwrap(), NAMESPACE);
    assert_eq!(stats.route_count(Route::Whoami), 1);

    // Create, and 409 -> AlreadyExists carrying the url.
    let url = hub
        .create_bucket(NAMESPACE, "alpha", &CreateBucketOptions::default())
        .await
        .unwrap();
    assert!(url.ends_with("/buckets/tester/alpha"), "{url}");
    match hub
        .create_bucket(NAMESPACE, "alpha", &CreateBucketOptions::default())
        .await
    {
        Err(UpstreamError::AlreadyExists { url: again }) => assert_eq!(again, url),
        other => panic!("{other:?}"),
    }
    let opts = CreateBucketOptions {
        visibility: Some(Visibility::Private),
        ..Default::default()
    };
    for name in ["beta", "gamma", "delta", "epsilon"] {
        hub.create_bucket(NAMESPACE, name, &opts).await.unwrap();
    }

    let alpha = BucketId::new(NAMESPACE, "alpha").unwrap();
    let info = hub.bucket_info(&alpha).await.unwrap();
    assert_eq!(info.id, "tester/alpha");
    assert_eq!(info.total_files, 0);
    let beta = BucketId::new(NAMESPACE, "beta").unwrap();
    assert!(hub.bucket_info(&beta).await.unwrap().private);

    // Missing bucket: 404, client fault, not retryable, status kept.
    let missing = BucketId::new(NAMESPACE, "missing").unwrap();
    let err = hub.bucket_info(&missing).await.unwrap_err();
    assert!(matches!(err, UpstreamError::NotFound(_)), "{err:?}");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.fault(), Fault::Client);
    assert!(!err.is_retryable());
    assert_eq!(
        err.http_failure().unwrap().error_code.as_deref(),
        Some("RepoNotFound")
    );

    // List with Link pagination (2 per page), stopping early or collecting all.
    let mut pager = hub
        .list_buckets("me", None)
        .unwrap()
        .with_query("limit", "2");
    let first = pager.next_page().await.unwrap().unwrap();
    assert_eq!(first.len(), 2);
    assert!(pager.has_next());
    let mut all: Vec<String> = first.into_iter().map(|b| b.id).collect();
    while let Some(page) = pager.next_page().await.unwrap() {
        assert!(page.len() <= 2);
        all.extend(page.into_iter().map(|b| b.id));
    }
    assert_eq!(pager.pages_fetched(), 3);
    all.sort();
    assert_eq!(
        all,
        ["alpha", "beta", "delta", "epsilon", "gamma"].map(|n| format!("tester/{n}"))
    );
    let searched = hub
        .list_buckets(NAMESPACE, Some("ta"))
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    let mut names: Vec<String> = searched.into_iter().map(|b| b.id).collect();
    names.sort();
    assert_eq!(names, ["tester/beta", "tester/delta"]);

    // Settings, move, delete.
    hub.update_bucket_settings(&alpha, true).await.unwrap();
    assert!(hub.bucket_info(&alpha).await.unwrap().private);
    let renamed = BucketId::new(NAMESPACE, "alpha2").unwrap();
    hub.move_bucket(&alpha, &renamed).await.unwrap();
    assert!(matches!(
        hub.bucket_info(&alpha).await,
        Err(UpstreamError::NotFound(_))
    ));
    hub.bucket_info(&renamed).await.unwrap();
    hub.delete_bucket(&renamed).await.unwrap();
    assert_eq!(
        hub.delete_bucket(&renamed).await.unwrap_err().status(),
        Some(404)
    );

    // A bad token is a 401 client fault.
    let bad = hugbucket_upstream::HubClient::new(&th.hub.url(), Some("nope".into()), fast_config())
        .unwrap();
    let err = bad.bucket_info(&beta).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unauthorized(_)), "{err:?}");
    assert_eq!(err.fault(), Fault::Client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_and_download() {
    let th = start_hub().await;
    let hub = client(&th);
    let stats = th.hub.stats();
    hub.create_bucket(NAMESPACE, "data", &CreateBucketOptions::default())
        .await
        .unwrap();
    let id = BucketId::new(NAMESPACE, "data").unwrap();

    let a = random_bytes(700_000, 7);
    let b = text_bytes(300_000);
    let up = build_upload(&[a.clone(), b.clone()]);
    let (ha, hb) = (up.files[0].0, up.files[1].0);
    assert!(up.xorb.chunks.len() >= 3);

    // Xorb: grants are not offered by the embedded hub (404) -> direct upload, remembered.
    let cas_w = hub.cas(&id, TokenScope::Write);
    let xorb_bytes = Bytes::from(up.xorb.data.clone());
    assert_eq!(
        cas_w
            .upload_xorb(&up.xorb.hash, xorb_bytes.clone())
            .await
            .unwrap(),
        XorbUpload::Direct { was_inserted: true }
    );
    assert!(cas_w.grants_unavailable());
    assert_eq!(
        cas_w
            .upload_xorb(&up.xorb.hash, xorb_bytes.clone())
            .await
            .unwrap(),
        XorbUpload::Direct {
            was_inserted: false
        }
    );
    assert_eq!(stats.route_count(Route::XorbGrant), 1);

    // A xorb whose bytes do not match its hash is rejected: 400 = our fault.
    let mut corrupt = up.xorb.data.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let other = XetHash::from_bytes([7; 32]);
    let err = cas_w
        .upload_xorb(&other, Bytes::from(corrupt))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err:?}");
    assert_eq!(err.fault(), Fault::Internal);

    // Shard via /v2 (NDJSON result frame).
    let shard_bytes = Bytes::from(up.shard.to_upload_bytes());
    assert_eq!(
        cas_w.upload_shard(shard_bytes.clone()).await.unwrap(),
        ShardUpload::V2
    );

    // Register paths with the NDJSON batch.
    let mtime = 1_732_570_000_000;
    let ops = vec![
        BatchOp::AddFile {
            path: "dir/a.bin".into(),
            xet_hash: ha,
            mtime,
            content_type: Some("application/octet-stream".into()),
        },
        BatchOp::AddFile {
            path: "dir/sub/b.txt".into(),
            xet_hash: hb,
            mtime,
            content_type: Some("text/plain".into()),
        },
        BatchOp::AddFile {
            path: "top.bin".into(),
            xet_hash: ha,
            mtime,
            content_type: None,
        },
        BatchOp::AddFile {
            path: "logs.json".into(),
            xet_hash: hb,
            mtime,
            content_type: None,
        },
    ];
    let outcome = hub.batch(&id, &ops).await.unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.requests, 1);

    // Unknown hash: reported in `failed` (422), not an error.
    let bogus = hub
        .batch(
            &id,
            &[BatchOp::AddFile {
                path: "bogus.bin".into(),
                xet_hash: XetHash::from_bytes([0xab; 32]),
                mtime,
                content_type: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(bogus.failed.len(), 1);
    assert_eq!(bogus.failed[0].path, "bogus.bin");

    // Tree: recursive listing of everything.
    let all = hub
        .list_tree(&id, None, Some(true))
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    let mut files: Vec<(String, u64)> = all
        .iter()
        .filter_map(|e| match e {
            TreeEntry::File(f) => Some((f.path.clone(), f.size)),
            TreeEntry::Directory(_) => None,
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("dir/a.bin".to_string(), a.len() as u64),
            ("dir/sub/b.txt".to_string(), b.len() as u64),
            ("logs.json".to_string(), b.len() as u64),
            ("top.bin".to_string(), a.len() as u64),
        ]
    );
    // Non-recursive root: directory "dir" plus the top-level files.
    let root = hub
        .list_tree(&id, None, Some(false))
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert!(
        root.iter()
            .any(|e| matches!(e, TreeEntry::Directory(d) if d.path == "dir"))
    );
    assert!(
        root.iter()
            .any(|e| matches!(e, TreeEntry::File(f) if f.path == "top.bin"))
    );
    assert!(!root.iter().any(|e| e.path().starts_with("dir/")));
    // Prefix with a slash goes as one %2F-encoded segment.
    let sub = hub
        .list_tree(&id, Some("dir/sub"), Some(true))
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(
        sub.iter().map(|e| e.path().to_string()).collect::<Vec<_>>(),
        ["dir/sub/b.txt"]
    );
    // Pagination, one entry per page, stop early.
    let mut pager = hub
        .list_tree(&id, None, Some(true))
        .unwrap()
        .with_query("limit", "1");
    let p1 = pager.next_page().await.unwrap().unwrap();
    let p2 = pager.next_page().await.unwrap().unwrap();
    assert_eq!((p1.len(), p2.len()), (1, 1));
    assert_ne!(p1[0].path(), p2[0].path());
    assert!(pager.has_next());
    drop(pager);

    // paths-info with > 1000 paths: split into two requests; missing paths omitted.
    let before = stats.route_count(Route::PathsInfo);
    let mut paths: Vec<String> = (0..1200).map(|i| format!("missing/{i}")).collect();
    paths.insert(600, "dir/a.bin".into());
    paths.push("dir/sub/b.txt".into());
    let info = hub.paths_info(&id, &paths).await.unwrap();
    assert_eq!(stats.route_count(Route::PathsInfo) - before, 2);
    let mut got: Vec<(String, XetHash)> = info.into_iter().map(|f| (f.path, f.xet_hash)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("dir/a.bin".to_string(), ha),
            ("dir/sub/b.txt".to_string(), hb)
        ]
    );

    // Resolve HEAD: hash, size, refresh route.
    let resolved = hub.resolve_head(&id, "dir/sub/b.txt").await.unwrap();
    assert_eq!(resolved.xet_hash, Some(hb));
    assert_eq!(resolved.size, Some(b.len() as u64));
    let auth_url = resolved.xet_auth_url.clone().unwrap();
    assert_eq!(auth_url, hub.token_url(&id, TokenScope::Read));
    let err = hub.resolve_head(&id, "nope.bin").await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    // Download through the read token (cached: one token fetch for all calls).
    let cas_r = hub.cas_for_token_url(&auth_url);
    let reads_before = stats.route_count(Route::XetReadToken);
    assert_eq!(download(&cas_r, &ha, None).await, a);
    assert_eq!(download(&cas_r, &hb, None).await, b);
    // Whole-file Range as hf_xet sends it.
    assert_eq!(
        download(
            &cas_r,
            &ha,
            Some(ByteRange::from_len(0, a.len() as u64).unwrap())
        )
        .await,
        a
    );
    // Ranges inside chunks, across chunk boundaries, one byte, the tail.
    for (start, len) in [
        (1u64, 10u64),
        (70_000, 200_000),
        (123_456, 1),
        (a.len() as u64 - 5, 5),
    ] {
        let r = ByteRange::from_len(start, len).unwrap();
        let got = download(&cas_r, &ha, Some(r)).await;
        assert_eq!(
            got,
            &a[start as usize..(start + len) as usize],
            "range {start}+{len}"
        );
    }
    assert_eq!(stats.route_count(Route::XetReadToken) - reads_before, 1);
    // The reconstruction API was v2.
    let recon = cas_r.reconstruction(&hb, None).await.unwrap();
    assert_eq!(recon.api_version, 2);
    assert_eq!(recon.unpacked_len(), b.len() as u64);

    // 416 beyond the end; 404 for an unknown file.
    let err = cas_r
        .reconstruction(
            &ha,
            Some(ByteRange::new(a.len() as u64 + 10, a.len() as u64 + 20).unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(416), "{err:?}");
    let err = cas_r
        .reconstruction(&XetHash::from_bytes([9; 32]), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err:?}");
    assert_eq!(err.fault(), Fault::Client);

    // Global dedup: the first chunk of a registered file -> a full shard naming our xorb;
    // an unknown chunk -> None.
    let shard = cas_w
        .global_dedup_shard(&up.first_chunk_hashes[0])
        .await
        .expect("dedup shard");
    let parsed = Shard::parse(&shard).unwrap();
    assert!(parsed.footer.is_some());
    assert!(parsed.xorbs.iter().any(|x| x.xorb_hash == up.xorb.hash));
    assert!(
        cas_w
            .global_dedup_shard(&XetHash::from_bytes([3; 32]))
            .await
            .is_none()
    );

    // More than 1000 operations: split into requests of at most 1000.
    let before = stats.route_count(Route::Batch);
    let many: Vec<BatchOp> = (0..1001)
        .map(|i| BatchOp::AddFile {
            path: format!("many/{i:04}.txt"),
            xet_hash: hb,
            mtime,
            content_type: None,
        })
        .collect();
    let outcome = hub.batch(&id, &many).await.unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.requests, 2);
    assert_eq!(stats.route_count(Route::Batch) - before, 2);
    let listed = hub
        .list_tree(&id, Some("many"), Some(true))
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1001);

    // Delete through the batch; then paths-info no longer lists it.
    let outcome = hub
        .batch(
            &id,
            &[BatchOp::DeleteFile {
                path: "top.bin".into(),
            }],
        )
        .await
        .unwrap();
    assert!(outcome.failed.is_empty());
    assert!(
        hub.paths_info(&id, &["top.bin".to_string()])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_retries_and_faults() {
    let th = start_hub().await;
    let hub = client(&th);
    let stats = th.hub.stats();
    let faults = th.hub.faults();
    hub.create_bucket(NAMESPACE, "f", &CreateBucketOptions::default())
        .await
        .unwrap();
    let id = BucketId::new(NAMESPACE, "f").unwrap();
    let data = random_bytes(200_000, 11);
    let up = build_upload(std::slice::from_ref(&data));
    let fh = up.files[0].0;

    // Xorb upload survives two 503s (retried with backoff).
    let cas_w = hub.cas(&id, TokenScope::Write);
    faults.push(fault(Route::XorbUpload, 503, 2));
    let before = stats.route_count(Route::XorbUpload);
    cas_w
        .upload_xorb(&up.xorb.hash, Bytes::from(up.xorb.data.clone()))
        .await
        .unwrap();
    assert_eq!(stats.route_count(Route::XorbUpload) - before, 3);

    // /v2/shards 404 -> /v1/shards, remembered for the next upload.
    faults.push(fault(Route::ShardV2, 404, 1));
    let shard = Bytes::from(up.shard.to_upload_bytes());
    match cas_w.upload_shard(shard.clone()).await.unwrap() {
        ShardUpload::V1 { result } => assert!(result <= 1),
        other => panic!("{other:?}"),
    }
    let v2_before = stats.route_count(Route::ShardV2);
    assert!(matches!(
        cas_w.upload_shard(shard.clone()).await.unwrap(),
        ShardUpload::V1 { .. }
    ));
    assert_eq!(stats.route_count(Route::ShardV2), v2_before);

    hub.batch(
        &id,
        &[BatchOp::AddFile {
            path: "x.bin".into(),
            xet_hash: fh,
            mtime: 1,
            content_type: None,
        }],
    )
    .await
    .unwrap();

    // Reconstruction v2 501 -> v1, same bytes.
    let cas_r = hub.cas(&id, TokenScope::Read);
    faults.push(fault(Route::ReconV2, 501, 1));
    let recon = cas_r.reconstruction(&fh, None).await.unwrap();
    assert_eq!(recon.api_version, 1);
    assert_eq!(download(&cas_r, &fh, None).await, data);

    // A fresh read client: v2 fails with 503 twice, then succeeds.
    let hub2 = client(&th);
    let cas_r2 = hub2.cas(&id, TokenScope::Read);
    faults.push(fault(Route::ReconV2, 503, 2));
    let before = stats.route_count(Route::ReconV2);
    let recon = cas_r2.reconstruction(&fh, None).await.unwrap();
    assert_eq!(recon.api_version, 2);
    assert_eq!(stats.route_count(Route::ReconV2) - before, 3);

    // A persistent 500 exhausts the attempts (4) and surfaces as a retryable upstream fault.
    faults.push(fault(Route::ReconV2, 500, 10));
    let before = stats.route_count(Route::ReconV2);
    let err = cas_r2.reconstruction(&fh, None).await.unwrap_err();
    assert_eq!(stats.route_count(Route::ReconV2) - before, 4);
    assert!(err.is_retryable());
    assert_eq!(err.fault(), Fault::Upstream);
    assert_eq!(err.status(), Some(500));
    // Drain the rule.
    for _ in 0..6 {
        let _ = cas_r2.reconstruction(&fh, None).await;
        if stats.route_count(Route::ReconV2) - before >= 10 {
            break;
        }
    }

    // Fetch URL 403 -> FetchUrlExpired (not retried); a re-queried reconstruction works.
    let recon = cas_r2.reconstruction(&fh, None).await.unwrap();
    let entry = recon.fetch_for(&recon.terms[0]).unwrap().clone();
    faults.push(fault(Route::Fetch, 403, 1));
    let before = stats.route_count(Route::Fetch);
    let err = cas_r2
        .fetch_xorb_range(&entry.url, entry.bytes)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::FetchUrlExpired(_)), "{err:?}");
    assert_eq!(stats.route_count(Route::Fetch) - before, 1);
    assert_eq!(download(&cas_r2, &fh, None).await, data);

    // 401 on a CAS call (an expired or revoked token) drops the token, fetches a new one
    // and sends the call again, once: a second 401 is returned.
    let tokens_before = stats.route_count(Route::XetReadToken);
    faults.push("reconstruction_v2:expired:1".parse().unwrap());
    let recon = cas_r2.reconstruction(&fh, None).await.unwrap();
    assert_eq!(recon.api_version, 2);
    assert_eq!(stats.route_count(Route::XetReadToken), tokens_before + 1);
    faults.push(fault(Route::ReconV2, 401, 2));
    let before = stats.route_count(Route::ReconV2);
    let err = cas_r2.reconstruction(&fh, None).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unauthorized(_)), "{err:?}");
    assert_eq!(stats.route_count(Route::XetReadToken), tokens_before + 2);
    assert_eq!(stats.route_count(Route::ReconV2) - before, 2);

    // The batch call is retried on 500.
    faults.push(fault(Route::Batch, 500, 1));
    let before = stats.route_count(Route::Batch);
    let out = hub
        .batch(
            &id,
            &[BatchOp::DeleteFile {
                path: "x.bin".into(),
            }],
        )
        .await
        .unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(stats.route_count(Route::Batch) - before, 2);

    // A 404 is not retried.
    faults.push(fault(Route::BucketInfo, 404, 1));
    let before = stats.route_count(Route::BucketInfo);
    assert!(hub.bucket_info(&id).await.is_err());
    assert_eq!(stats.route_count(Route::BucketInfo) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_before_expiry() {
    // Tokens living 20 s are inside the 30 s margin: every call refreshes.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = hugbucket_hub::HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
    cfg.namespace = NAMESPACE.into();
    cfg.tokens = vec!["hf_t".into()];
    cfg.token_ttl = std::time::Duration::from_secs(20);
    let running = hugbucket_hub::start(cfg).await.unwrap();
    let hub =
        hugbucket_upstream::HubClient::new(&running.url(), Some("hf_t".into()), fast_config())
            .unwrap();
    hub.create_bucket(NAMESPACE, "t", &CreateBucketOptions::default())
        .await
        .unwrap();
    let id = BucketId::new(NAMESPACE, "t").unwrap();
    let t1 = hub.xet_token(&id, TokenScope::Read).await.unwrap();
    let t2 = hub.xet_token(&id, TokenScope::Read).await.unwrap();
    assert_eq!(running.stats().route_count(Route::XetReadToken), 2);
    assert!(t2.exp >= t1.exp);
    assert_eq!(t1.cas_url, running.url());

    // With the default one-hour TTL the token is cached per scope.
    let th = start_hub().await;
    let hub = client(&th);
    hub.create_bucket(NAMESPACE, "t", &CreateBucketOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        hub.xet_token(&id, TokenScope::Read).await.unwrap();
        hub.xet_token(&id, TokenScope::Write).await.unwrap();
    }
    assert_eq!(th.hub.stats().route_count(Route::XetReadToken), 1);
    assert_eq!(th.hub.stats().route_count(Route::XetWriteToken), 1);
    hub.forget_xet_token(&id, TokenScope::Read);
    hub.xet_token(&id, TokenScope::Read).await.unwrap();
    assert_eq!(th.hub.stats().route_count(Route::XetReadToken), 2);
    // Missing bucket: the token route answers 404.
    let missing = BucketId::new(NAMESPACE, "none").unwrap();
    let err = hub.xet_token(&missing, TokenScope::Read).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}
