//! Fault injection. Off unless rules are given (`hugbucket hub --fault RULE`, `hugbucket
//! serve --hub-fault RULE`, [`crate::HubConfig::faults`] or [`Faults::push`] at run time).
//!
//! Every request consults [`Faults::check`] with its route before it is handled; the first
//! rule that matches and still has a count left decides what happens to that request.
//!
//! # Rule grammar
//!
//! ```text
//! RULE   = ROUTE ":" ACTION [ ":" COUNT ]
//! ROUTE  = a route name as in the stats endpoint (`fetch`, `xorb_upload`, `batch`,
//!          `reconstruction_v2`, `shard_v2`, `xet_read_token`, ...) | "*" (any route)
//! ACTION = STATUS              answer with this HTTP status instead of handling the request
//!                              (e.g. 500, 503; the body is a JSON error, X-Error-Code
//!                              `InjectedFault`)
//!        | "delay=" DURATION   wait DURATION, then handle the request normally
//!        | "reset=" BYTES      handle the request, send the response head and BYTES bytes of
//!                              its body, then reset the connection (TCP RST)
//!        | "truncate=" BYTES   handle the request, send the response head (with the full
//!                              Content-Length) and BYTES bytes of its body, then close the
//!                              connection cleanly: the body is shorter than promised
//!        | "trickle=" RATE     handle the request, but send the body at RATE bytes per second
//!        | "expired"           answer 401 "xet access token expired", as the CAS does for a
//!                              token past its expiry (a client must fetch a new token from
//!                              the token route and retry)
//! COUNT  = how many requests the rule applies to (default: all of them)
//! DURATION = NUMBER ("ms" | "s")?   (a bare number is milliseconds)
//! ```
//!
//! Examples: `fetch:503:2`, `*:delay=200ms`, `fetch:reset=1000:1`, `fetch:truncate=0:3`,
//! `fetch:trickle=65536`, `reconstruction_v2:expired:1`.

use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};

use crate::error::HubError;
use crate::stats::Route;

/// What a matching rule does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status instead of handling the request.
    Status(StatusCode),
    /// Wait this long, then handle the request.
    Delay(Duration),
    /// Send this many body bytes, then reset the connection.
    Reset(u64),
    /// Send this many body bytes (of a longer Content-Length), then close the connection.
    Truncate(u64),
    /// Send the body at this many bytes per second (at least 1).
    Trickle(u64),
    /// Answer 401 as for an expired xet token.
    Expired,
}

impl FaultAction {
    fn parse(s: &str) -> Result<Self, String> {
        let num = |v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("bad number {v:?} in fault action {s:?}"))
        };
        if s == "expired" {
            return Ok(Self::Expired);
        }
        if let Some(v) = s.strip_prefix("delay=") {
            return parse_duration(v).map(Self::Delay);
        }
        if let Some(v) = s.strip_prefix("reset=") {
            return Ok(Self::Reset(num(v)?));
        }
        if let Some(v) = s.strip_prefix("truncate=") {
            return Ok(Self::Truncate(num(v)?));
        }
        if let Some(v) = s.strip_prefix("trickle=") {
            let rate = num(v)?;
            if rate == 0 {
                return Err(format!("fault action {s:?}: the rate must be at least 1"));
            }
            return Ok(Self::Trickle(rate));
        }
        s.parse::<u16>()
            .ok()
            .and_then(|v| StatusCode::from_u16(v).ok())
            .map(Self::Status)
            .ok_or_else(|| format!("unknown fault action {s:?}"))
    }
}

/// `parse_duration` for clap (`--fetch-url-ttl`).
pub fn parse_duration_arg(v: &str) -> Result<Duration, String> {
    parse_duration(v)
}

/// Parses `250ms`, `2s` or a bare number of milliseconds.
fn parse_duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {v:?} (e.g. 250ms, 2s)");
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.parse().map(Duration::from_millis).map_err(|_| bad());
    }
    if let Some(s) = v.strip_suffix('s') {
        return s.parse().map(Duration::from_secs).map_err(|_| bad());
    }
    v.parse().map(Duration::from_millis).map_err(|_| bad())
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Route it applies to (`None` = all).
    pub route: Option<Route>,
    /// What it does.
    pub action: FaultAction,
    /// Remaining requests it applies to (`None` = unlimited).
    pub remaining: Option<u64>,
}

impl FaultRule {
    /// A rule answering `status` to the next `count` requests of `route`.
    pub fn status(route: Route, status: StatusCode, count: u64) -> Self {
        Self {
            route: Some(route),
            action: FaultAction::Status(status),
            remaining: Some(count),
        }
    }
}

