//! JSON text as JavaScript's `JSON.parse` reads it, made acceptable to serde: the rewrites
//! applied to a packet's data before any parser sees it.
//!
//! Owns the two places where `JSON.parse` accepts text that serde_json (and simd-json)
//! refuse, found by comparing them on a corpus (`tools/jsoncompat/`, differences listed in
//! docs/API.md, "JSON that the server accepts"):
//!
//! - a `\uXXXX` escape of a lone UTF-16 surrogate (a high one not followed by an escaped low
//!   one, or a low one on its own), which JavaScript keeps in its string and which becomes
//!   U+FFFD as soon as the string is encoded as UTF-8 (by a browser, Node or a database). It
//!   is rewritten to `\ufffd`, in keys and values alike;
//! - a number outside the range of an `f64` (`1e400`, `-1e999`, 400 digits), which
//!   `JSON.parse` reads as `±Infinity` and `JSON.stringify` writes as `null`. It is rewritten
//!   to `null`.
//!
//! It never decides whether text is valid JSON: text it does not understand is left as it is
//! for the parser to refuse. It never allocates when there is nothing to rewrite (the usual
//! case), and it never panics on any input.

use std::borrow::Cow;

/// What replaces a lone surrogate escape: the escape of U+FFFD REPLACEMENT CHARACTER.
const REPLACEMENT_ESCAPE: &str = "\\ufffd";

/// `text` with every lone surrogate escape replaced by `\ufffd` and every number outside the
/// `f64` range replaced by `null`; borrowed when there is nothing to replace.
///
/// The length of the result is at most `text.len()` (each rewrite is no longer than what it
/// replaces), so a limit checked on the input also bounds the output.
pub fn normalize(text: &str) -> Cow<'_, str> {
    match normalize_within(text, usize::MAX) {
        Ok(out) => out,
        // No text nests deeper than `usize::MAX`.
        Err(TooDeep) => Cow::Borrowed(text),
    }
}

/// The text nests deeper than the depth allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

