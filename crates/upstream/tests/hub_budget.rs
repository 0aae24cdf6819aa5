//! The client against the embedded hub's emulated rate limits (the real Hub's headers and
//! 429s), and the calls that save Hub budget: coalesced commits and lookups, resumable
//! tree listings. One test per concern; the rate-limit test is alone in reading the
//! process-wide metrics, so its numbers are its own.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::NAMESPACE;
use hugbucket_engine::XetHash;
use hugbucket_hub::{HubConfig, RateLimitRule, Route};
use hugbucket_upstream::metrics::METRICS;
use hugbucket_upstream::{
    BatchOp, BucketId, CreateBucketOptions, HubClient, PacedCommits, RouteClass, TreeEntry,
    UpstreamError,
};

struct LimitedHub {
    hub: hugbucket_hub::RunningHub,
    _dir: tempfile::TempDir,
}

async fn hub_with(limits: &[&str]) -> LimitedHub {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
    cfg.namespace = NAMESPACE.into();
    cfg.tokens = vec!["hf_test_token".into()];
    cfg.rate_limits = limits
        .iter()
        .map(|r| r.parse::<RateLimitRule>().unwrap())
        .collect();
    LimitedHub {
        hub: hugbucket_hub::start(cfg).await.unwrap(),
        _dir: dir,
    }
}

fn client(h: &LimitedHub, rate_limit_wait: Duration, background_wait: Duration) -> HubClient {
    let mut cfg = common::fast_config();
    cfg.retry.rate_limit_budget = rate_limit_wait;
    cfg.retry.background_rate_limit_budget = background_wait;
    HubClient::new(&h.hub.url(), Some(h.hub.token().to_string()), cfg).unwrap()
}

fn served(h: &LimitedHub, route: Route) -> u64 {
    h.hub.stats().route_count(route)
}

fn refused(h: &LimitedHub) -> u64 {
    h.hub.stats().rate_limited.load(Relaxed)
}

/// The client waits as long as the Hub's `RateLimit` header says, once (the next attempt
/// lands in the new window), and makes other callers of the class wait instead of
/// spending calls on 429s (an answer saying `r=0` closes the class before any 429); an
/// interactive call whose wait would outlast its budget fails at once (the gateway
/// answers SlowDown), background work waits a whole window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_as_the_headers_say() {
    let h = hub_with(&["api=3/2s"]).await;
    let a = client(&h, Duration::from_secs(10), Duration::from_secs(30));
    let b = client(&h, Duration::from_secs(10), Duration::from_secs(30));
    let id = BucketId::new(NAMESPACE, "rl").unwrap();
    let waited_before = METRICS.throttle_wait_seconds.get();
    let throttled_before = METRICS.rate_limited.get();
    let window = Instant::now();
    // Client `a` spends the window's quota; the last answer says `r=0`.
    a.create_bucket(NAMESPACE, "rl", &CreateBucketOptions::default())
        .await
        .unwrap();
    a.bucket_info(&id).await.unwrap();
    a.bucket_info(&id).await.unwrap();
    assert_eq!(refused(&h), 0);
    // `a` now waits for the reset without sending. Client `b` did not see that answer:
    // it gets a 429 with `RateLimit: "api";r=0;t=2`, waits for the reset and succeeds in
    // the next window; its second call, made during the wait, is held back.
    let t = Instant::now();
    let (ra, rb1, rb2) = tokio::join!(a.bucket_info(&id), b.bucket_info(&id), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.bucket_info(&id).await
    });
    ra.unwrap();
    rb1.unwrap();
    rb2.unwrap();
    let took = t.elapsed();
    assert!(
        window.elapsed() >= Duration::from_secs(2),
        "retried before the window reset"
    );
    assert!(
        took < Duration::from_millis(3500),
        "waited too long: {took:?}"
    );
    assert_eq!(
        refused(&h),
        1,
        "one 429, then every call waited for the reset"
    );
    assert_eq!(served(&h, Route::BucketInfo), 2 + 1 + 3);
    assert_eq!(METRICS.rate_limited.get() - throttled_before, 1);
    let waited = METRICS.throttle_wait_seconds.get() - waited_before;
    assert!(waited >= 3.0 * 1.5, "waits recorded: {waited} s");
    assert!(METRICS.requests_of(RouteClass::Api) >= 7);

    // A window longer than the interactive budget: SlowDown material at once, carrying
    // the reset time; a second call does not even reach the Hub.
    let h = hub_with(&["api=1/3s"]).await;
    client(&h, Duration::from_secs(1), Duration::from_secs(1))
        .create_bucket(NAMESPACE, "rl", &CreateBucketOptions::default())
        .await
        .unwrap();
    let hub = client(&h, Duration::from_millis(800), Duration::from_secs(10));
    let t = Instant::now();
    let err = hub.bucket_info(&id).await.unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited(_)), "{err}");
    let reset = err.retry_after().expect("reset time");
    assert!(reset > Duration::from_secs(1) && reset <= Duration::from_secs(3));
    let err = hub.bucket_info(&id).await.unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited(_)), "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        refused(&h),
        1,
        "the second call was held back by the client"
    );
    // Background work may wait the window out.
    let info = hub.background().bucket_info(&id).await.unwrap();
    assert_eq!(info.id, "tester/rl");
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(refused(&h), 1);
}

