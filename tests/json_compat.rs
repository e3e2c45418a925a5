//! JSON that JavaScript accepts (issue 10, items 1 and 8), over real sockets and against
//! Node's `JSON.parse` on a corpus.
//!
//! - The corpus (`tools/jsoncompat/corpus.jsonl`, written by `node
//!   tools/jsoncompat/generate.mjs` from the fuzz corpora and hand-written cases): every case
//!   is decoded as the server decodes an event; it must be accepted exactly when `JSON.parse`
//!   accepts it and decode to the same value, but for the differences docs/API.md lists
//!   ("JSON that the server accepts"), which are counted here by kind.
//! - The issue's inputs, each with its right answer, over a WebSocket to the chat (ChatApp
//!   over RocksDB) or to the conformance echo server: a lone surrogate is stored and
//!   broadcast as U+FFFD, numbers beyond `f64` are `null`, and a `chatMessage` whose content
//!   is 200,000 numbers is answered `invalid_payload` on a connection that goes on.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use readrealm_chat::chat::limits::ChatLimits;
use readrealm_chat::chat::ChatApp;
use readrealm_chat::config::Layer;
use readrealm_chat::socketio::packet::{decode_deferred, Limits, PacketError};
use readrealm_chat::socketio::Event;
use readrealm_chat::store::Store;
use serde_json::{json, Value};
use support::*;

// ---------------------------------------------------------------------------------------------
// The corpus, against Node's JSON.parse
// ---------------------------------------------------------------------------------------------

/// JSON equality where numbers compare as `f64`s: JavaScript has no other number, so an
/// integer the server keeps exact (beyond 2^53) equals JavaScript's rounded one.
fn same_as_js(ours: &Value, js: &Value) -> bool {
    match (ours, js) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_as_js(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_as_js(va, vb))
        }
        _ => ours == js,
    }
}

fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for byte in text.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[test]
fn the_decoder_accepts_what_json_parse_accepts_on_the_corpus() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/jsoncompat/corpus.jsonl");
    let corpus = std::fs::read_to_string(&path).expect("tools/jsoncompat/corpus.jsonl");
    let limits = Limits::default();
    let (mut cases, mut accepted, mut too_deep) = (0, 0, 0);
    let mut differences = Vec::new();
    for line in corpus.lines() {
        let case: Value = serde_json::from_str(line).expect("a corpus line");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(case["b64"].as_str().expect("b64"))
            .expect("base64");
        let text = String::from_utf8(bytes).expect("cases are UTF-8, as WebSocket text is");
        let js_ok = case["ok"].as_bool().expect("ok");
        cases += 1;
        let ours = decode_deferred(&format!("2{text}"), &limits);
        match (&ours, js_ok) {
            (Ok((packet, _)), true) => {
                accepted += 1;
                let json = packet.json.clone().expect("an event keeps its text");
                let event = Event::from_json(json, Vec::new(), None);
                let mut ours = vec![json!("x")];
                ours.extend(event.args().expect("within serde's depth"));
                let js: Value = serde_json::from_str(case["value"].as_str().expect("value"))
                    .expect("JSON.stringify's output");
                if !same_as_js(&Value::Array(ours.clone()), &js) {
                    differences.push(format!("{text:?}: ours {ours:?}, JSON.parse {js}"));
                }
            }
            (Err(PacketError::JsonTooDeep), true) if nesting(&text) > Limits::SERDE_MAX_DEPTH => {
                // Documented: deeper than serde_json's 127 levels closes the connection.
                too_deep += 1;
            }
            (Err(_), false) => {}
            (Err(e), true) => {
                differences.push(format!("{text:?}: refused ({e}), JSON.parse accepts"))
            }
            (Ok(_), false) => differences.push(format!("{text:?}: accepted, JSON.parse refuses")),
        }
    }
    println!("{cases} cases, {accepted} accepted by both, {too_deep} deeper than 127 levels");
    assert!(
        cases > 500 && accepted > 150,
        "the corpus is missing ({cases} cases)"
    );
    assert!(
        too_deep >= 1,
        "the corpus holds nesting beyond serde's limit"
    );
    assert!(
        differences.is_empty(),
        "{} undocumented differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Over a real socket: the chat
// ---------------------------------------------------------------------------------------------

struct Chat {
    server: TestServer,
    dir: PathBuf,
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_chat() -> Chat {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    let dir = std::env::temp_dir().join(format!(
        "readrealm-json-compat-{:016x}",
        u64::from_le_bytes(bytes)
    ));
    let store = Arc::new(Store::open(&dir, false).expect("store opens"));
    let server = start_server(ChatApp::new(store, ChatLimits::default()), |c| {
        c.path = "/socket.io/".into();
        c.layer = Layer::SocketIo;
        c.shards = 2;
        quiet(c);
    });
    Chat { server, dir }
}

/// A connected Socket.IO client on `/`.
fn sio(server: &TestServer) -> Ws {
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "40");
    assert!(ws_expect_text(&mut ws).starts_with("40{\"sid\""));
    ws
}

/// The next EVENT named `name` (others skipped): its arguments.
fn next_event(ws: &mut Ws, name: &str) -> Vec<Value> {
    loop {
        let text = ws_expect_text(ws);
        let Some(json) = text.strip_prefix("42") else {
            continue;
        };
        let data: Value = serde_json::from_str(json).expect("the server writes JSON");
        if data[0] == json!(name) {
            return data.as_array().expect("an array")[1..].to_vec();
        }
    }
}

/// The next ACK with id `id` (events skipped): its values.
fn next_ack(ws: &mut Ws, id: u64) -> Vec<Value> {
    let prefix = format!("43{id}[");
    loop {
        let text = ws_expect_text(ws);
        if text.starts_with(&prefix) {
            let data: Value = serde_json::from_str(&text[prefix.len() - 1..]).expect("JSON");
            return data.as_array().expect("an array").clone();
        }
    }
}

fn join(ws: &mut Ws, book: u64, user: &str, id: u64) -> Vec<Value> {
    ws_send_text(
        ws,
        &format!(r#"42{id}["joinRoom",{{"bookId":{book},"userId":"{user}","username":"{user}"}}]"#),
    );
    let history = next_event(ws, "previousMessages");
    assert_eq!(next_ack(ws, id)[0]["ok"], json!(true));
    history[0].as_array().expect("history").clone()
}

#[test]
fn a_chat_message_with_a_lone_surrogate_is_stored_and_broadcast_with_a_replacement_character() {
    let chat = start_chat();
    let mut ann = sio(&chat.server);
    let mut bystander = sio(&chat.server);
    join(&mut ann, 2701, "u1", 1);
    join(&mut bystander, 2701, "u2", 1);
    let _ = next_event(&mut ann, "userJoined");
    // The issue's message, byte for byte: no ack, as a client that cut a string at a UTF-16
    // length sends it.
    ws_send_text(
        &mut ann,
        r#"42["chatMessage",{"bookId":2701,"userId":"u1","username":"Ann","content":"half an emoji \ud83d"}]"#,
    );
    let expected = "half an emoji \u{fffd}";
    assert_eq!(
        next_event(&mut bystander, "newMessage")[0]["content"],
        json!(expected)
    );
    assert_eq!(
        next_event(&mut ann, "newMessage")[0]["content"],
        json!(expected)
    );
    // With an ack, a low surrogate on its own, in a username too.
    ws_send_text(
        &mut ann,
        r#"427["chatMessage",{"bookId":2701,"userId":"u1","username":"An\udc00n","content":"\udc00 tail"}]"#,
    );
    let ack = next_ack(&mut ann, 7);
    assert_eq!(ack[0]["ok"], json!(true), "{ack:?}");
    assert_eq!(ack[0]["message"]["content"], json!("\u{fffd} tail"));
    assert_eq!(ack[0]["message"]["username"], json!("An\u{fffd}n"));
    // Stored: a reader joining later gets both in the history (newest first).
    let mut later = sio(&chat.server);
    let history = join(&mut later, 2701, "u3", 1);
    let contents: Vec<&Value> = history.iter().map(|m| &m["content"]).collect();
    assert_eq!(contents, [&json!("\u{fffd} tail"), &json!(expected)]);
    // Ann's session went on all along.
    ws_send_text(
        &mut ann,
        r#"429["leaveRoom",{"bookId":2701,"username":"Ann"}]"#,
    );
    assert_eq!(next_ack(&mut ann, 9)[0], json!({"ok": true}));
}

#[test]
fn a_chat_message_whose_content_is_200000_numbers_is_answered_invalid_payload() {
    let chat = start_chat();
    let mut ann = sio(&chat.server);
    join(&mut ann, 5, "u1", 1);
    let numbers = vec!["0"; 200_000].join(",");
    let payload = format!(r#"{{"bookId":5,"userId":"u1","username":"Ann","content":[{numbers}]}}"#);
    assert!(payload.len() > 400_000 && payload.len() < 1_000_000);
    // With an ack: the ack says why.
    ws_send_text(&mut ann, &format!(r#"422["chatMessage",{payload}]"#));
    let ack = next_ack(&mut ann, 2);
    assert_eq!(
        ack[0],
        json!({"ok": false, "error": {"code": "invalid_payload", "message": "content must be a string"}})
    );
    // Without one: the `exception` event.
    ws_send_text(&mut ann, &format!(r#"42["chatMessage",{payload}]"#));
    let exception = next_event(&mut ann, "exception");
    assert_eq!(
        exception[0],
        json!({"status": "error", "event": "chatMessage", "code": "invalid_payload",
               "message": "content must be a string"})
    );
    // The connection goes on: a message is stored and acknowledged.
    ws_send_text(
        &mut ann,
        r#"423["chatMessage",{"bookId":5,"userId":"u1","username":"Ann","content":"still here"}]"#,
    );
    let ack = next_ack(&mut ann, 3);
    assert_eq!(ack[0]["ok"], json!(true), "{ack:?}");
    assert_eq!(ack[0]["message"]["content"], json!("still here"));
}

// ---------------------------------------------------------------------------------------------
// Over a real socket: the conformance echo server (arbitrary JSON, as socket.io echoes it)
// ---------------------------------------------------------------------------------------------

#[test]
fn lone_surrogates_anywhere_in_a_packet_do_not_end_the_session() {
    let server = start_socketio(quiet);
    let mut ws = sio_conformance(&server);
    // In values and keys: echoed as U+FFFD (what socket.io's answer becomes once UTF-8).
    ws_send_text(&mut ws, r#"42["message","\ud83d",{"k\udc00":["\udbff"]}]"#);
    assert_eq!(
        ws_expect_text(&mut ws),
        "42[\"message-back\",\"\u{fffd}\",{\"k\u{fffd}\":[\"\u{fffd}\"]}]"
    );
    // In an event name: an event the app does not know, so no answer; the session goes on.
    ws_send_text(&mut ws, r#"42["mess\ud800age",1]"#);
    // In an ack's arguments (for an id the server never sent: ignored, as socket.io does).
    ws_send_text(&mut ws, r#"4312["\udfff"]"#);
    // In the arguments of an event the client wants acknowledged.
    ws_send_text(&mut ws, r#"425["message-with-ack","\ud83d\ude00\ud83d"]"#);
    assert_eq!(ws_expect_text(&mut ws), "435[\"\u{1f600}\u{fffd}\"]");
    // In a CONNECT's auth object.
    ws_send_text(&mut ws, r#"40/custom,{"token":"\ud83d"}"#);
    assert!(ws_expect_text(&mut ws).starts_with("40/custom,{\"sid\""));
    assert_eq!(
        ws_expect_text(&mut ws),
        "42/custom,[\"auth\",{\"token\":\"\u{fffd}\"}]"
    );
    ws_send_text(&mut ws, r#"42["message",1]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back",1]"#);
}

#[test]
fn numbers_beyond_f64_are_null_as_json_stringify_writes_them() {
    let server = start_socketio(quiet);
    let mut ws = sio_conformance(&server);
    let huge = "9".repeat(400);
    ws_send_text(
        &mut ws,
        &format!(r#"42["message",1e400,-1e400,[1E+309],{{"n":{huge}}},1e-400]"#),
    );
    let echoed = ws_expect_text(&mut ws);
    let data: Value =
        serde_json::from_str(echoed.strip_prefix("42").expect("an event")).expect("JSON");
    assert_eq!(
        data,
        json!(["message-back", null, null, [null], {"n": null}, 0.0])
    );
    ws_send_text(&mut ws, r#"42["message",2]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back",2]"#);
}

/// A client connected to `/` of the conformance server (its `auth` event read).
fn sio_conformance(server: &TestServer) -> Ws {
    let mut ws = sio(server);
    assert_eq!(ws_expect_text(&mut ws), r#"42["auth",{}]"#);
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    ws
}
