//! Jittered exponential backoff, bounded in attempts and in total time.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::config::RetryConfig;
use crate::error::{Result, UpstreamError};

/// The un-jittered delay before retry number `retry` (0 = first retry):
/// `min(max_delay, base_delay * 2^retry)`.
pub fn backoff_ceiling(cfg: &RetryConfig, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    cfg.base_delay
        .checked_mul(factor)
        .unwrap_or(cfg.max_delay)
        .min(cfg.max_delay)
}

/// The jittered delay before retry number `retry` for a random `unit` in `[0, 1)`:
/// "equal jitter", uniformly in `[ceiling / 2, ceiling)`, so delays still grow while
/// concurrent clients spread out.
pub fn backoff_delay(cfg: &RetryConfig, retry: u32, unit: f64) -> Duration {
    let ceiling = backoff_ceiling(cfg, retry);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = ceiling / 2;
    half + half.mul_f64(unit)
}

/// Decides whether to retry after the failure of attempt number `attempt` (1-based), given
/// the time `elapsed` since the first attempt started. Returns the delay to wait, or `None`
/// when the error is not retryable, the attempts are used up, or the delay would end past
/// the total budget. A server's `Retry-After` raises the delay (capped at `max_delay`).
/// A 429 is decided by [`throttle_decision`] instead.
pub fn retry_decision(
    cfg: &RetryConfig,
    attempt: u32,
    elapsed: Duration,
    err: &UpstreamError,
    unit: f64,
) -> Option<Duration> {
    if is_throttle(err) {
        return throttle_decision(cfg, attempt, elapsed, err, unit);
    }
    if !err.is_retryable() || attempt >= cfg.max_attempts {
        return None;
    }
    let mut delay = backoff_delay(cfg, attempt.saturating_sub(1), unit);
    if let Some(after) = err.retry_after() {
        delay = delay.max(after.min(cfg.max_delay));
    }
    if elapsed.saturating_add(delay) > cfg.total_budget {
        return None;
    }
    Some(delay)
}

/// Whether `err` is the Hub refusing a call for its rate limit (429).
pub fn is_throttle(err: &UpstreamError) -> bool {
    matches!(err, UpstreamError::RateLimited(_))
}

/// The retry decision for a 429: wait as long as the Hub asks (the `RateLimit` reset,
/// else `Retry-After`; see [`crate::ratelimit::wait_hint`]), plus a little jitter so that
/// waiting callers do not all return in the same millisecond, as long as the wait ends
/// within `cfg.rate_limit_budget` (`budget` of the caller's class). Without a hint, or
/// with a zero one, it is an ordinary failed attempt with backoff.
pub fn throttle_decision(
    cfg: &RetryConfig,
    attempt: u32,
    elapsed: Duration,
    err: &UpstreamError,
    unit: f64,
) -> Option<Duration> {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let delay = match err.retry_after().filter(|d| !d.is_zero()) {
        Some(wait) => wait + (wait / 20).min(Duration::from_millis(500)).mul_f64(unit),
        None if attempt >= cfg.max_attempts => return None,
        None => backoff_delay(cfg, attempt.saturating_sub(1), unit),
    };
    (elapsed.saturating_add(delay) <= cfg.rate_limit_budget).then_some(delay)
}

