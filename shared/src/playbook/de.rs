//! Deserialization helpers that keep serde_yaml_ng's line numbers.
//!
//! serde_yaml_ng attaches the position of the YAML node being deserialized to any error raised
//! *while* that node is deserialized. So every semantic check runs inside a visitor of the node
//! it is about: a bad glob is refused in the visitor of its string, a contradictory match block
//! in the visitor of its mapping. A check run after deserialization has returned would get the
//! position of some enclosing node instead, or none.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor, value};

/// Deserializes a mapping into `R` (typically a derived struct with `deny_unknown_fields`), then
/// runs `check` on it while the mapping is still the current node, so an error from `check`
/// carries the line of the mapping's first key.
pub(crate) fn map_then<'de, D, R, T, F>(
    deserializer: D,
    expecting: &'static str,
    check: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    R: Deserialize<'de>,
    F: FnOnce(R) -> Result<T, String>,
{
    struct MapThen<R, F> {
        expecting: &'static str,
        check: F,
        raw: PhantomData<R>,
    }

    impl<'de, R, T, F> Visitor<'de> for MapThen<R, F>
    where
        R: Deserialize<'de>,
        F: FnOnce(R) -> Result<T, String>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let raw = R::deserialize(value::MapAccessDeserializer::new(map))?;
            (self.check)(raw).map_err(de::Error::custom)
        }
    }

    deserializer.deserialize_map(MapThen {
        expecting,
        check,
        raw: PhantomData,
    })
}

/// A list that must hold at least one item: an empty list in a match condition would match
/// nothing, which is never what the author meant (they meant "any", which is leaving it out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NonEmpty<T>(pub(crate) Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NonEmptyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for NonEmptyVisitor<T> {
            type Value = NonEmpty<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-empty list")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(de::Error::custom(
                        "empty list; leave the field out to mean \"any\"",
                    ));
                }
                Ok(NonEmpty(items))
            }
        }

        d.deserialize_seq(NonEmptyVisitor(PhantomData))
    }
}

/// Reads a string and runs `check` on it while the string is still the current node, so an
/// error from `check` carries the string's own line. (Checking after `deserialize_str` returns
/// would report the enclosing list or mapping instead.)
pub(crate) fn str_then<'de, D, T, F>(
    deserializer: D,
    expecting: &'static str,
    check: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    struct StrThen<F> {
        expecting: &'static str,
        check: F,
    }

    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for StrThen<F> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            if v.is_empty() {
                return Err(E::custom("must not be empty"));
            }
            (self.check)(v).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(StrThen { expecting, check })
}

/// A non-empty string, as the scalar's text: YAML reads `Team: 42` as a number, but a tag value
/// is a string either way. (Read from YAML text, every scalar arrives as its text; the other
/// `visit_*` cover an already-parsed `serde_yaml_ng::Value`.)
pub(crate) struct Text;

impl Visitor<'_> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.is_empty() {
            Err(E::custom("must not be empty"))
        } else {
            Ok(v.to_owned())
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

impl<'de> de::DeserializeSeed<'de> for Text {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}
