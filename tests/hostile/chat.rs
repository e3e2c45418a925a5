//! Hostile chat payloads (docs/API.md): every event with a payload of every wrong shape —
//! not an object, fields missing, of the wrong type, out of range — answered with the
//! documented error through the ack, or as an `exception` event without one; membership,
//! identity, room-count and rate errors; unknown and oddly named events ignored. No error
//! closes the connection.

use std::time::Duration;

use serde_json::{json, Value};

use crate::client::ChatClient;
use crate::scene::Scene;
use crate::server::{MAX_ROOMS, MESSAGE_BURST};

/// One bad request: its event, its argument list after the name (raw JSON, `""` for none),
/// the error code and a word the error message must contain.
struct Bad {
    event: &'static str,
    args: String,
    code: &'static str,
    mentions: &'static str,
}

fn bad(
    event: &'static str,
    args: impl Into<String>,
    code: &'static str,
    mentions: &'static str,
) -> Bad {
    Bad {
        event,
        args: args.into(),
        code,
        mentions,
    }
}

/// A join/message payload with `field` set to the raw JSON `value` (or left out for `None`).
fn payload(event: &str, field: &str, value: Option<&str>) -> String {
    let mut fields = vec![
        ("bookId", "21".to_owned()),
        ("userId", "\"u-1\"".to_owned()),
        ("username", "\"Ishmael\"".to_owned()),
    ];
    if event == "chatMessage" {
        fields.push(("content", "\"hello\"".to_owned()));
    }
    if event == "leaveRoom" {
        fields.retain(|(name, _)| *name != "userId");
    }
    let mut parts = Vec::new();
    let mut seen = false;
    for (name, default) in fields {
        if name == field {
            seen = true;
            if let Some(value) = value {
                parts.push(format!("\"{name}\":{value}"));
            }
        } else {
            parts.push(format!("\"{name}\":{default}"));
        }
    }
    if !seen {
        if let Some(value) = value {
            parts.push(format!("\"{field}\":{value}"));
        }
    }
    format!("{{{}}}", parts.join(","))
}

fn all_bad_requests() -> Vec<Bad> {
    let mut cases = Vec::new();
    let not_objects = [
        "null",
        "1",
        "-0.5",
        "\"bookId\"",
        "true",
        "[]",
        "[{\"bookId\":21}]",
    ];
    let bad_book_ids = [
        "null",
        "0",
        "-1",
        "1.5",
        "\"\"",
        "\"21a\"",
        "\" 21\"",
        "\"-21\"",
        "\"0x15\"",
        "true",
        "[21]",
        "{\"id\":21}",
        "9007199254740992",
        "\"9007199254740992\"",
        "1e300",
        "\"99999999999999999999999999\"",
    ];
    let bad_user_ids = ["null", "\"\"", "true", "[\"u\"]", "{\"id\":\"u\"}"];
    let long_user_id = format!("\"{}\"", "u".repeat(129));
    let bad_usernames = [
        "null",
        "\"\"",
        "\"   \"",
        "\"\\t\\n\"",
        "1",
        "true",
        "[\"n\"]",
        "{}",
        "\"a\\u0000b\"",
        "\"bell\\u0007\"",
        "\"esc\\u001b[31m\"",
    ];
    let long_username = format!("\"{}\"", "n".repeat(65));
    for event in ["joinRoom", "chatMessage", "leaveRoom"] {
        cases.push(bad(event, "", "invalid_payload", "payload"));
        for value in not_objects {
            cases.push(bad(event, value, "invalid_payload", "payload"));
        }
        for field in ["bookId", "username"] {
            cases.push(bad(
                event,
                payload(event, field, None),
                "invalid_payload",
                field_name(field),
            ));
        }
        for value in bad_book_ids {
            cases.push(bad(
                event,
                payload(event, "bookId", Some(value)),
                "invalid_payload",
                "bookId",
            ));
        }
        for value in bad_usernames
            .iter()
            .copied()
            .chain([long_username.as_str()])
        {
            cases.push(bad(
                event,
                payload(event, "username", Some(value)),
                "invalid_payload",
                "username",
            ));
        }
        for value in bad_user_ids.iter().copied().chain([long_user_id.as_str()]) {
            if event == "leaveRoom" && value == "null" {
                continue; // userId is optional on leave; null means absent
            }
            cases.push(bad(
                event,
                payload(event, "userId", Some(value)),
                "invalid_payload",
                "userId",
            ));
        }
    }
    for event in ["joinRoom", "chatMessage"] {
        cases.push(bad(
            event,
            payload(event, "userId", None),
            "invalid_payload",
            "userId",
        ));
    }
    let too_long = format!("\"{}\"", "c".repeat(4001));
    let too_long_astral = format!("\"{}\"", "\u{1f4da}".repeat(4001));
    for value in [
        "null",
        "\"\"",
        "\"   \"",
        "\"\\n\\t \"",
        "42",
        "true",
        "[\"hi\"]",
        "{\"text\":\"hi\"}",
        "\"bell\\u0007\"",
        "\"nul\\u0000\"",
        "\"del\\u007f\"",
        "\"c1\\u0085c1\"",
        too_long.as_str(),
        too_long_astral.as_str(),
    ] {
        cases.push(bad(
            "chatMessage",
            payload("chatMessage", "content", Some(value)),
            "invalid_payload",
            "content",
        ));
    }
    cases.push(bad(
        "chatMessage",
        payload("chatMessage", "content", None),
        "invalid_payload",
        "content",
    ));
    cases
}

