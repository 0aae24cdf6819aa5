//! Emulated rate limits, as huggingface.co applies them (off unless configured).
//!
//! The Hub counts calls per route class over fixed windows and answers with the IETF
//! RateLimit draft headers, which clients (`huggingface_hub`, our upstream client) read:
//! every answer of a limited class carries `RateLimit: "<class>";r=<remaining>;t=<reset s>`
//! and `RateLimit-Policy: "fixed window";"<class>";q=<quota>;w=<window s>`; a call past the
//! quota is answered 429 with those headers and `Retry-After: <reset s>`, and is not served.
//!
//! Classes (rule names): `api` (`/api/...` routes), `resolvers` (`/buckets/.../resolve/...`)
//! and `cas` (the CAS routes and fetch URLs, a separate service with its own limits on
//! huggingface.co). The test-only stats route is never limited. One window per class for
//! the whole hub (the real Hub keeps one per user or IP; the embedded hub has one user).
//!
//! Rule syntax (`--rate-limit`, repeatable): `CLASS=QUOTA/WINDOW`, WINDOW in whole seconds
//! (`300s`, `10s`) or minutes (`5m`), e.g. `api=500/300s` (the anonymous quota on
//! huggingface.co in September 2025) or `api=100/10s` (tests).

use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};

use crate::stats::Route;

/// A route class with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitClass {
    /// `/api/...`
    Api,
    /// `/buckets/.../resolve/...`
    Resolvers,
    /// CAS routes and fetch URLs.
    Cas,
}

impl LimitClass {
    /// The rule and header name.
    pub fn name(self) -> &'static str {
        match self {
            LimitClass::Api => "api",
            LimitClass::Resolvers => "resolvers",
            LimitClass::Cas => "cas",
        }
    }

    /// The class of `route` (`None`: never limited).
    pub fn of(route: Route) -> Option<LimitClass> {
        use Route as R;
        Some(match route {
            R::Stats | R::Unknown => return None,
            R::ResolveHead | R::ResolveGet => LimitClass::Resolvers,
            R::XorbGrant
            | R::XorbUpload
            | R::ShardV1
            | R::ShardV2
            | R::DedupQuery
            | R::ReconV1
            | R::ReconV2
            | R::Fetch
            | R::Telemetry => LimitClass::Cas,
            _ => LimitClass::Api,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One `--rate-limit` rule: `quota` calls of `class` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitRule {
    /// The class limited.
    pub class: LimitClass,
    /// Calls allowed per window.
    pub quota: u64,
    /// The window (whole seconds).
    pub window: Duration,
}

impl FromStr for RateLimitRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("rate limit {s:?}: expected CLASS=QUOTA/WINDOW, e.g. api=500/300s");
        let (class, rest) = s.split_once('=').ok_or_else(bad)?;
        let class = match class.trim() {
            "api" => LimitClass::Api,
            "resolvers" | "resolve" => LimitClass::Resolvers,
            "cas" => LimitClass::Cas,
            other => {
                return Err(format!(
                    "rate limit {s:?}: unknown class {other:?} (api, resolvers, cas)"
                ));
            }
        };
        let (quota, window) = rest.split_once('/').ok_or_else(bad)?;
        let quota: u64 = quota.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let secs: u64 = if let Some(m) = window.strip_suffix('m') {
            m.parse::<u64>().map_err(|_| bad())?.saturating_mul(60)
        } else {
            window
                .strip_suffix('s')
                .unwrap_or(window)
                .parse()
                .map_err(|_| bad())?
        };
        if quota == 0 || secs == 0 {
            return Err(format!(
                "rate limit {s:?}: quota and window must be positive"
            ));
        }
        Ok(RateLimitRule {
            class,
            quota,
            window: Duration::from_secs(secs),
        })
    }
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The rule that applies.
    pub rule: RateLimitRule,
    /// Calls left in the window after this one.
    pub remaining: u64,
    /// Whole seconds until the window resets (at least 1).
    pub reset_secs: u64,
    /// False: answer 429.
    pub allowed: bool,
}

impl Decision {
    /// Adds `RateLimit` and `RateLimit-Policy` (and on refusal `Retry-After`).
    pub fn set_headers(&self, h: &mut HeaderMap) {
        let name = self.rule.class.name();
        let values = [
            (
                "ratelimit",
                format!("\"{name}\";r={};t={}", self.remaining, self.reset_secs),
            ),
            (
                "ratelimit-policy",
                format!(
                    "\"fixed window\";\"{name}\";q={};w={}",
                    self.rule.quota,
                    self.rule.window.as_secs()
                ),
            ),
        ];
        for (k, v) in values {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        if !self.allowed {
            h.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(self.reset_secs),
            );
        }
    }
}

/// A fixed window: when it started and how many calls it counted.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    used: u64,
}

