//! Durations and instants as the signed nanoseconds every `ts` column counts in.

use std::time::Duration;

use crate::error::ModelError;

/// The first instant a nanosecond `ts` can hold, as text for messages.
pub const EARLIEST: &str = "1677-09-21T00:12:43.145224192Z";
/// The last instant a nanosecond `ts` can hold, as text for messages.
pub const LATEST: &str = "2262-04-11T23:47:16.854775807Z";

/// `d` in nanoseconds, saturating at `i64::MAX` (about 292 years): a longer keep or window
/// means "forever" to every comparison it takes part in.
pub fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// An RFC 3339 instant (`2024-05-01T10:00:00Z`, `2024-05-01T12:00:00.5+02:00`) as nanoseconds
/// since the epoch. Text that is not RFC 3339 and instants a signed 64-bit nanosecond count
/// cannot hold (before 1677, after 2262) are different errors.
pub fn parse_rfc3339(text: &str) -> Result<i64, ModelError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| ModelError::NotRfc3339(text.to_string()))?
        .timestamp_nanos_opt()
        .ok_or_else(|| ModelError::TimeOutOfRange(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_instants_parse_and_out_of_range_ones_say_so() {
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01Z").unwrap(),
            1_000_000_000
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T02:00:00.5+02:00").unwrap(),
            500_000_000
        );
        let e = parse_rfc3339("3000-01-01T00:00:00Z")
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range") && e.contains(LATEST), "{e}");
        let e = parse_rfc3339("yesterday").unwrap_err().to_string();
        assert!(e.contains("not an RFC 3339"), "{e}");
    }

    #[test]
    fn long_durations_saturate_instead_of_wrapping() {
        assert_eq!(nanos(Duration::from_secs(2)), 2_000_000_000);
        assert_eq!(nanos(Duration::MAX), i64::MAX);
        assert_eq!(nanos(Duration::from_secs(300 * 365 * 86_400)), i64::MAX);
    }
}
