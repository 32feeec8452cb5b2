//! What the parser's unit tests share: a fixed receive time and the fixture files.

use chrono::{DateTime, TimeZone, Utc};

use super::{Signal, parse};

/// A fixed, recognisable receive time, so a fallback to it is visible in assertions.
pub(crate) fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
        .single()
        .expect("valid")
}

/// A fixture's text, by its path under `tests/fixtures/events/`.
pub(crate) fn fixture(path: &str) -> String {
    let full = format!(
        "{}/../tests/fixtures/events/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// The one signal `input` must give.
pub(crate) fn one(input: &str) -> Signal {
    let mut signals = parse(input.as_bytes(), received()).expect("parses");
    assert_eq!(signals.len(), 1);
    signals.remove(0)
}