impl std::str::FromStr for FaultRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.split(':');
        let route = match it.next() {
            Some("*") => None,
            Some("") | None => return Err("empty fault rule".into()),
            Some(name) => {
                Some(Route::from_name(name).ok_or_else(|| format!("unknown route {name:?}"))?)
            }
        };
        let action = FaultAction::parse(
            it.next()
                .ok_or_else(|| format!("fault rule {s:?}: missing action"))?,
        )
        .map_err(|e| format!("fault rule {s:?}: {e}"))?;
        let remaining = match it.next() {
            Some(c) => Some(
                c.parse()
                    .map_err(|_| format!("fault rule {s:?}: bad count"))?,
            ),
            None => None,
        };
        if it.next().is_some() {
            return Err(format!("fault rule {s:?}: too many fields"));
        }
        Ok(Self {
            route,
            action,
            remaining,
        })
    }
}

/// The active fault rules (none by default).
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    /// Faults from rules.
    pub fn new(rules: Vec<FaultRule>) -> Self {
        Self {
            rules: Mutex::new(rules),
        }
    }

    /// Adds a rule at run time.
    pub fn push(&self, rule: FaultRule) {
        if let Ok(mut g) = self.rules.lock() {
            g.push(rule);
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        if let Ok(mut g) = self.rules.lock() {
            g.clear();
        }
    }

    /// The action for this request, if a rule matches (consuming one of its count).
    pub fn check(&self, route: Route) -> Option<FaultAction> {
        let mut g = self.rules.lock().ok()?;
        if g.is_empty() {
            return None;
        }
        for rule in g.iter_mut() {
            if rule.route.is_some_and(|r| r != route) {
                continue;
            }
            match &mut rule.remaining {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            return Some(rule.action);
        }
        None
    }
}

/// The error answered for a status or `expired` action (`None` for the others).
pub(crate) fn injected_error(action: FaultAction) -> Option<HubError> {
    match action {
        FaultAction::Status(status) => Some(HubError::Injected { status }),
        FaultAction::Expired => Some(HubError::Unauthorized("xet access token expired".into())),
        _ => None,
    }
}

/// Set by a faulty body that wants its connection reset instead of closed; read by the
/// connection's I/O wrapper when it is dropped.
pub(crate) type ResetFlag = std::sync::Arc<AtomicBool>;

/// What happens to the body once its byte budget is spent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    Reset,
    Truncate,
}

/// A response body altered by a reset, truncate or trickle fault. It keeps the inner body's
/// size hint, so the response still announces the full Content-Length.
pub(crate) struct FaultBody<B> {
    inner: B,
    hint: SizeHint,
    /// Bytes that may still be sent before the cut (`None` = no cut).
    budget: Option<u64>,
    cut: Cut,
    reset: ResetFlag,
    /// Bytes per second when trickling.
    rate: Option<u64>,
    /// Data received from the inner body but not sent yet (trickle).
    pending: Bytes,
    /// Pause before the next piece (trickle), or before failing after the cut (so the bytes
    /// before it leave the socket first).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The budget is spent: fail (or end) after the pause.
    cutting: bool,
    done: bool,
}

/// Trickled bodies are sent in pieces of at most this many milliseconds' worth of bytes.
const TRICKLE_TICK_MS: u64 = 50;

impl<B: Body<Data = Bytes> + Unpin> FaultBody<B> {
    /// Wraps `inner` for `action` (a reset, truncate or trickle action; others pass through).
    pub(crate) fn new(inner: B, action: FaultAction, reset: ResetFlag) -> Self {
        let hint = inner.size_hint();
        let (budget, cut, rate) = match action {
            FaultAction::Reset(n) => (Some(n), Cut::Reset, None),
            FaultAction::Truncate(n) => (Some(n), Cut::Truncate, None),
            FaultAction::Trickle(r) => (None, Cut::Truncate, Some(r.max(1))),
            _ => (None, Cut::Truncate, None),
        };
        Self {
            inner,
            hint,
            budget,
            cut,
            reset,
            rate,
            pending: Bytes::new(),
            sleep: None,
            cutting: false,
            done: false,
        }
    }

    fn start_cut(&mut self) {
        self.cutting = true;
        if self.cut == Cut::Reset {
            self.reset.store(true, Ordering::Relaxed);
        }
        self.sleep = Some(Box::pin(tokio::time::sleep(Duration::from_millis(50))));
    }