/// Concurrent commits share `/batch` calls and each gets its own outcome; concurrent
/// lookups share `paths-info` calls; a lone commit is sent at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_and_lookups_share_calls() {
    let h = hub_with(&[]).await;
    let hub = client(&h, Duration::from_secs(5), Duration::from_secs(5));
    let id = BucketId::new(NAMESPACE, "co").unwrap();
    hub.create_bucket(NAMESPACE, "co", &CreateBucketOptions::default())
        .await
        .unwrap();
    let add = |path: &str| BatchOp::AddFile {
        path: path.to_string(),
        xet_hash: XetHash::ZERO,
        mtime: 1_700_000_000_000,
        content_type: None,
    };
    // A lone commit: one call, no waiting for company.
    let t = Instant::now();
    assert!(hub.commit(&id, vec![add("lone")]).await.unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(served(&h, Route::Batch), 1);

    let commits = (0..200).map(|i| {
        let hub = hub.clone();
        let id = id.clone();
        // Commit 7 has an operation the Hub refuses (an absolute path).
        let path = if i == 7 {
            "/abs".to_string()
        } else {
            format!("f/{i:03}")
        };
        let ops = vec![add(&path), add(&format!("side/{i:03}"))];
        tokio::spawn(async move { hub.commit(&id, ops).await })
    });
    let outcomes = futures_util::future::join_all(commits).await;
    for (i, o) in outcomes.into_iter().enumerate() {
        let failed = o.unwrap().unwrap();
        if i == 7 {
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert_eq!(failed[0].path, "/abs");
        } else {
            assert!(failed.is_empty(), "commit {i}: {failed:?}");
        }
    }
    let batches = served(&h, Route::Batch) - 1;
    assert!(batches < 40, "200 concurrent commits took {batches} calls");

    let before = served(&h, Route::PathsInfo);
    let lookups = (0..200).map(|i| {
        let hub = hub.clone();
        let id = id.clone();
        tokio::spawn(async move {
            hub.lookup(&id, vec![format!("f/{i:03}"), format!("missing/{i}")])
                .await
        })
    });
    for (i, o) in futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .enumerate()
    {
        let found = o.unwrap().unwrap();
        let want: Vec<String> = if i == 7 {
            vec![]
        } else {
            vec![format!("f/{i:03}")]
        };
        assert_eq!(
            found.into_iter().map(|f| f.path).collect::<Vec<_>>(),
            want,
            "lookup {i}"
        );
    }
    let calls = served(&h, Route::PathsInfo) - before;
    assert!(calls < 40, "200 concurrent lookups took {calls} calls");
}

