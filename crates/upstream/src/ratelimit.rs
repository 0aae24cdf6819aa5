//! The Hub's rate limits, as the client sees them.
//!
//! The Hub counts calls in separate budgets per route class over fixed windows (5 minutes
//! on huggingface.co): `/api/...` calls, resolver calls (any URL with a `/resolve/`
//! segment) and, as a separate service, the CAS. It reports them with the IETF RateLimit
//! header draft, as `huggingface_hub` reads them:
//!
//! - `RateLimit: "api";r=0;t=55`: `r` calls remain in the window, which resets in `t`
//!   seconds;
//! - `RateLimit-Policy: "fixed window";"api";q=500;w=300`: `q` calls per `w` seconds;
//! - on 429, possibly `Retry-After: <seconds>`.
//!
//! `Gate` remembers, per class, until when the Hub said no call can succeed (a 429, or
//! any answer with `r=0`), so that concurrent callers wait for the reset instead of each
//! spending a call on another 429, and whether less than half of a class's budget is
//! left (then coalesced calls wait a little to fill up). How long a call may wait is the
//! retry policy's business (`crate::retry`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;

pub use crate::metrics::RouteClass;

/// A parsed `RateLimit` header: `remaining` calls left, window resets in `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    /// Calls left in the current window (`r`).
    pub remaining: u64,
    /// Time until the window resets (`t`).
    pub reset: Duration,
}