    /// The next piece of `pending` to send, honouring the budget and the rate.
    fn take_pending(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            return None;
        }
        let mut n = self.pending.len() as u64;
        if let Some(rate) = self.rate {
            n = n.min((rate * TRICKLE_TICK_MS / 1000).max(1));
            self.sleep = Some(Box::pin(tokio::time::sleep(Duration::from_millis(
                (n * 1000 / rate).max(1),
            ))));
        }
        if let Some(b) = self.budget {
            n = n.min(b);
        }
        let piece = self.pending.split_to(n as usize);
        if let Some(b) = self.budget.as_mut() {
            *b -= n;
        }
        Some(piece)
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for FaultBody<B>
where
    B::Error: From<std::io::Error>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(s) = this.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            if this.cutting {
                this.done = true;
                return match this.cut {
                    // Ending early leaves the response short of its Content-Length: hyper
                    // closes the connection.
                    Cut::Truncate => Poll::Ready(None),
                    Cut::Reset => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "injected connection reset",
                    )
                    .into()))),
                };
            }
            if this.budget == Some(0) {
                this.start_cut();
                continue;
            }
            if let Some(piece) = this.take_pending() {
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn rules_count_down() {
        let f = Faults::new(vec!["batch:500:2".parse().unwrap()]);
        assert!(f.check(Route::Tree).is_none());
        assert!(
            matches!(f.check(Route::Batch), Some(FaultAction::Status(status)) if status == 500)
        );
        assert!(f.check(Route::Batch).is_some());
        assert!(f.check(Route::Batch).is_none());
        assert!("nope:500".parse::<FaultRule>().is_err());
        assert!("*:503".parse::<FaultRule>().unwrap().route.is_none());
    }

    #[test]
    fn grammar() {
        let p = |s: &str| s.parse::<FaultRule>().map(|r| (r.action, r.remaining));
        assert_eq!(
            p("fetch:delay=200ms:3"),
            Ok((FaultAction::Delay(Duration::from_millis(200)), Some(3)))
        );
        assert_eq!(
            p("fetch:delay=2s"),
            Ok((FaultAction::Delay(Duration::from_secs(2)), None))
        );
        assert_eq!(
            p("fetch:delay=15"),
            Ok((FaultAction::Delay(Duration::from_millis(15)), None))
        );
        assert_eq!(
            p("fetch:reset=1000:1"),
            Ok((FaultAction::Reset(1000), Some(1)))
        );
        assert_eq!(p("fetch:truncate=0"), Ok((FaultAction::Truncate(0), None)));
        assert_eq!(
            p("fetch:trickle=4096"),
            Ok((FaultAction::Trickle(4096), None))
        );
        assert_eq!(
            p("reconstruction_v2:expired:1"),
            Ok((FaultAction::Expired, Some(1)))
        );
        for bad in [
            "",
            "fetch",
            "fetch:",
            "fetch:teapot",
            "fetch:trickle=0",
            "fetch:delay=fast",
            "fetch:reset=-1",
            "fetch:503:x",
            "fetch:503:1:2",
            "fetch:99",
        ] {
            assert!(bad.parse::<FaultRule>().is_err(), "{bad:?}");
        }
        let f = Faults::new(vec!["fetch:expired:1".parse().unwrap()]);
        let e = injected_error(f.check(Route::Fetch).unwrap()).unwrap();
        assert_eq!(e.status_and_code().0, StatusCode::UNAUTHORIZED);
        assert!(e.to_string().contains("expired"));
        assert!(injected_error(FaultAction::Reset(1)).is_none());
    }

    fn body(data: &[u8]) -> crate::body::RespBody {
        crate::body::full(Bytes::copy_from_slice(data))
    }

    async fn collect(b: FaultBody<crate::body::RespBody>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut b = b;
        loop {
            match b.frame().await {
                None => return (out, false),
                Some(Ok(f)) => out.extend_from_slice(&f.into_data().unwrap()),
                Some(Err(_)) => return (out, true),
            }
        }
    }

    #[tokio::test]
    async fn bodies_are_cut_and_trickled() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let flag = ResetFlag::default();
        let b = FaultBody::new(body(&data), FaultAction::Truncate(1234), flag.clone());
        assert_eq!(b.size_hint().exact(), Some(10_000));
        let (got, failed) = collect(b).await;
        assert_eq!((got.as_slice(), failed), (&data[..1234], false));
        assert!(!flag.load(Ordering::Relaxed));

        let b = FaultBody::new(body(&data), FaultAction::Reset(10), flag.clone());
        let (got, failed) = collect(b).await;
        assert_eq!((got.as_slice(), failed), (&data[..10], true));
        assert!(flag.load(Ordering::Relaxed));

        // 10 000 bytes at 40 000 B/s: about a quarter of a second, in many pieces.
        let started = std::time::Instant::now();
        let mut b = FaultBody::new(
            body(&data),
            FaultAction::Trickle(40_000),
            ResetFlag::default(),
        );
        let mut pieces = 0;
        let mut got = Vec::new();
        while let Some(f) = b.frame().await {
            got.extend_from_slice(&f.unwrap().into_data().unwrap());
            pieces += 1;
        }
        assert_eq!(got, data);
        assert!(pieces >= 5, "{pieces} pieces");
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}