/// A paced commit queue (the gateway's multipart part records): calls for one bucket are
/// at least the pace apart, even after the queue went idle, and whatever arrives in between
/// shares the next call, each commit getting its own failures back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_commits_make_one_call_per_interval() {
    let h = hub_with(&[]).await;
    let hub = client(&h, Duration::from_secs(5), Duration::from_secs(5));
    let id = BucketId::new(NAMESPACE, "paced").unwrap();
    hub.create_bucket(NAMESPACE, "paced", &CreateBucketOptions::default())
        .await
        .unwrap();
    let add = |path: String| BatchOp::AddFile {
        path,
        xet_hash: XetHash::ZERO,
        mtime: 1_700_000_000_000,
        content_type: None,
    };
    let pace = Duration::from_millis(400);
    let paced = std::sync::Arc::new(PacedCommits::new(pace));
    let before = served(&h, Route::Batch);
    let t = Instant::now();
    let first = paced.commit(&hub, &id, vec![add("p/first".into())]).await;
    assert!(first.unwrap().is_empty());
    assert!(
        t.elapsed() < pace,
        "the first call waited: {:?}",
        t.elapsed()
    );
    // The queue is idle now; the next call still comes a pace after the first one.
    let commits = (0..50).map(|i| {
        let (hub, id, paced) = (hub.clone(), id.clone(), paced.clone());
        let path = if i == 7 {
            "/abs".to_string()
        } else {
            format!("p/{i:02}")
        };
        let op = add(path);
        tokio::spawn(async move { paced.commit(&hub, &id, vec![op]).await })
    });
    for (i, o) in futures_util::future::join_all(commits)
        .await
        .into_iter()
        .enumerate()
    {
        let failed = o.unwrap().unwrap();
        let want: Vec<&str> = if i == 7 { vec!["/abs"] } else { vec![] };
        let got: Vec<&str> = failed.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(got, want, "commit {i}");
    }
    assert!(t.elapsed() >= pace, "paced call after {:?}", t.elapsed());
    assert_eq!(
        served(&h, Route::Batch) - before,
        2,
        "one call, then one for the 50"
    );
}

/// A tree listing resumes from a saved point (what S3 continuation tokens carry) without
/// re-reading earlier pages; a forged point that changes the listing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_listings_resume_where_they_stopped() {
    let h = hub_with(&[]).await;
    let hub = client(&h, Duration::from_secs(5), Duration::from_secs(5));
    let id = BucketId::new(NAMESPACE, "tr").unwrap();
    hub.create_bucket(NAMESPACE, "tr", &CreateBucketOptions::default())
        .await
        .unwrap();
    let ops: Vec<BatchOp> = (0..10)
        .map(|i| BatchOp::AddFile {
            path: format!("d/{i}"),
            xet_hash: XetHash::ZERO,
            mtime: 1,
            content_type: None,
        })
        .collect();
    assert!(hub.batch(&id, &ops).await.unwrap().failed.is_empty());
    let paths = |page: Vec<TreeEntry>| -> Vec<String> {
        page.into_iter()
            .map(|e| match e {
                TreeEntry::File(f) => f.path,
                TreeEntry::Directory(d) => d.path,
            })
            .collect()
    };
    let mut pager = hub
        .list_tree(&id, Some("d"), Some(true))
        .unwrap()
        .with_query("limit", "4");
    assert_eq!(pager.current_resume_point(), None);
    let first = paths(pager.next_page().await.unwrap().unwrap());
    assert_eq!(first, ["d/0", "d/1", "d/2", "d/3"]);
    let here = pager.current_resume_point().unwrap();
    let next = pager.next_resume_point().unwrap();
    assert!(next.contains("cursor="), "{next}");

    let calls = served(&h, Route::Tree);
    let mut resumed = hub.list_tree(&id, Some("d"), Some(true)).unwrap();
    assert!(resumed.resume_at(&next));
    let second = paths(resumed.next_page().await.unwrap().unwrap());
    assert_eq!(second, ["d/4", "d/5", "d/6", "d/7"]);
    assert_eq!(served(&h, Route::Tree) - calls, 1, "no restart from page 1");
    let mut again = hub.list_tree(&id, Some("d"), Some(true)).unwrap();
    assert!(again.resume_at(&here));
    assert_eq!(paths(again.next_page().await.unwrap().unwrap()), first);

    // A point that would change the mode (or drop it) is refused; the pager is unchanged.
    let mut forged = hub.list_tree(&id, Some("d"), Some(true)).unwrap();
    assert!(!forged.resume_at(&next.replace("recursive=true", "recursive=false")));
    assert!(!forged.resume_at("cursor=00"));
    assert_eq!(forged.pages_fetched(), 0);
    assert_eq!(
        paths(forged.next_page().await.unwrap().unwrap()).len(),
        10,
        "starts from the beginning"
    );
    // Points are the query only: the listing's path and host cannot be changed.
    let mut other = hub.list_tree(&id, Some("e"), Some(true)).unwrap();
    assert!(other.resume_at(&next));
    assert!(other.next_page().await.unwrap().unwrap().is_empty());
}