/// Parses `RateLimit: "name";r=N;t=S` (parameters in any order; the first item of a
/// list wins). `None` when absent or without both `r` and `t`.
pub fn parse_ratelimit(headers: &HeaderMap) -> Option<RateLimitState> {
    let value = headers.get("ratelimit")?.to_str().ok()?;
    let first = value.split(',').next()?;
    let (mut r, mut t) = (None, None);
    for param in first.split(';').map(str::trim) {
        match param.split_once('=') {
            Some(("r", v)) => r = v.trim().parse::<u64>().ok(),
            Some(("t", v)) => t = v.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(RateLimitState {
        remaining: r?,
        reset: Duration::from_secs(t?),
    })
}

/// Parses `RateLimit-Policy: "fixed window";"name";q=N;w=S` into `(q, w)`.
pub fn parse_policy(headers: &HeaderMap) -> Option<(u64, Duration)> {
    let value = headers.get("ratelimit-policy")?.to_str().ok()?;
    let (mut q, mut w) = (None, None);
    for param in value.split(';').map(str::trim) {
        match param.split_once('=') {
            Some(("q", v)) => q = v.trim().parse::<u64>().ok(),
            Some(("w", v)) => w = v.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    Some((q?, Duration::from_secs(w?)))
}

/// How long the Hub asks to wait before calling again, from the headers of an answer:
/// the `RateLimit` reset when no call remains (what `huggingface_hub` waits for), else
/// `Retry-After` (seconds form).
pub fn wait_hint(headers: &HeaderMap) -> Option<Duration> {
    if let Some(rl) = parse_ratelimit(headers).filter(|rl| rl.remaining == 0) {
        return Some(rl.reset);
    }
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Per class: no call is sent before this instant (the Hub said the budget is spent).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    closed_until: Mutex<[Option<Instant>; 3]>,
    /// Per class, the last `(remaining, quota)` the Hub announced.
    budget: Mutex<[Option<(u64, u64)>; 3]>,
}

impl Gate {
    /// Records the rate-limit headers of an answer to a call of `class` that got
    /// `status`: a 429, or an answer with `r=0`, closes the class until the reset.
    pub fn observe(&self, class: RouteClass, status: u16, headers: &HeaderMap) {
        if let (Some(rl), Some((quota, _))) = (parse_ratelimit(headers), parse_policy(headers)) {
            let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
            b[class as usize] = Some((rl.remaining, quota));
        }
        let spent = parse_ratelimit(headers).is_some_and(|rl| rl.remaining == 0);
        if status != 429 && !spent {
            return;
        }
        if let Some(wait) = wait_hint(headers) {
            self.close(class, Instant::now() + wait);
        }
    }

    /// Closes `class` until `until` (never shortens an existing closure).
    pub fn close(&self, class: RouteClass, until: Instant) {
        let mut g = self.closed_until.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut g[class as usize];
        if slot.is_none_or(|t| t < until) {
            *slot = Some(until);
        }
    }

    /// Whether the Hub said that less than half of `class`'s budget is left in the
    /// current window: then calls are worth filling up (see `crate::coalesce`).
    pub fn scarce(&self, class: RouteClass) -> bool {
        let b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        b[class as usize].is_some_and(|(remaining, quota)| remaining * 2 < quota)
    }

    /// How long a call of `class` must wait from now (zero when open).
    pub fn wait_for(&self, class: RouteClass) -> Duration {
        let g = self.closed_until.lock().unwrap_or_else(|e| e.into_inner());
        g[class as usize]
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn parses_the_hub_headers() {
        let h = headers(&[
            ("ratelimit", "\"api\";r=0;t=55"),
            ("ratelimit-policy", "\"fixed window\";\"api\";q=500;w=300"),
            ("retry-after", "7"),
        ]);
        assert_eq!(
            parse_ratelimit(&h),
            Some(RateLimitState {
                remaining: 0,
                reset: Duration::from_secs(55)
            })
        );
        assert_eq!(parse_policy(&h), Some((500, Duration::from_secs(300))));
        // The RateLimit reset wins over Retry-After, as in huggingface_hub.
        assert_eq!(wait_hint(&h), Some(Duration::from_secs(55)));
        let h = headers(&[("ratelimit", "\"api\";t=3;r=12"), ("retry-after", "7")]);
        assert_eq!(parse_ratelimit(&h).map(|r| r.remaining), Some(12));
        assert_eq!(wait_hint(&h), Some(Duration::from_secs(7)));
        for bad in ["", "\"api\"", "\"api\";r=x;t=1", "\"api\";r=1"] {
            let mut h = HeaderMap::new();
            h.insert("ratelimit", HeaderValue::from_str(bad).unwrap());
            assert_eq!(parse_ratelimit(&h), None, "{bad:?}");
        }
        assert_eq!(wait_hint(&HeaderMap::new()), None);
    }

    #[test]
    fn gate_closes_on_429_and_on_spent_budget_only() {
        let g = Gate::default();
        g.observe(
            RouteClass::Api,
            200,
            &headers(&[("ratelimit", "\"api\";r=5;t=30")]),
        );
        assert_eq!(g.wait_for(RouteClass::Api), Duration::ZERO);
        g.observe(
            RouteClass::Api,
            200,
            &headers(&[("ratelimit", "\"api\";r=0;t=30")]),
        );
        let w = g.wait_for(RouteClass::Api);
        assert!(
            w > Duration::from_secs(29) && w <= Duration::from_secs(30),
            "{w:?}"
        );
        assert_eq!(g.wait_for(RouteClass::Resolve), Duration::ZERO);
        assert!(!g.scarce(RouteClass::Api), "no policy announced");
        let policy = "\"fixed window\";\"api\";q=10;w=30";
        g.observe(
            RouteClass::Api,
            200,
            &headers(&[
                ("ratelimit", "\"api\";r=5;t=30"),
                ("ratelimit-policy", policy),
            ]),
        );
        assert!(!g.scarce(RouteClass::Api));
        g.observe(
            RouteClass::Api,
            200,
            &headers(&[
                ("ratelimit", "\"api\";r=4;t=30"),
                ("ratelimit-policy", policy),
            ]),
        );
        assert!(g.scarce(RouteClass::Api));
        assert!(!g.scarce(RouteClass::Resolve));
        g.observe(RouteClass::Cas, 429, &headers(&[("retry-after", "2")]));
        assert!(g.wait_for(RouteClass::Cas) > Duration::from_secs(1));
        // A shorter closure does not reopen early.
        g.close(RouteClass::Api, Instant::now());
        assert!(g.wait_for(RouteClass::Api) > Duration::from_secs(29));
    }
}
