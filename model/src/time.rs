//! Durations as the signed nanoseconds every `ts` column counts in.

use std::time::Duration;

/// `d` in nanoseconds, saturating at `i64::MAX` (about 292 years): a longer keep or window
/// means "forever" to every comparison it takes part in.
pub fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_durations_saturate_instead_of_wrapping() {
        assert_eq!(nanos(Duration::from_secs(2)), 2_000_000_000);
        assert_eq!(nanos(Duration::MAX), i64::MAX);
        assert_eq!(nanos(Duration::from_secs(300 * 365 * 86_400)), i64::MAX);
    }
}
