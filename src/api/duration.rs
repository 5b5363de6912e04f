//! Flux's duration strings (`1m30s`, `1.5h`, `500ms`): Go `time.ParseDuration` restricted to the
//! units Flux's CRD patterns allow.

use std::time::Duration;

/// Parses `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total = 0f64;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        let valid_number = !number.is_empty()
            && !number.starts_with('.')
            && !number.ends_with('.')
            && number.matches('.').count() <= 1;
        if !valid_number {
            return Err(format!("'{s}' is not a duration like 30s, 5m or 1h30m"));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("'{s}' is not a duration like 30s, 5m or 1h30m"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let seconds = match &s[unit_start..i] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("'{s}': missing unit (ms, s, m or h)")),
            other => return Err(format!("'{s}': unknown unit '{other}' (ms, s, m or h)")),
        };
        total += value * seconds;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(format!("'{s}' is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1m0.5s").unwrap(),
            Duration::from_millis(60_500)
        );
    }

    #[test]
    fn rejects_what_flux_rejects() {
        for bad in ["", "5", "m", "1d", "-1s", "1.s", ".5s", "1..2s", "5 m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }
}
