//! Every date format the S3 front-end reads or writes, on `chrono` (the workspace's one
//! date crate): SigV4's `YYYYMMDD'T'HHMMSS'Z'`, S3 XML's ISO 8601 with milliseconds, and
//! HTTP dates (`Last-Modified`, `If-Modified-Since`, SigV2's `Date`).
//!
//! The lowest module of the crate: it imports nothing from it.

use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Utc};

/// SigV4's `x-amz-date` form.
const AMZ_DATE: &str = "%Y%m%dT%H%M%SZ";

/// Formats a time as `YYYYMMDD'T'HHMMSS'Z'` (SigV4's `x-amz-date`).
pub fn format_amz_date(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).format(AMZ_DATE).to_string()
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'`; `None` for anything else or a time before 1970.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    // chrono accepts shorter fields; SigV4 dates are always 16 ASCII characters.
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(s, AMZ_DATE).ok()?.and_utc();
    (t.timestamp() >= 0).then(|| t.into())
}

/// ISO 8601 with milliseconds, as S3 writes `LastModified` (`2013-05-24T00:00:00.123Z`).
pub fn iso8601(t: SystemTime) -> String {
    DateTime::<Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Formats an HTTP date (`Tue, 27 Mar 2007 19:40:00 GMT`, RFC 9110's IMF-fixdate).
pub fn format_http_date(t: SystemTime) -> String {
    DateTime::<Utc>::from(t)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// Parses an HTTP date in any of RFC 9110's three forms (IMF-fixdate, RFC 850, asctime),
/// and RFC 2822 dates with a numeric zone (`... 03:23:50 +0000`, as s3cmd writes them).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.into());
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    #[test]
    fn amz_dates() {
        let t = at(1_369_353_600, 0);
        assert_eq!(format_amz_date(t), "20130524T000000Z");
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(t));
        for bad in [
            "20131324T000000Z",
            "2013052400000Z",
            "2013-5-24T000000Z",
            "20130524T000000",
            "19690101T000000Z",
            "20130524T250000Z",
            "2013052４T00000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(at(1_369_353_600, 123)), "2013-05-24T00:00:00.123Z");
        assert_eq!(iso8601(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(at(951_782_400, 0)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn http_dates() {
        let t = at(1_175_024_400, 0);
        assert_eq!(format_http_date(t), "Tue, 27 Mar 2007 19:40:00 GMT");
        // Sub-second parts are dropped, as HTTP dates have none.
        assert_eq!(
            format_http_date(at(1_175_024_400, 999)),
            "Tue, 27 Mar 2007 19:40:00 GMT"
        );
        for form in [
            "Tue, 27 Mar 2007 19:40:00 GMT",
            "Tue, 27 Mar 2007 19:40:00 +0000",
            "Tuesday, 27-Mar-07 19:40:00 GMT",
            "Tue Mar 27 19:40:00 2007",
            "  Tue, 27 Mar 2007 19:40:00 GMT ",
        ] {
            assert_eq!(parse_http_date(form), Some(t), "{form}");
        }
        assert_eq!(parse_http_date("Tue, 27 Mar 2007 21:40:00 +0200"), Some(t));
        for bad in [
            "",
            "yesterday",
            "Tue, 32 Mar 2007 19:40:00 GMT",
            "2007-03-27",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