/// [`normalize`], refusing in the same pass a text whose arrays and objects nest deeper than
/// `max_depth` (counted as [`super::json_limits::check`] counts them: open `[`/`{` outside
/// strings), so the decoder's path for events reads the bytes once for both.
pub fn normalize_within(text: &str, max_depth: usize) -> Result<Cow<'_, str>, TooDeep> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // Replacements as (start, end, with), in order and not overlapping.
    let mut edits: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut in_string = false;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if in_string {
            // Most of a string is neither a quote nor a backslash: skip to the next one.
            if byte != b'"' && byte != b'\\' {
                let run = bytes
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .unwrap_or(bytes.len() - i);
                i += run;
                continue;
            }
            match byte {
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                b'\\' if bytes.get(i + 1) == Some(&b'u') => match hex4(bytes, i + 2) {
                    Some(0xD800..=0xDBFF) => {
                        let paired = bytes.get(i + 6) == Some(&b'\\')
                            && bytes.get(i + 7) == Some(&b'u')
                            && matches!(hex4(bytes, i + 8), Some(0xDC00..=0xDFFF));
                        if paired {
                            i += 12;
                        } else {
                            edits.push((i, i + 6, REPLACEMENT_ESCAPE));
                            i += 6;
                        }
                    }
                    Some(0xDC00..=0xDFFF) => {
                        edits.push((i, i + 6, REPLACEMENT_ESCAPE));
                        i += 6;
                    }
                    Some(_) => i += 6,
                    // Not four hex digits: the parser refuses it.
                    None => i += 2,
                },
                // Any other escape is two bytes; a backslash at the very end stays.
                b'\\' => i += 2,
                _ => i += 1,
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(TooDeep);
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let end = i + bytes
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .count();
                let token = text.get(i..end).unwrap_or_default();
                if out_of_f64_range(token) {
                    edits.push((i, end, "null"));
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    if edits.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, with) in edits {
        out.push_str(text.get(at..start).unwrap_or_default());
        out.push_str(with);
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    Ok(Cow::Owned(out))
}

/// Whether a number token parses (as JSON numbers are a subset of Rust's float syntax) to an
/// infinity. Only tokens with an exponent or more digits than an `f64` can hold below its
/// maximum (309) can; the rest are not parsed here at all.
fn out_of_f64_range(token: &str) -> bool {
    let may_overflow = token.len() > 309 || token.bytes().any(|b| b == b'e' || b == b'E');
    may_overflow && token.parse::<f64>().is_ok_and(|value| value.is_infinite())
}

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |n, &d| {
        let v = char::from(d).to_digit(16)?;
        Some(n * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(text: &str) -> Value {
        serde_json::from_str(&normalize(text)).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_issue_message_decodes_with_a_replacement_character() {
        let text = r#"["chatMessage",{"bookId":2701,"userId":"u1","username":"Ann","content":"half an emoji \ud83d"}]"#;
        assert!(
            serde_json::from_str::<Value>(text).is_err(),
            "serde refuses it"
        );
        let value = parse(text);
        assert_eq!(value[1]["content"], "half an emoji \u{fffd}");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters_anywhere() {
        for (text, expected) in [
            (r#""\ud83d""#, "\u{fffd}"),
            (r#""\uDC00""#, "\u{fffd}"),
            (r#""a\ud83db""#, "a\u{fffd}b"),
            (r#""\ud83d\ud83d""#, "\u{fffd}\u{fffd}"),
            (r#""\udc00\ud83d""#, "\u{fffd}\u{fffd}"),
            (r#""\ud83d\n""#, "\u{fffd}\n"),
            (r#""\ud83d\u0041""#, "\u{fffd}A"),
            (r#""\ud83d\ud83d\ude00""#, "\u{fffd}\u{1f600}"),
            (r#""\ud83d\ude00""#, "\u{1f600}"),
            (r#""\\ud83d""#, "\\ud83d"),
        ] {
            assert_eq!(parse(text), Value::String(expected.to_owned()), "{text}");
        }
        let value = parse(r#"{"k\udfff":["\ud800",{"\ud800":1}]}"#);
        assert_eq!(
            value,
            serde_json::json!({"k\u{fffd}": ["\u{fffd}", {"\u{fffd}": 1}]})
        );
    }

    #[test]
    fn numbers_beyond_f64_become_null_and_the_rest_stay() {
        let huge = format!("[{}]", "9".repeat(400));
        for (text, expected) in [
            ("[1e400]", "[null]"),
            ("[-1e400, 2]", "[null, 2]"),
            ("[1E+309]", "[null]"),
            (huge.as_str(), "[null]"),
            ("{\"a\":1e400}", "{\"a\":null}"),
        ] {
            assert_eq!(normalize(text), expected, "{text}");
        }
        for text in [
            "[1e308]",
            "[1e-400]",
            "[-0]",
            "[123456789012345678901234567890]",
            "[\"1e400\"]",
            "[1e400e]",
            "[--1]",
        ] {
            assert!(matches!(normalize(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn depth_is_checked_in_the_same_pass_as_json_limits_counts_it() {
        for (text, depth) in [
            (r#"["a",{"b":[1]}]"#, 3),
            (r#"["[[[[{{{{", "\"[[["]"#, 1),
            (r#"[["\ud83d"],{"k":[1e400]}]"#, 3),
        ] {
            assert!(normalize_within(text, depth).is_ok(), "{text}");
            assert_eq!(normalize_within(text, depth - 1), Err(TooDeep), "{text}");
            assert!(
                crate::socketio::json_limits::check(text, depth - 1, usize::MAX).is_err(),
                "{text}"
            );
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(normalize_within(&deep, 127), Err(TooDeep));
    }

    #[test]
    fn malformed_escapes_are_left_for_the_parser() {
        for text in [
            r#""\u12""#,
            r#""\uZZZZ""#,
            "\"\\",
            "\"\\u",
            r#""\ud83d\u12""#,
        ] {
            let out = normalize(text);
            assert!(serde_json::from_str::<Value>(&out).is_err(), "{text}");
        }
    }

    #[test]
    fn never_longer_than_the_input_and_borrowed_when_clean() {
        let clean = r#"["chatMessage",{"content":"caf\u00e9 \ud83d\ude00 [1e5]"}]"#;
        assert!(matches!(normalize(clean), Cow::Borrowed(_)));
        for text in ["\"\\ud800\"", "[1e999]", "\"\\udc00\\udc00\""] {
            assert!(normalize(text).len() <= text.len(), "{text}");
        }
    }

    #[test]
    fn every_prefix_of_tricky_texts_is_handled_without_panic() {
        let text = r#"{"a\ud83d":[1e400,-2,"\udc00\\"],"b":"\ud83d\ude00"}"#;
        for end in 0..=text.len() {
            if let Some(prefix) = text.get(..end) {
                let _ = normalize(prefix);
            }
        }
    }
}
