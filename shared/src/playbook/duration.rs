//! Durations as playbooks write them: `30s`, `15m`, `6h`, `1d`, `1h30m`.
//!
//! A bare number is refused rather than read as seconds: `window: 6` is far more likely to mean
//! six hours than six seconds, and guessing wrong would silently split or merge incidents.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// A positive whole number of seconds, at most [`Duration::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// A year and a day: longer than any window, limit or timeout a playbook has reason to
    /// set, and far from any arithmetic overflow downstream.
    pub const MAX: Duration = Duration(366 * DAY);

    /// `secs` seconds. Zero is allowed here (callers compute durations too); playbooks cannot
    /// write it.
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(secs)
    }

    pub const fn from_mins(mins: u64) -> Duration {
        Duration(mins * MINUTE)
    }

    pub const fn from_hours(hours: u64) -> Duration {
        Duration(hours * HOUR)
    }

    pub const fn as_secs(self) -> u64 {
        self.0
    }

    pub const fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }

    pub fn to_chrono(self) -> chrono::TimeDelta {
        // MAX keeps every playbook duration far inside i64 seconds.
        chrono::TimeDelta::seconds(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.as_std()
    }
}

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason}")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| {
            Err(DurationError {
                input: input.to_owned(),
                reason,
            })
        };
        if input.is_empty() {
            return fail("empty; write e.g. 30s, 15m, 6h, 1d or 1h30m");
        }
        let mut total: u64 = 0;
        let mut last_unit = u64::MAX;
        let mut rest = input;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return fail("expected a number before each unit (e.g. 1h30m)");
            }
            let Ok(n) = rest[..digits].parse::<u64>() else {
                return fail("number too large");
            };
            let unit = match rest[digits..].chars().next() {
                Some('s') => 1,
                Some('m') => MINUTE,
                Some('h') => HOUR,
                Some('d') => DAY,
                None => return fail("no unit; write e.g. 30s, 15m, 6h or 1d"),
                Some(_) => return fail("unknown unit; use s, m, h or d"),
            };
            if unit >= last_unit {
                return fail("units must go from largest to smallest, each once (e.g. 1h30m)");
            }
            last_unit = unit;
            total = match n.checked_mul(unit).and_then(|v| total.checked_add(v)) {
                Some(t) => t,
                None => return fail("too long"),
            };
            rest = &rest[digits + 1..];
        }
        if total == 0 {
            return fail("must be longer than zero");
        }
        if total > Duration::MAX.0 {
            return fail("longer than the 366d limit");
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    /// The shortest form that parses back to the same value: `1h30m`, `1d`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, suffix) in [(DAY, 'd'), (HOUR, 'h'), (MINUTE, 'm'), (1, 's')] {
            if rest >= unit {
                write!(f, "{}{suffix}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, 15m, 6h, 1d or 1h30m")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }

            // Only an already-parsed `serde_yaml_ng::Value` hands over a number; from YAML
            // text every scalar arrives through `visit_str`. Either way the message is the same.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                self.visit_str(&v.to_string())
            }
        }

        d.deserialize_str(DurationVisitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        s.parse::<Duration>().expect("valid duration").as_secs()
    }

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(secs("30s"), 30);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("6h"), 21_600);
        assert_eq!(secs("1d"), 86_400);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("1d2h3m4s"), 93_784);
        assert_eq!(secs("90m"), 5_400);
    }

    #[test]
    fn refuses_a_bare_number_naming_the_missing_unit() {
        let err = "3600".parse::<Duration>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid duration `3600`: no unit; write e.g. 30s, 15m, 6h or 1d"
        );
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            "",
            "h",
            "1x",
            "1 h",
            "1H",
            "-1h",
            "30m1h",
            "1h1h",
            "0s",
            "0h0m",
            "367d",
            "1.5h",
            "99999999999999999999s",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn displays_in_a_form_that_parses_back() {
        for s in ["30s", "15m", "6h", "1d", "1h30m", "1d2h3m4s"] {
            let d: Duration = s.parse().expect("valid");
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(Duration::from_secs(5_400).to_string(), "1h30m");
        assert_eq!(Duration::from_mins(90).to_string(), "1h30m");
    }

    #[test]
    fn converts_to_std_and_chrono() {
        let d = Duration::from_hours(2);
        assert_eq!(d.as_std(), std::time::Duration::from_secs(7_200));
        assert_eq!(d.to_chrono(), chrono::TimeDelta::hours(2));
    }
}
