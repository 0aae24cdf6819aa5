//! Group commit for the Hub's many-in-one calls (`/batch`, `paths-info`).
//!
//! Each of those calls takes up to 1 000 operations or paths, and each call costs one unit
//! of the scarce `/api/` rate-limit budget. Requests that arrive together are therefore
//! sent together: per bucket, one call is in flight at a time, and requests arriving
//! while a call is in flight queue up and go, as many as fit, in the next call. Under load
//! (or while the Hub's rate limit holds a call back) calls fill up by themselves.
//!
//! A request that finds the bucket idle is sent at once, unless the caller announced
//! that more are on their way ([`Coalescer::expect`]: the gateway does so for every PUT
//! from its start until its commit, so concurrent uploads such as `aws s3 sync`'s meet):
//! then the call waits for them, at most [`LINGER`] longer. When the Hub says less than
//! half of the `/api/` budget of its window is left, every call waits [`LINGER`] to fill
//! up. Otherwise a lone request waits for nothing.
//!
//! Each request gets its own outcome: the call's answer is split back per request (see
//! [`Job::split`]). A failure of the whole call goes to every request in it, as
//! [`UpstreamError::Shared`] when there are several.
//!
//! A coalescer may also be paced ([`Coalescer::paced`]): its calls for one bucket are then at
//! least that long apart, and whatever arrives in between shares the next call (the
//! gateway's multipart part records: a long upload costs one call per interval).
//!
//! Order: requests are sent in arrival order, and one call never carries two requests
//! that touch the same path ([`Job::keys`]): the later one waits for the next call, so a
//! path's writes reach the Hub in the order they were made even when a caller gave up
//! waiting (a dropped request still queued is not sent at all).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::encode::BucketId;
use crate::error::{Result, UpstreamError};
use crate::hub::HubClient;

/// The future of one coalesced call: one outcome per request, in order.
pub(crate) type CallFuture<O> = Pin<Box<dyn Future<Output = Result<Vec<O>>> + Send>>;

/// A kind of coalesced call.
pub(crate) trait Job: Send + Sync + 'static {
    /// One request (e.g. the batch operations of one commit).
    type Item: Send + 'static;
    /// Its outcome.
    type Out: Send + 'static;
    /// Most units (operations, paths) one call should carry.
    const MAX_WEIGHT: usize;
    /// Units of one request.
    fn weight(item: &Self::Item) -> usize;
    /// Paths a request touches; two requests sharing one never go in the same call.
    fn keys(item: &Self::Item) -> Vec<String>;
    /// Makes the call for `items` and returns one outcome per item, in order.
    fn run(hub: HubClient, id: BucketId, items: Vec<Self::Item>) -> CallFuture<Self::Out>;
}

struct Pending<J: Job> {
    item: J::Item,
    tx: oneshot::Sender<Result<J::Out>>,
}

/// Longest a call waits for announced requests after its first one was queued.
pub(crate) const LINGER: Duration = Duration::from_millis(50);

struct Lane<J: Job> {
    queue: VecDeque<Pending<J>>,
    /// A driver task is sending this lane's calls.
    running: bool,
    /// Requests announced with [`Coalescer::expect`] and not submitted yet.
    expected: usize,
    /// Wakes a lingering driver (a request arrived or an announcement ended).
    wake: Arc<Notify>,
    /// When this lane's last call was taken off its queue (paced coalescers only).
    last_call: Option<tokio::time::Instant>,
}

impl<J: Job> Default for Lane<J> {
    fn default() -> Self {
        Lane {
            queue: VecDeque::new(),
            running: false,
            expected: 0,
            wake: Arc::default(),
            last_call: None,
        }
    }
}

impl<J: Job> Lane<J> {
    fn idle(&self) -> bool {
        self.queue.is_empty() && self.expected == 0 && !self.running
    }

    /// Whether the lane can be forgotten: idle, and (when paced) its last call is at
    /// least `pace` old, so that a new lane cannot call sooner than this one could.
    fn forgettable(&self, pace: Duration) -> bool {
        self.idle() && self.last_call.is_none_or(|t| t.elapsed() >= pace)
    }
}

/// An announced request (see [`Coalescer::expect`]); dropping it ends the announcement.
pub(crate) struct Expected<J: Job> {
    coalescer: Arc<Coalescer<J>>,
    key: String,
}

impl<J: Job> Drop for Expected<J> {
    fn drop(&mut self) {
        let mut lanes = self
            .coalescer
            .lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(lane) = lanes.get_mut(&self.key) {
            lane.expected = lane.expected.saturating_sub(1);
            lane.wake.notify_one();
            if lane.forgettable(self.coalescer.pace) {
                lanes.remove(&self.key);
            }
        }
    }
}

/// The queues of one kind of call, per bucket.
pub(crate) struct Coalescer<J: Job> {
    lanes: Mutex<HashMap<String, Lane<J>>>,
    /// Least time between two calls for one bucket (zero: none).
    pace: Duration,
}

impl<J: Job> std::fmt::Debug for Coalescer<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<J: Job> Default for Coalescer<J> {
    fn default() -> Self {
        Coalescer::paced(Duration::ZERO)
    }
}

impl<J: Job> Coalescer<J> {
    /// A coalescer whose calls for one bucket are at least `pace` apart.
    pub fn paced(pace: Duration) -> Self {
        Coalescer {
            lanes: Mutex::default(),
            pace,
        }
    }

