//! Lenient timestamp parsing for the dates AWS events carry.
//!
//! AWS is not consistent: EventBridge envelopes use RFC 3339 with `Z`, alarm states use
//! `2019-10-02T17:04:40.985+0000` (no colon in the offset), ASFF may carry `+00:00` with
//! microseconds, and a widely copied docs sample has spaces inside the time
//! (`2023-08-04T12: 36: 15.490+0000`). A hand-written parser accepts all of these without
//! allocating, which matters because every signal parses at least one timestamp.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Longest timestamp accepted once whitespace is removed: a date, a time with nanoseconds and
/// an offset fit comfortably; anything longer is not a timestamp.
const MAX_LEN: usize = 48;

/// Parses an ISO 8601 / RFC 3339 date-time the way AWS writes them.
///
/// Accepts `Z`, `+00:00`, `+0000` and `+00` offsets (a missing offset means UTC), any number of
/// fractional-second digits (nanoseconds are kept, the rest ignored), `T`, `t` or a space between
/// date and time, and stray whitespace anywhere. Returns `None` for anything else, including
/// placeholders such as `"date"` and epoch numbers.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let mut buf = [0u8; MAX_LEN];
    let trimmed = s.trim();
    // The space between date and time is the one whitespace that carries meaning; any other is
    // the docs typo and goes.
    let mut len = 0;
    for (i, b) in trimmed.bytes().enumerate() {
        if b.is_ascii_whitespace() {
            if i == 10 {
                *buf.get_mut(len)? = b'T';
                len += 1;
            }
            continue;
        }
        *buf.get_mut(len)? = b;
        len += 1;
    }
    parse_compact(buf.get(..len)?)
}

fn parse_compact(b: &[u8]) -> Option<DateTime<Utc>> {
    let mut cur = Cursor { b, pos: 0 };
    let year = cur.digits(4)?;
    cur.eat(b'-')?;
    let month = cur.digits(2)?;
    cur.eat(b'-')?;
    let day = cur.digits(2)?;
    match cur.next()? {
        b'T' | b't' => {}
        _ => return None,
    }
    let hour = cur.digits(2)?;
    cur.eat(b':')?;
    let minute = cur.digits(2)?;
    cur.eat(b':')?;
    let second = cur.digits(2)?;

    let mut nanos: u32 = 0;
    if cur.peek() == Some(b'.') || cur.peek() == Some(b',') {
        cur.pos += 1;
        let mut scale = 100_000_000u32;
        let mut any = false;
        while let Some(d) = cur.peek().filter(u8::is_ascii_digit) {
            any = true;
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
            cur.pos += 1;
        }
        if !any {
            return None;
        }
    }

    let offset_secs: i64 = match cur.next() {
        None | Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hours = i64::from(cur.digits(2)?);
            if cur.peek() == Some(b':') {
                cur.pos += 1;
            }
            let minutes = if cur.peek().is_some() {
                i64::from(cur.digits(2)?)
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3600 + minutes * 60;
            if sign == b'-' { -secs } else { secs }
        }
        Some(_) => return None,
    };
    if cur.peek().is_some() {
        return None;
    }

    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let local = NaiveDateTime::new(date, time);
    let utc = local.checked_sub_signed(Duration::seconds(offset_secs))?;
    Some(Utc.from_utc_datetime(&utc))
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self.next()?;
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test literal is RFC 3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn rfc3339_with_z_and_with_colon_offset_agree() {
        assert_eq!(
            parse_timestamp("2019-10-02T17:04:40Z"),
            Some(utc("2019-10-02T17:04:40Z"))
        );
        assert_eq!(
            parse_timestamp("2019-10-02T17:04:40+00:00"),
            Some(utc("2019-10-02T17:04:40Z"))
        );
    }

    #[test]
    fn alarm_offsets_without_colon_parse_with_millis() {
        assert_eq!(
            parse_timestamp("2019-10-02T17:04:40.985+0000"),
            Some(utc("2019-10-02T17:04:40.985Z"))
        );
    }

    #[test]
    fn non_utc_offsets_convert_to_utc() {
        assert_eq!(
            parse_timestamp("2023-03-22T15:48:25.752000-05:00"),
            Some(utc("2023-03-22T20:48:25.752Z"))
        );
        assert_eq!(
            parse_timestamp("2023-03-22T15:48:25+0530"),
            Some(utc("2023-03-22T10:18:25Z"))
        );
    }

    #[test]
    fn microseconds_and_extra_fraction_digits_are_kept_to_the_nanosecond() {
        assert_eq!(
            parse_timestamp("2020-01-15T15:55:49.624441+00:00"),
            Some(utc("2020-01-15T15:55:49.624441Z"))
        );
        assert_eq!(
            parse_timestamp("2020-01-15T15:55:49.1234567891234Z"),
            Some(utc("2020-01-15T15:55:49.123456789Z"))
        );
    }

    #[test]
    fn docs_typo_with_spaces_inside_the_time_parses() {
        assert_eq!(
            parse_timestamp("2023-08-04T12: 36: 15.490+0000"),
            Some(utc("2023-08-04T12:36:15.490Z"))
        );
    }

    #[test]
    fn space_instead_of_t_and_missing_offset_read_as_utc() {
        assert_eq!(
            parse_timestamp("2023-08-04 12:36:15"),
            Some(utc("2023-08-04T12:36:15Z"))
        );
    }

    #[test]
    fn the_epoch_is_a_valid_time() {
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00Z"),
            Some(DateTime::<Utc>::UNIX_EPOCH)
        );
    }

    #[test]
    fn junk_and_placeholders_are_none() {
        for junk in [
            "",
            "date",
            "   ",
            "1560354029",
            "2019-13-02T17:04:40Z",
            "2019-02-30T17:04:40Z",
            "2019-10-02T25:04:40Z",
            "2019-10-02T17:04:40.Z",
            "2019-10-02T17:04:40+2500",
            "2019-10-02T17:04:40Zjunk",
            "2019-10-02",
            "Thu, 1 Nov 2018 22:00:00 GMT",
            "2019-10-02T17:04:40.00000000000000000000000000000000000000000000000000Z",
            "２０１９-10-02T17:04:40Z",
        ] {
            assert_eq!(parse_timestamp(junk), None, "{junk:?}");
        }
    }
}
