//! An event's data read as JSON text, without building a tree: its shape and name for the
//! decoder, its first argument as a typed value for the application.
//!
//! Owns the serde visitors that walk an event array (`["name", arg, ...]`) once, skipping
//! what they do not need with [`IgnoredAny`], which allocates nothing and follows any depth.
//! A 400 kB array of numbers in an argument costs one pass over its bytes and no memory.
//! It never decides what an argument means (that is the application's, e.g.
//! `chat::validate`), and never sees text that [`super::json_text::normalize`] has not
//! rewritten.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The first element of an event array, as far as the decoder needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventName<'a> {
    /// A string: the event name.
    Str(Cow<'a, str>),
    /// A number (socket.io-parser accepts events named by numbers).
    Number,
    /// Anything else (`null`, a boolean, an array, an object).
    Other,
    /// The array is empty.
    Missing,
}

/// The shape of a packet's data for an EVENT: an array with its first element, or not an
/// array at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventHead<'a> {
    Array(EventName<'a>),
    NotArray,
}

impl<'a> EventHead<'a> {
    /// Read `json` (the whole data text) once: `Err` when it is not exactly one JSON value.
    pub fn read(json: &'a str) -> Result<EventHead<'a>, serde_json::Error> {
        serde_json::from_str(json)
    }
}

impl<'de> Deserialize<'de> for EventHead<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadVisitor;
        impl<'de> Visitor<'de> for HeadVisitor {
            type Value = EventHead<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let name = seq.next_element::<EventName<'de>>()?;
                skip_rest(&mut seq)?;
                Ok(EventHead::Array(name.unwrap_or(EventName::Missing)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map)?;
                Ok(EventHead::NotArray)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(EventHead::NotArray)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(EventHead::NotArray)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(EventHead::NotArray)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(EventHead::NotArray)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(EventHead::NotArray)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(EventHead::NotArray)
            }
        }
        deserializer.deserialize_any(HeadVisitor)
    }
}

impl<'de> Deserialize<'de> for EventName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = EventName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(EventName::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(EventName::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(EventName::Str(Cow::Owned(s)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(EventName::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(EventName::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(EventName::Number)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(EventName::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(EventName::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                skip_rest(&mut seq)?;
                Ok(EventName::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map)?;
                Ok(EventName::Other)
            }
        }
        deserializer.deserialize_any(NameVisitor)
    }
}

/// The name of an event whose data text the decoder has already checked: the first element
/// when it is a string, read without a pass over the rest (`None` for a number, or for text
/// that is not an event array). Costs the length of the name.
pub fn event_name(json: &str) -> Option<String> {
    let rest = json
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .strip_prefix('[')?;
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r']);
    let bytes = rest.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    // The closing quote: the first `"` not escaped by an odd run of backslashes.
    let mut escaped = false;
    let end = bytes.iter().enumerate().skip(1).find_map(|(i, &b)| {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return Some(i),
            _ => {}
        }
        None
    })?;
    serde_json::from_str(rest.get(..=end)?).ok()
}

/// The first argument of an event array (the element after the name) as a `T`, the rest
/// skipped: `Ok(None)` when the event has no argument.
///
/// Errors are `T`'s (a wrong type, a missing field) or, for text that did not come through
/// the decoder, JSON syntax errors.
pub fn first_arg<'a, T: Deserialize<'a>>(json: &'a str) -> Result<Option<T>, serde_json::Error> {
    let FirstArg(arg) = serde_json::from_str(json)?;
    Ok(arg)
}

/// An event array read for its first argument only (see [`first_arg`]); any serde
/// deserializer can produce it (the chat bench reads it with simd-json too).
#[derive(Debug, Clone, PartialEq)]
pub struct FirstArg<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for FirstArg<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FirstArgVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for FirstArgVisitor<T> {
            type Value = FirstArg<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Ok(FirstArg(None));
                }
                let arg = seq.next_element::<T>()?;
                skip_rest(&mut seq)?;
                Ok(FirstArg(arg))
            }
        }
        deserializer.deserialize_seq(FirstArgVisitor(PhantomData))
    }
}

/// Consume the remaining elements of a sequence without keeping them.
pub fn skip_rest<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Consume the remaining entries of a map without keeping them.
pub fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_reads_the_name_and_skips_the_rest() {
        assert_eq!(
            EventHead::read(r#"["chat",{"a":[1,2,[3]]},4]"#).unwrap(),
            EventHead::Array(EventName::Str(Cow::Borrowed("chat")))
        );
        assert_eq!(
            EventHead::read(r#"["ch\"at"]"#).unwrap(),
            EventHead::Array(EventName::Str(Cow::Owned("ch\"at".to_owned())))
        );
        assert_eq!(
            EventHead::read("[7,1]").unwrap(),
            EventHead::Array(EventName::Number)
        );
        for text in ["[null]", "[[1]]", "[{}]", "[true]"] {
            assert_eq!(
                EventHead::read(text).unwrap(),
                EventHead::Array(EventName::Other),
                "{text}"
            );
        }
        assert_eq!(
            EventHead::read("[]").unwrap(),
            EventHead::Array(EventName::Missing)
        );
        for text in ["{}", "{\"a\":[1]}", "1", "\"x\"", "null", "true", "-1.5"] {
            assert_eq!(
                EventHead::read(text).unwrap(),
                EventHead::NotArray,
                "{text}"
            );
        }
    }

    #[test]
    fn head_refuses_what_is_not_one_json_value() {
        for text in ["[\"x\"", "[\"x\"]x", "[\"x\",]", "", "[1,{\"a\"}]", "[01]"] {
            assert!(EventHead::read(text).is_err(), "{text}");
        }
    }

    #[test]
    fn head_follows_any_depth_without_recursion() {
        let deep = format!("[\"x\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert!(EventHead::read(&deep).is_ok());
    }

    #[test]
    fn event_name_reads_only_the_first_string() {
        assert_eq!(event_name(r#"["chat",1]"#).as_deref(), Some("chat"));
        assert_eq!(
            event_name(" [ \"a\\\"b\\\\\" ,{}]").as_deref(),
            Some("a\"b\\")
        );
        assert_eq!(
            event_name(r#"["t\u00e9\ufffd"]"#).as_deref(),
            Some("t\u{e9}\u{fffd}")
        );
        for text in ["[1,\"x\"]", "[]", "{}", "", "[\"open", "[null]"] {
            assert_eq!(event_name(text), None, "{text}");
        }
    }

    #[test]
    fn first_arg_is_typed_and_borrowed() {
        let arg: Option<&str> = first_arg(r#"["e","text",[1,2]]"#).unwrap();
        assert_eq!(arg, Some("text"));
        let arg: Option<&str> = first_arg(r#"["e"]"#).unwrap();
        assert_eq!(arg, None);
        assert!(first_arg::<&str>(r#"["e",1]"#).is_err());
    }
}