    /// Announces a request for bucket `id` that will be submitted soon: until the returned
    /// guard drops, a call of the bucket waits for it (at most [`LINGER`]). Drop the guard
    /// before submitting the request itself.
    pub fn expect(self: &Arc<Self>, id: &BucketId) -> Expected<J> {
        let key = id.to_string();
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.entry(key.clone()).or_default().expected += 1;
        Expected {
            coalescer: self.clone(),
            key,
        }
    }

    /// Queues `item` for bucket `id` and waits for its outcome. The calls run on a task of
    /// their own (spawned on the current tokio runtime), so a caller that goes away does not
    /// break the call others are waiting for.
    pub async fn submit(
        self: &Arc<Self>,
        hub: &HubClient,
        id: &BucketId,
        item: J::Item,
    ) -> Result<J::Out> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let lane = lanes.entry(id.to_string()).or_default();
            lane.queue.push_back(Pending { item, tx });
            lane.wake.notify_one();
            !std::mem::replace(&mut lane.running, true)
        };
        if start {
            tokio::spawn(self.clone().drive(hub.clone(), id.clone()));
        }
        rx.await.unwrap_or_else(|_| {
            Err(UpstreamError::Config(
                "the coalesced call's task ended without an answer".into(),
            ))
        })
    }

    /// Takes the next call's requests off `id`'s queue: in order, at least one, then while
    /// they fit in [`Job::MAX_WEIGHT`] and touch no path already in the call. Requests
    /// whose caller went away are dropped unsent. Empty when the queue is: the lane is then
    /// idle (no longer running; removed unless requests are announced).
    fn next_call(&self, id: &str) -> Vec<Pending<J>> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lane) = lanes.get_mut(id) else {
            return Vec::new();
        };
        let mut call = Vec::new();
        let mut weight = 0;
        let mut keys = HashSet::new();
        while let Some(p) = lane.queue.front() {
            if p.tx.is_closed() {
                lane.queue.pop_front();
                continue;
            }
            let w = J::weight(&p.item);
            let k = J::keys(&p.item);
            let conflicts = k.iter().any(|k| keys.contains(k));
            if !call.is_empty() && (weight + w > J::MAX_WEIGHT || conflicts) {
                break;
            }
            weight += w;
            keys.extend(k);
            call.extend(lane.queue.pop_front());
        }
        if call.is_empty() {
            lane.running = false;
            if lane.forgettable(self.pace) {
                lanes.remove(id);
            }
        } else if !self.pace.is_zero() {
            lane.last_call = Some(tokio::time::Instant::now());
        }
        call
    }

    /// Waits while requests may still join the next call: announced ones for `id` (until
    /// none is left), or any when the `/api/` budget is `scarce`; at most [`LINGER`], and
    /// not once the queue holds a full call.
    async fn linger(&self, id: &str, scarce: bool) {
        let deadline = tokio::time::Instant::now() + LINGER;
        loop {
            let wake = {
                let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
                let Some(lane) = lanes.get(id) else {
                    return;
                };
                let queued: usize = lane.queue.iter().map(|p| J::weight(&p.item)).sum();
                if (lane.expected == 0 && !scarce) || queued >= J::MAX_WEIGHT {
                    return;
                }
                lane.wake.clone()
            };
            if tokio::time::timeout_at(deadline, wake.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Waits until `id`'s next call is [`Coalescer::paced`]'s pace after its last one.
    async fn pace(&self, id: &str) {
        let due = {
            let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes
                .get(id)
                .and_then(|l| l.last_call)
                .map(|t| t + self.pace)
        };
        if let Some(due) = due {
            tokio::time::sleep_until(due).await;
        }
    }

    /// Sends calls for `id` until its queue is empty.
    async fn drive(self: Arc<Self>, hub: HubClient, id: BucketId) {
        let key = id.to_string();
        // Should a call panic, the lane is released (its waiters get an error) rather
        // than left marked busy forever.
        let _release = Release {
            coalescer: &self,
            key: &key,
        };
        loop {
            self.pace(&key).await;
            self.linger(&key, hub.api_budget_scarce()).await;
            let call = self.next_call(&key);
            if call.is_empty() {
                return;
            }
            let (items, txs): (Vec<_>, Vec<_>) = call.into_iter().map(|p| (p.item, p.tx)).unzip();
            match J::run(hub.clone(), id.clone(), items).await {
                Ok(outs) => {
                    for (tx, out) in txs.into_iter().zip(outs) {
                        let _ = tx.send(Ok(out));
                    }
                }
                Err(e) if txs.len() == 1 => {
                    let _ = txs.into_iter().next().map(|tx| tx.send(Err(e)));
                }
                Err(e) => {
                    let shared = Arc::new(e);
                    for tx in txs {
                        let _ = tx.send(Err(UpstreamError::Shared(shared.clone())));
                    }
                }
            }
        }
    }
}

/// Forgets a lane when its driver ends by unwinding (a normal end already removed it).
struct Release<'a, J: Job> {
    coalescer: &'a Coalescer<J>,
    key: &'a str,
}

impl<J: Job> Drop for Release<'_, J> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut lanes = self
                .coalescer
                .lanes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            lanes.remove(self.key);
        }
    }
}
