//! A pre-check of a packet's JSON text against the nesting-depth and element-count limits,
//! before anything is allocated for it.
//!
//! One pass over the bytes, skipping string contents: depth is the count of open `[`/`{`,
//! elements are the values and members the text announces (each container plus each `,`
//! inside one). A 1 MB message of `[0,0,0,…]` would otherwise become half a million
//! `serde_json::Value`s (tens of MB) before any rule could refuse it. The text need not be
//! valid JSON: the parser that runs after this one still rejects what is malformed.

/// Why the JSON text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLimitError {
    TooDeep,
    TooManyElements,
}

/// Check `text` against `max_depth` nested containers and `max_elements` values.
pub fn check(text: &str, max_depth: usize, max_elements: usize) -> Result<(), JsonLimitError> {
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(JsonLimitError::TooDeep);
                }
                elements += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => elements += 1,
            _ => continue,
        }
        if elements > max_elements {
            return Err(JsonLimitError::TooManyElements);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_open_containers_and_ignores_strings() {
        assert_eq!(check(r#"["a",{"b":[1]}]"#, 3, 100), Ok(()));
        assert_eq!(
            check(r#"["a",{"b":[[1]]}]"#, 3, 100),
            Err(JsonLimitError::TooDeep)
        );
        assert_eq!(check(r#"["[[[[{{{{", "\"[[["]"#, 1, 100), Ok(()));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(check(&deep, 32, usize::MAX), Err(JsonLimitError::TooDeep));
    }

    #[test]
    fn elements_count_values_and_members() {
        assert_eq!(check("[1,2,3]", 8, 3), Ok(()));
        assert_eq!(
            check("[1,2,3,4]", 8, 3),
            Err(JsonLimitError::TooManyElements)
        );
        assert_eq!(check(r#"{"a":1,"b":2}"#, 8, 2), Ok(()));
        assert_eq!(check(r#"["a,b,c,d,e"]"#, 8, 1), Ok(()));
        let wide = format!("[{}0]", "0,".repeat(100_000));
        assert_eq!(
            check(&wide, 32, 10_000),
            Err(JsonLimitError::TooManyElements)
        );
    }

    #[test]
    fn a_typical_chat_event_is_far_inside_the_defaults() {
        let event = r#"["chatMessage",{"bookId":"b1","userId":"u1","username":"Ann","content":"hi, [there] {x}"}]"#;
        assert_eq!(check(event, 32, 10_000), Ok(()));
        assert_eq!(check(event, 2, 6), Ok(()));
        assert!(check(event, 2, 5).is_err());
    }
}
