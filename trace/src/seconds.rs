//! hoptrace's time options are in seconds with fractions allowed, as mtr's and ping's are
//! (`-i 0.5`); each keeps its old millisecond form under a name that says so
//! (`--interval-ms`, `--timeout-ms`).

use std::time::Duration;

/// The most either option takes. Far above any useful wait between rounds or for one probe
/// (the default probe wait for the longest address is about a minute), and below the
/// millisecond values the options took before, so that `-i 200` written for the old unit is
/// refused with the new name to use instead of waiting 200 seconds.
pub const MAX_SECONDS: f64 = 60.0;

/// `text` as a duration in seconds: a decimal number from 0 (above 0 unless `zero_allowed`)
/// to [`MAX_SECONDS`]. `ms_option` is the option that takes milliseconds, named in the error.
pub fn parse_seconds(text: &str, zero_allowed: bool, ms_option: &str) -> Result<Duration, String> {
    let v: f64 = text.trim().parse().map_err(|_| {
        format!("`{text}` is not a number of seconds (fractions allowed, e.g. 0.5)")
    })?;
    if !v.is_finite() || v < 0.0 || (v == 0.0 && !zero_allowed) {
        return Err(format!(
            "`{text}`: expected {} seconds",
            if zero_allowed {
                "0 or more"
            } else {
                "more than 0"
            }
        ));
    }
    if v > MAX_SECONDS {
        return Err(format!(
            "{text} seconds is more than {MAX_SECONDS:.0}: the unit is seconds (it was \
             milliseconds before); for milliseconds use {ms_option} {text}"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A millisecond option's value, with the same ceiling as the seconds one.
pub fn parse_millis(text: &str, zero_allowed: bool) -> Result<Duration, String> {
    let v: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of milliseconds"))?;
    if v == 0 && !zero_allowed {
        return Err("expected more than 0 milliseconds".into());
    }
    if v as f64 > MAX_SECONDS * 1000.0 {
        return Err(format!("{v} ms is more than {MAX_SECONDS:.0} seconds"));
    }
    Ok(Duration::from_millis(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_with_fractions() {
        assert_eq!(
            parse_seconds("0.05", true, "--interval-ms"),
            Ok(Duration::from_millis(50))
        );
        assert_eq!(
            parse_seconds("2", false, "--timeout-ms"),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            parse_seconds("0", true, "--interval-ms"),
            Ok(Duration::ZERO)
        );
        assert!(parse_seconds("0", false, "--timeout-ms").is_err());
        assert!(parse_seconds("-1", true, "--interval-ms").is_err());
        assert!(parse_seconds("1s", true, "--interval-ms").is_err());
        assert!(parse_seconds("inf", true, "--interval-ms").is_err());
    }

    #[test]
    fn an_old_millisecond_value_is_refused_with_the_option_to_use() {
        let e = parse_seconds("200", true, "--interval-ms").unwrap_err();
        assert!(e.contains("for milliseconds use --interval-ms 200"), "{e}");
        assert_eq!(parse_seconds("60", true, "-"), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn milliseconds() {
        assert_eq!(parse_millis("200", true), Ok(Duration::from_millis(200)));
        assert!(parse_millis("0", false).is_err());
        assert!(parse_millis("60001", true).is_err());
        assert!(parse_millis("0.5", true).is_err());
    }
}
