//! Fault injection hook. Every request consults [`Faults::check`] with its route before it
//! is handled; a matching rule answers with the rule's status instead. Rules are parsed
//! from `ROUTE:STATUS[:COUNT]` strings (route names as in [`Route::name`], `*` for any
//! route; COUNT = how many requests fail, default unlimited).

use std::sync::Mutex;

use http::StatusCode;

use crate::error::HubError;
use crate::stats::Route;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Route it applies to (`None` = all).
    pub route: Option<Route>,
    /// Status to answer with.
    pub status: StatusCode,
    /// Remaining failures (`None` = unlimited).
    pub remaining: Option<u64>,
}

impl std::str::FromStr for FaultRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.split(':');
        let route = match it.next() {
            Some("*") => None,
            Some(name) => {
                Some(Route::from_name(name).ok_or_else(|| format!("unknown route {name:?}"))?)
            }
            None => return Err("empty fault rule".into()),
        };
        let status = it
            .next()
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(|v| StatusCode::from_u16(v).ok())
            .ok_or_else(|| format!("fault rule {s:?}: bad status"))?;
        let remaining = match it.next() {
            Some(c) => Some(
                c.parse()
                    .map_err(|_| format!("fault rule {s:?}: bad count"))?,
            ),
            None => None,
        };
        Ok(Self {
            route,
            status,
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

    /// The injected error for this request, if a rule matches (consuming one of its count).
    pub fn check(&self, route: Route) -> Option<HubError> {
        let mut g = self.rules.lock().ok()?;
        for rule in g.iter_mut() {
            if rule.route.is_some_and(|r| r != route) {
                continue;
            }
            match &mut rule.remaining {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            return Some(HubError::Injected {
                status: rule.status,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_down() {
        let f = Faults::new(vec!["batch:500:2".parse().unwrap()]);
        assert!(f.check(Route::Tree).is_none());
        assert!(
            matches!(f.check(Route::Batch), Some(HubError::Injected { status }) if status == 500)
        );
        assert!(f.check(Route::Batch).is_some());
        assert!(f.check(Route::Batch).is_none());
        assert!("nope:500".parse::<FaultRule>().is_err());
        assert!("*:503".parse::<FaultRule>().unwrap().route.is_none());
    }
}