/// Runs `op` until it succeeds, fails with a non-retryable error, or the retry budget of
/// `cfg` is exhausted; returns the last error in the latter cases. `op` gets the 1-based
/// attempt number. A 429 that came with a wait does not use up an attempt (the
/// rate-limit budget bounds those).
pub async fn with_retry<T, F, Fut>(cfg: &RetryConfig, mut op: F) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(err) => {
                let unit: f64 = rand::random();
                match retry_decision(cfg, attempt, start.elapsed(), &err, unit) {
                    Some(delay) => {
                        let m = &crate::metrics::METRICS;
                        if is_throttle(&err) {
                            m.add_throttle_wait(delay);
                        }
                        tokio::time::sleep(delay).await;
                        if !(is_throttle(&err) && err.retry_after().is_some_and(|d| !d.is_zero())) {
                            attempt += 1;
                        }
                        m.retries.inc();
                    }
                    None => {
                        let m = &crate::metrics::METRICS;
                        m.failures.inc();
                        if is_throttle(&err) {
                            m.throttle_giveups.inc();
                        }
                        return Err(err);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HttpFailure;

    fn cfg() -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            total_budget: Duration::from_secs(60),
            ..RetryConfig::default()
        }
    }

    fn status_err(status: u16, retry_after: Option<Duration>) -> UpstreamError {
        UpstreamError::from_status(HttpFailure {
            op: "t",
            status,
            error_code: None,
            message: String::new(),
            retry_after,
        })
    }

    #[test]
    fn ceiling_doubles_and_caps() {
        let c = cfg();
        assert_eq!(backoff_ceiling(&c, 0), Duration::from_millis(200));
        assert_eq!(backoff_ceiling(&c, 1), Duration::from_millis(400));
        assert_eq!(backoff_ceiling(&c, 4), Duration::from_millis(3200));
        assert_eq!(backoff_ceiling(&c, 6), Duration::from_secs(10));
        assert_eq!(backoff_ceiling(&c, 200), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_in_upper_half() {
        let c = cfg();
        assert_eq!(backoff_delay(&c, 0, 0.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(&c, 0, 0.5), Duration::from_millis(150));
        assert!(backoff_delay(&c, 0, 0.999_999) < Duration::from_millis(200));
        assert_eq!(backoff_delay(&c, 0, f64::NAN), Duration::from_millis(100));
        assert_eq!(backoff_delay(&c, 10, 1.0), Duration::from_secs(10));
    }

    #[test]
    fn only_retryable_errors_are_retried() {
        let c = cfg();
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(
                retry_decision(&c, 1, Duration::ZERO, &status_err(status, None), 0.5).is_some(),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409, 416, 422] {
            assert!(
                retry_decision(&c, 1, Duration::ZERO, &status_err(status, None), 0.5).is_none(),
                "{status}"
            );
        }
        assert!(
            retry_decision(&c, 1, Duration::ZERO, &UpstreamError::decode("t", "x"), 0.5).is_none()
        );
    }

    #[test]
    fn attempts_and_time_are_bounded() {
        let c = cfg();
        let e = status_err(503, None);
        assert_eq!(
            retry_decision(&c, 1, Duration::ZERO, &e, 0.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            retry_decision(&c, 2, Duration::ZERO, &e, 0.0),
            Some(Duration::from_millis(200))
        );
        assert!(retry_decision(&c, 4, Duration::ZERO, &e, 0.0).is_some());
        assert!(retry_decision(&c, 5, Duration::ZERO, &e, 0.0).is_none());
        // The delay would end after the 60 s budget.
        assert!(retry_decision(&c, 1, Duration::from_millis(59_950), &e, 0.0).is_none());
        assert!(retry_decision(&c, 1, Duration::from_secs(59), &e, 0.0).is_some());
    }

    #[test]
    fn retry_after_raises_delay_but_is_capped() {
        let c = cfg();
        let e = status_err(503, Some(Duration::from_secs(3)));
        assert_eq!(
            retry_decision(&c, 1, Duration::ZERO, &e, 0.0),
            Some(Duration::from_secs(3))
        );
        let e = status_err(503, Some(Duration::from_secs(3600)));
        assert_eq!(
            retry_decision(&c, 1, Duration::ZERO, &e, 0.0),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn rate_limits_wait_for_the_reset_within_their_budget() {
        let c = cfg(); // rate_limit_budget 50 s
        // The whole wait the Hub asks for (not capped at max_delay), jittered upwards by at
        // most 5% / 500 ms, and whatever the attempt number.
        let e = status_err(429, Some(Duration::from_secs(30)));
        assert_eq!(
            retry_decision(&c, 1, Duration::ZERO, &e, 0.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_decision(&c, 9, Duration::ZERO, &e, 1.0),
            Some(Duration::from_millis(30_500))
        );
        // Not when the wait would end past the budget: the caller answers SlowDown.
        assert!(retry_decision(&c, 1, Duration::from_secs(21), &e, 0.0).is_none());
        let e = status_err(429, Some(Duration::from_secs(300)));
        assert!(retry_decision(&c, 1, Duration::ZERO, &e, 0.0).is_none());
        // A background budget covers a whole 5-minute window.
        let bg = RetryConfig {
            rate_limit_budget: c.background_rate_limit_budget,
            ..cfg()
        };
        assert!(retry_decision(&bg, 1, Duration::ZERO, &e, 0.0).is_some());
        // No hint: an ordinary attempt with backoff.
        let e = status_err(429, None);
        assert_eq!(
            retry_decision(&c, 1, Duration::ZERO, &e, 0.0),
            Some(Duration::from_millis(100))
        );
        assert!(retry_decision(&c, 5, Duration::ZERO, &e, 0.0).is_none());
    }

    #[tokio::test]
    async fn with_retry_stops_on_success_and_on_fatal() {
        let c = RetryConfig {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..cfg()
        };
        let mut calls = 0;
        let out = with_retry(&c, |attempt| {
            calls += 1;
            async move {
                if attempt < 3 {
                    Err(status_err(503, None))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!((out, calls), (3, 3));

        let mut calls = 0;
        let err = with_retry(&c, |_| {
            calls += 1;
            async { Err::<(), _>(status_err(404, None)) }
        })
        .await
        .unwrap_err();
        assert_eq!((err.status(), calls), (Some(404), 1));

        let mut calls = 0;
        let err = with_retry(&c, |_| {
            calls += 1;
            async { Err::<(), _>(status_err(500, None)) }
        })
        .await
        .unwrap_err();
        assert_eq!((err.status(), calls), (Some(500), 5));
    }
}