/// The configured limits with their current windows.
#[derive(Debug, Default)]
pub struct Limiter {
    rules: [Option<(RateLimitRule, Mutex<Option<Window>>)>; 3],
}

impl Limiter {
    /// Limits from `rules` (a later rule for a class replaces an earlier one).
    pub fn new(rules: &[RateLimitRule]) -> Self {
        let mut l = Limiter::default();
        for r in rules {
            l.rules[r.class.index()] = Some((*r, Mutex::new(None)));
        }
        l
    }

    /// Counts a call of `route` now; `None` when its class is not limited.
    pub fn check(&self, route: Route) -> Option<Decision> {
        self.check_at(route, Instant::now())
    }

    fn check_at(&self, route: Route, now: Instant) -> Option<Decision> {
        let class = LimitClass::of(route)?;
        let (rule, window) = self.rules[class.index()].as_ref()?;
        let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
        let current = match *w {
            Some(cur) if now.duration_since(cur.start) < rule.window => cur,
            _ => Window {
                start: now,
                used: 0,
            },
        };
        let allowed = current.used < rule.quota;
        let used = current.used + u64::from(allowed);
        *w = Some(Window { used, ..current });
        let left = rule
            .window
            .saturating_sub(now.duration_since(current.start));
        Some(Decision {
            rule: *rule,
            remaining: rule.quota - used,
            reset_secs: left.as_secs_f64().ceil().max(1.0) as u64,
            allowed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let r: RateLimitRule = "api=500/300s".parse().unwrap();
        assert_eq!(
            (r.class, r.quota, r.window),
            (LimitClass::Api, 500, Duration::from_secs(300))
        );
        let r: RateLimitRule = "resolvers=3000/5m".parse().unwrap();
        assert_eq!(
            (r.class, r.window),
            (LimitClass::Resolvers, Duration::from_secs(300))
        );
        assert_eq!("cas=7/10".parse::<RateLimitRule>().unwrap().quota, 7);
        for bad in [
            "",
            "api",
            "api=5",
            "api=x/10s",
            "api=0/10s",
            "api=5/0s",
            "web=5/10s",
        ] {
            assert!(bad.parse::<RateLimitRule>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fixed_window_counts_per_class_and_resets() {
        let l = Limiter::new(&["api=2/10s".parse().unwrap()]);
        let t0 = Instant::now();
        let d = l.check_at(Route::Batch, t0).unwrap();
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (1, 10));
        let d = l
            .check_at(Route::Tree, t0 + Duration::from_millis(3500))
            .unwrap();
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (0, 7));
        let d = l
            .check_at(Route::PathsInfo, t0 + Duration::from_secs(9))
            .unwrap();
        assert!(!d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (0, 1));
        // Other classes and the stats route are not limited.
        assert_eq!(l.check_at(Route::ResolveHead, t0), None);
        assert_eq!(l.check_at(Route::XorbUpload, t0), None);
        assert_eq!(l.check_at(Route::Stats, t0), None);
        // A new window.
        let d = l
            .check_at(Route::Batch, t0 + Duration::from_secs(10))
            .unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        let mut h = HeaderMap::new();
        Decision {
            allowed: false,
            remaining: 0,
            reset_secs: 55,
            ..d
        }
        .set_headers(&mut h);
        assert_eq!(h["ratelimit"], "\"api\";r=0;t=55");
        assert_eq!(h["ratelimit-policy"], "\"fixed window\";\"api\";q=2;w=10");
        assert_eq!(h["retry-after"], "55");
    }
}