/// Errors name the field as the contract does (`bookId`, `userId`, ...).
fn field_name(field: &'static str) -> &'static str {
    field
}

/// The error answer through an ack: `{ ok: false, error: { code, message } }`.
fn assert_error_ack(ack: &Value, case: &Bad) {
    let what = format!("{} {}", case.event, shorten(&case.args));
    let object = ack
        .as_object()
        .unwrap_or_else(|| panic!("{what}: ack {ack}"));
    assert_eq!(object.len(), 2, "{what}: ack {ack}");
    assert_eq!(ack["ok"], json!(false), "{what}: ack {ack}");
    assert_eq!(ack["error"]["code"], json!(case.code), "{what}: ack {ack}");
    let message = ack["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {ack}"));
    assert!(
        message.contains(case.mentions),
        "{what}: message {message:?} names {:?}",
        case.mentions
    );
}

/// The error answer without an ack: `exception` with `{ status, event, code, message }`.
fn assert_exception(body: &Value, case: &Bad) {
    let what = format!("{} {}", case.event, shorten(&case.args));
    assert_eq!(body["status"], json!("error"), "{what}: {body}");
    assert_eq!(body["event"], json!(case.event), "{what}: {body}");
    assert_eq!(body["code"], json!(case.code), "{what}: {body}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(
        message.contains(case.mentions),
        "{what}: message {message:?} names {:?}",
        case.mentions
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(4), "{what}: {body}");
}

fn shorten(text: &str) -> String {
    if text.len() > 80 {
        format!("{}…({} bytes)", &text[..60], text.len())
    } else {
        text.to_owned()
    }
}

#[test]
fn chat_payloads_of_every_wrong_shape_get_invalid_payload() {
    let scene = Scene::start(&[]);
    let cases = all_bad_requests();
    assert!(cases.len() > 100, "{} cases", cases.len());
    // One client, all with acks; it has joined book 21 first, so only the payload is wrong.
    let mut client = ChatClient::connect(scene.addr());
    client.join(21, "u-1");
    for case in &cases {
        let id = client.emit_raw_with_ack(case.event, &case.args);
        let ack = client.expect_ack(id);
        assert_error_ack(&ack, case);
    }
    // The same without acks: an `exception` event each, in order, nothing else.
    for case in &cases {
        let name = serde_json::Value::from(case.event);
        let text = if case.args.is_empty() {
            format!("42[{name}]")
        } else {
            format!("42[{name},{}]", case.args)
        };
        client.send(&text);
        let body = client.expect_event("exception");
        assert_exception(&body, case);
    }
    assert!(
        client.events.is_empty(),
        "unexpected events: {:?}",
        client.events
    );
    // Nothing was closed or broken: the client still posts.
    let id = client.emit_with_ack(
        "chatMessage",
        &json!({ "bookId": 21, "userId": "u-1", "username": "Ishmael", "content": "still here" }),
    );
    let ack = client.expect_ack(id);
    assert_eq!(ack["ok"], json!(true), "{ack}");
    drop(client);
    scene.finish("chat payloads of every wrong shape");
}

