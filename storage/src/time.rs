//! The API's one rule for times: a request may give a time as Unix milliseconds (an
//! integer, or digits in a query string) or as an RFC 3339 date-time
//! (`2026-12-07T06:39:45Z`, `2026-12-07T07:39:45+01:00`); responses always carry Unix
//! milliseconds.

use crate::Millis;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Why a time was refused, worded for the caller.
pub const EXPECTED: &str =
    "Unix milliseconds (1796625585000) or an RFC 3339 date-time (2026-12-07T06:39:45Z)";

/// A time as a request may give it.
pub fn parse(v: &str) -> Result<Millis, String> {
    let v = v.trim();
    if !v.is_empty()
        && v.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        return v
            .parse::<i64>()
            .map_err(|_| format!("{v:?} is beyond the range of Unix milliseconds"));
    }
    let t = ::time::OffsetDateTime::parse(v, &::time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{v:?}: give {EXPECTED}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{v:?} is beyond the range of Unix milliseconds"))
}

struct TimeVisitor;

impl Visitor<'_> for TimeVisitor {
    type Value = Millis;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
        i64::try_from(v)
            .map_err(|_| E::custom(format!("{v} is beyond the range of Unix milliseconds")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
        parse(v).map_err(E::custom)
    }
}

/// `#[serde(deserialize_with = "time::millis")]`: either form in JSON; the stored
/// (binary) form stays a plain integer.
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    if d.is_human_readable() {
        d.deserialize_any(TimeVisitor)
    } else {
        <i64 as serde::Deserialize>::deserialize(d)
    }
}

/// [`millis`] for optional fields (`null` or absent: none); pair it with
/// `#[serde(default)]`.
pub fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<Millis>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "null, {EXPECTED}")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            millis(d).map(Some)
        }
    }
    if d.is_human_readable() {
        d.deserialize_option(Opt)
    } else {
        <Option<i64> as serde::Deserialize>::deserialize(d)
    }
}

/// The schema of a time in a request: `oneOf` an int64 of Unix milliseconds and an
/// RFC 3339 date-time string.
#[derive(Debug)]
pub struct TimeInput;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TimeInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .description(Some("Unix milliseconds")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("RFC 3339 date-time")),
            )
            .description(Some(
                "A time: Unix milliseconds or an RFC 3339 date-time. Responses carry Unix milliseconds.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TimeInput {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_millis")]
        at: Option<Millis>,
    }

    fn at(json: &str) -> Result<Option<Millis>, String> {
        serde_json::from_str::<T>(json)
            .map(|t| t.at)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn both_forms_and_nothing_else() {
        assert_eq!(at(r#"{"at": 1796625585000}"#), Ok(Some(1_796_625_585_000)));
        assert_eq!(
            at(r#"{"at": "2026-12-07T06:39:45Z"}"#),
            Ok(Some(1_796_625_585_000))
        );
        assert_eq!(
            at(r#"{"at": "2026-12-07T07:39:45+01:00"}"#),
            Ok(Some(1_796_625_585_000))
        );
        assert_eq!(
            at(r#"{"at": "1796625585000"}"#),
            Ok(Some(1_796_625_585_000))
        );
        assert_eq!(at(r#"{"at": null}"#), Ok(None));
        assert_eq!(at("{}"), Ok(None));
        assert!(at(r#"{"at": "tomorrow"}"#)
            .expect_err("a word is not a time")
            .contains("RFC 3339"));
        assert!(at(r#"{"at": 9223372036854775808}"#).is_err());
        assert!(at(r#"{"at": 1.5}"#).is_err());
        assert!(parse("99999999999999999999").is_err());
    }

    /// What generated clients write: chrono's RFC 3339 with nanoseconds, lower-case
    /// separators (RFC 3339 5.6 allows them), a space instead of `T` (its note allows it).
    #[test]
    fn every_rfc_3339_spelling_clients_write() {
        for s in [
            "2026-12-07T06:39:45.000000000Z",
            "2026-12-07T06:39:45.0Z",
            "2026-12-07t06:39:45z",
            "2026-12-07T06:39:45.000+00:00",
            "2026-12-07T06:39:45-00:00",
        ] {
            assert_eq!(parse(s), Ok(1_796_625_585_000), "{s}");
        }
    }
}
