//! Calendar arithmetic: the proleptic Gregorian civil date of a day count since 1970-01-01
//! (Howard Hinnant's `civil_from_days`), for timestamps written without a date-time crate.
//!
//! Pure integer arithmetic; no clock, no time zones (UTC only), no formatting.

/// `(year, month 1..=12, day 1..=31)` of `days` since 1970-01-01 (negative: before it).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Weekday of `days` since 1970-01-01: 0 = Monday … 6 = Sunday (1970-01-01, a Thursday, is 3).
pub fn weekday(days: i64) -> usize {
    (days + 3).rem_euclid(7) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(951_782_400 / 86_400), (2000, 2, 29));
        assert_eq!(civil_from_days(1_700_000_000 / 86_400), (2023, 11, 14));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(4_102_444_799 / 86_400), (2099, 12, 31));
        assert_eq!(weekday(0), 3, "Thursday");
        assert_eq!(
            weekday(1_700_000_000 / 86_400),
            1,
            "2023-11-14 was a Tuesday"
        );
    }
}