#[test]
fn chat_rule_breaking_gets_the_documented_codes() {
    let scene = Scene::start(&[]);
    let mut client = ChatClient::connect(scene.addr());
    let post = |book: u64, user: &str| json!({ "bookId": book, "userId": user, "username": "n", "content": "hi" });
    // Posting to a room not joined.
    let id = client.emit_with_ack("chatMessage", &post(31, "u-1"));
    let ack = client.expect_ack(id);
    assert_eq!(ack["error"]["code"], json!("not_in_room"), "{ack}");
    client.send(&format!("42{}", json!(["chatMessage", post(31, "u-1")])));
    let exception = client.expect_event("exception");
    assert_eq!(exception["code"], json!("not_in_room"), "{exception}");
    assert_eq!(exception["event"], json!("chatMessage"), "{exception}");
    // Another identity after the first join.
    client.join(31, "u-1");
    for (event, payload) in [
        ("chatMessage", post(31, "u-2")),
        (
            "joinRoom",
            json!({ "bookId": 32, "userId": "u-2", "username": "n" }),
        ),
        (
            "leaveRoom",
            json!({ "bookId": 31, "userId": "u-2", "username": "n" }),
        ),
        (
            "chatMessage",
            json!({ "bookId": 31, "userId": 17, "username": "n", "content": "x" }),
        ),
    ] {
        let id = client.emit_with_ack(event, &payload);
        let ack = client.expect_ack(id);
        assert_eq!(
            ack["error"]["code"],
            json!("identity_mismatch"),
            "{event} {payload}: {ack}"
        );
    }
    // More rooms than allowed.
    for book in 32..(31 + MAX_ROOMS as u64) {
        client.join(book, "u-1");
    }
    let id = client.emit_with_ack(
        "joinRoom",
        &json!({ "bookId": 99, "userId": "u-1", "username": "n" }),
    );
    let ack = client.expect_ack(id);
    assert_eq!(ack["error"]["code"], json!("too_many_rooms"), "{ack}");
    // Rejoining a room already joined is not a new room: it succeeds.
    client.join(31, "u-1");
    // Leaving a room not joined: a quiet success.
    let id = client.emit_with_ack("leaveRoom", &json!({ "bookId": 98, "username": "n" }));
    assert_eq!(client.expect_ack(id), json!({ "ok": true }));
    // A blast of 300 posts with acks: the burst passes, the rest is rate_limited; every one
    // is answered exactly once.
    let (ids, texts): (Vec<u64>, Vec<String>) = (0..300)
        .map(|_| client.ack_packet("chatMessage", &post(31, "u-1")))
        .unzip();
    client.send_batch(&texts);
    let mut ok = 0;
    let mut limited = 0;
    for id in ids {
        let ack = client.expect_ack(id);
        if ack["ok"] == json!(true) {
            ok += 1;
        } else {
            assert_eq!(ack["error"]["code"], json!("rate_limited"), "{ack}");
            limited += 1;
        }
    }
    assert_eq!(ok + limited, 300);
    assert!(
        ok >= MESSAGE_BURST as usize && limited >= 100,
        "{ok} accepted, {limited} rate limited"
    );
    // Unknown events, numeric event names and extra arguments are ignored.
    client.send("42[\"deleteEverything\",{\"bookId\":31}]");
    client.send("421[\"deleteEverything\"]");
    client.send("42[7,{\"bookId\":31}]");
    client.send("42[\"__proto__\",{}]");
    client.events.retain(|(name, _)| name != "newMessage");
    client.expect_silence_except_messages(Duration::from_millis(300));
    // Still a working connection.
    std::thread::sleep(Duration::from_millis(100));
    let id = client.emit_with_ack(
        "chatMessage",
        &json!({ "bookId": "31", "userId": "u-1", "username": "n", "content": "  trimmed  ", "extra": {"x": 1} }),
    );
    let ack = client.expect_ack(id);
    assert_eq!(ack["ok"], json!(true), "{ack}");
    assert_eq!(ack["message"]["content"], json!("trimmed"), "{ack}");
    assert_eq!(ack["message"]["bookId"], json!(31), "{ack}");
    assert!(ack["message"].get("extra").is_none(), "{ack}");
    drop(client);
    scene.finish("chat rule breaking");
}
