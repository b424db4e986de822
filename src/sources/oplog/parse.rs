//! One line of the operations log → one [`ParsedLine`], borrowing from the line.
//!
//! Only the fields the metrics use are deserialized; every other key is skipped by serde_json
//! without allocating. Strings borrow from the input unless they contain escapes. The parser
//! never panics: every input ends in a [`LineResult`] (checked by a property test).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::util::time::parse_rfc3339;

pub use crate::monitor::executions::{LineResult, MAX_PLAUSIBLE_MS};

/// The fields of one execution, borrowed from its line where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    /// Epoch ms; `None` when the line has no timestamp (the reader uses the time it read it).
    pub timestamp: Option<u64>,
    pub operation_type: Option<Cow<'a, str>>,
    /// ms, finite and ≥ 0.
    pub duration: f64,
    pub success: bool,
    pub timed_out: bool,
    pub error: Option<Cow<'a, str>>,
    pub retry_count: u32,
    /// ms, finite and ≥ 0.
    pub queue_wait: Option<f64>,
}

#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(rename = "operationType", borrow, default)]
    operation_type: Option<Text<'a>>,
    #[serde(default)]
    timing: Option<RawTiming>,
    #[serde(borrow, default)]
    result: Option<RawResult<'a>>,
    #[serde(rename = "retryCount", default)]
    retry_count: Option<Count>,
}

#[derive(Deserialize)]
struct RawTiming {
    #[serde(default)]
    duration: Option<f64>,
    #[serde(rename = "queueWait", default)]
    queue_wait: Option<f64>,
}

#[derive(Deserialize)]
struct RawResult<'a> {
    #[serde(default)]
    success: Option<bool>,
    #[serde(rename = "timedOut", default)]
    timed_out: Option<bool>,
    #[serde(borrow, default)]
    error: Option<ErrorText<'a>>,
}

/// Parses one line (without its newline; a trailing `\r` is ignored).
pub fn parse_line(line: &[u8]) -> Result<ParsedLine<'_>, LineResult> {
    let line = trim_ascii(line);
    if line.is_empty() {
        return Err(LineResult::Empty);
    }
    let raw: RawLine<'_> = match serde_json::from_slice(line) {
        Ok(raw) => raw,
        Err(e) => {
            return Err(match e.classify() {
                serde_json::error::Category::Data => LineResult::Invalid,
                _ => LineResult::Malformed,
            })
        }
    };
    let (Some(timing), Some(result)) = (raw.timing, raw.result) else {
        return Err(LineResult::MissingField);
    };
    let (Some(duration), Some(success)) = (timing.duration, result.success) else {
        return Err(LineResult::MissingField);
    };
    if !(duration.is_finite() && duration >= 0.0) {
        return Err(LineResult::Invalid);
    }
    let queue_wait = match timing.queue_wait {
        Some(q) if !(q.is_finite() && q >= 0.0) => return Err(LineResult::Invalid),
        q => q,
    };
    if duration > MAX_PLAUSIBLE_MS || queue_wait.is_some_and(|q| q > MAX_PLAUSIBLE_MS) {
        return Err(LineResult::Implausible);
    }
    let timestamp = match raw.timestamp {
        None => None,
        Some(Timestamp(None)) => return Err(LineResult::Invalid),
        Some(Timestamp(Some(ms))) => Some(ms),
    };
    Ok(ParsedLine {
        timestamp,
        operation_type: raw.operation_type.map(|t| t.0),
        duration,
        success,
        timed_out: result.timed_out.unwrap_or(false),
        error: result.error.and_then(|e| e.0),
        retry_count: raw.retry_count.map_or(0, |c| c.0),
        queue_wait,
    })
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Epoch ms from a number or an RFC 3339 text; `None` inside means present but unreadable.
///
/// Numbers below 10^11 are taken as epoch *seconds* (10^11 ms is March 1973, 10^11 s is the year
/// 5138): applications that log `Date.now() / 1000` are still read right.
struct Timestamp(Option<u64>);

const SECONDS_LIMIT: f64 = 1e11;

fn number_to_ms(v: f64) -> Option<u64> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let ms = if v < SECONDS_LIMIT { v * 1000.0 } else { v };
    (ms < 1e15).then_some(ms as u64)
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 date-time")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(number_to_ms(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(number_to_ms(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Ok(Timestamp(number_to_ms(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Ok(Timestamp(parse_rfc3339(v.as_bytes())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Timestamp, E> {
                Ok(Timestamp(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string that borrows from the line unless it has escapes (serde's own `Cow` impl always
/// copies).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// `retryCount`: a non-negative integer (a float with no fraction is accepted).
struct Count(u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v.min(u64::from(u32::MAX)) as u32))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(|v| Count(v.min(u64::from(u32::MAX)) as u32))
                    .map_err(|_| E::custom("negative retryCount"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                if v.is_finite() && v >= 0.0 && v.fract() == 0.0 {
                    Ok(Count(v.min(f64::from(u32::MAX)) as u32))
                } else {
                    Err(E::custom("retryCount is not a whole number"))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// `result.error`: a string, `null`, or an object with a `message` string (as a serialized
/// JavaScript `Error`). Anything else keeps a generic text.
struct ErrorText<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for ErrorText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an error text")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ErrorText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ErrorText(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ErrorText(Some(Cow::Owned(v))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ErrorText(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(ErrorText(Some(Cow::Borrowed("error"))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ErrorText(Some(Cow::Owned(format!("error {v}")))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ErrorText(Some(Cow::Owned(format!("error {v}")))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ErrorText(Some(Cow::Owned(format!("error {v}")))))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ErrorText(Some(Cow::Borrowed("error"))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut message: Option<Cow<'de, str>> = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if message.is_none() && key.0 == "message" {
                        message = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ErrorText(Some(
                    message.unwrap_or(Cow::Borrowed("error (no message)")),
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINE: &str = r#"{"timestamp":"2026-11-26T10:00:00.123Z","operationType":"audit","sessionId":"s-1","timing":{"startTime":1,"duration":2345.5,"queueWait":12},"result":{"success":false,"timedOut":true,"error":"Timed out after 45000ms","exitCode":null},"retryCount":2}"#;

    #[test]
    fn reads_the_used_fields_and_borrows() {
        let p = parse_line(LINE.as_bytes()).unwrap();
        assert_eq!(p.timestamp, Some(1_795_687_200_123));
        assert!(matches!(p.operation_type, Some(Cow::Borrowed("audit"))));
        assert_eq!(p.duration, 2345.5);
        assert!(!p.success);
        assert!(p.timed_out);
        assert!(matches!(
            p.error,
            Some(Cow::Borrowed("Timed out after 45000ms"))
        ));
        assert_eq!(p.retry_count, 2);
        assert_eq!(p.queue_wait, Some(12.0));
    }

    #[test]
    fn timestamps_in_every_documented_form() {
        let ms = 1_795_687_200_123u64;
        for ts in [
            r#""2026-11-26T10:00:00.123Z""#,
            r#""2026-11-26T11:00:00.123+01:00""#,
            r#""2026-11-26 10:00:00.123456""#,
            "1795687200123",
            "1795687200.123",
        ] {
            let line = format!(
                r#"{{"timestamp":{ts},"timing":{{"duration":1}},"result":{{"success":true}}}}"#
            );
            assert_eq!(
                parse_line(line.as_bytes()).unwrap().timestamp,
                Some(ms),
                "{ts}"
            );
        }
    }

    #[test]
    fn bad_lines_get_their_result() {
        let cases: &[(&[u8], LineResult)] = &[
            (b"", LineResult::Empty),
            (b"   \r", LineResult::Empty),
            (b"{not json", LineResult::Malformed),
            (b"\x00\xff\xfe garbage", LineResult::Malformed),
            (b"[1,2]", LineResult::Invalid),
            (b"42", LineResult::Invalid),
            (
                br#"{"timing":{"duration":"12"},"result":{"success":true}}"#,
                LineResult::Invalid,
            ),
            (
                br#"{"timing":{"duration":-1},"result":{"success":true}}"#,
                LineResult::Invalid,
            ),
            (
                br#"{"timestamp":"yesterday","timing":{"duration":1},"result":{"success":true}}"#,
                LineResult::Invalid,
            ),
            (br#"{"timing":{"duration":1}}"#, LineResult::MissingField),
            (
                br#"{"timing":{},"result":{"success":true}}"#,
                LineResult::MissingField,
            ),
            (
                br#"{"timing":{"duration":1},"result":{"success":null}}"#,
                LineResult::MissingField,
            ),
            (
                br#"{"timing":{"duration":1.7e308},"result":{"success":true}}"#,
                LineResult::Implausible,
            ),
            (
                br#"{"timing":{"duration":86400001},"result":{"success":true}}"#,
                LineResult::Implausible,
            ),
            (
                br#"{"timing":{"duration":1,"queueWait":1e300},"result":{"success":true}}"#,
                LineResult::Implausible,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_line(line).err(),
                Some(*want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn error_objects_and_escapes() {
        let p = parse_line(
            br#"{"timing":{"duration":1},"result":{"success":false,"error":{"code":"E","message":"spawn \"codex\" ENOENT"}}}"#,
        )
        .unwrap();
        assert_eq!(p.error.as_deref(), Some("spawn \"codex\" ENOENT"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn never_panics_on_bytes(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_line(&line);
        }

        #[test]
        fn never_panics_on_near_valid_lines(
            cut in 0usize..LINE.len(),
            byte in any::<u8>(),
            at in 0usize..LINE.len(),
        ) {
            let mut line = LINE.as_bytes()[..cut].to_vec();
            if at < line.len() {
                line[at] = byte;
            }
            let _ = parse_line(&line);
            let mut mutated = LINE.as_bytes().to_vec();
            mutated[at] = byte;
            let _ = parse_line(&mutated);
        }

        #[test]
        fn valid_lines_round_trip(
            duration in 0.0f64..=MAX_PLAUSIBLE_MS,
            success in any::<bool>(),
            timed_out in any::<bool>(),
            retries in 0u32..100,
            op in "[a-zA-Z0-9 _\\-\"\\\\é]{0,20}",
            ts in 0u64..4_000_000_000_000,
        ) {
            let line = serde_json::json!({
                "timestamp": ts, "operationType": op, "other": {"nested": [1, 2, {"x": null}]},
                "timing": {"duration": duration}, "result": {"success": success, "timedOut": timed_out},
                "retryCount": retries,
            }).to_string();
            let p = parse_line(line.as_bytes()).unwrap();
            // serde_json's fast float path may differ from the shortest round trip in the last
            // bit; integers (what applications log) are exact.
            prop_assert!((p.duration - duration).abs() <= duration * 1e-15);
            prop_assert_eq!(p.success, success);
            prop_assert_eq!(p.timed_out, timed_out);
            prop_assert_eq!(p.retry_count, retries);
            prop_assert_eq!(p.operation_type.as_deref(), Some(op.as_str()));
            let want = if (ts as f64) < SECONDS_LIMIT { ts * 1000 } else { ts };
            prop_assert_eq!(p.timestamp, Some(want));
        }
    }
}
