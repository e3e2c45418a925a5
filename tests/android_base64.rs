//! Binary packets as engine.io-client-java (the Android client) sends them over HTTP
//! long-polling: `b` + base64 written with Android's `Base64.DEFAULT`, which puts a line feed
//! after every 76 characters and one at the end (ISSUE 10, item 2). Node's engine.io decodes
//! those; so must we. Over real sockets against the in-process server: a binary event, a
//! binary event the server acknowledges with binary, and a binary ack the client sends, each
//! with its attachment in Android's encoding; and a record Node could read only by dropping
//! characters is still refused.

mod support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
use serde_json::{json, Value};
use support::*;

/// `bytes` as `android.util.Base64.encodeToString(bytes, Base64.DEFAULT)` writes them: padded
/// standard base64, a `\n` after each 76 characters and at the end.
fn android_base64(bytes: &[u8]) -> String {
    let flat = STANDARD.encode(bytes);
    let mut out = String::new();
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out
}

/// 200 bytes, every value once and then some: the encoding spans three lines.
fn attachment() -> Vec<u8> {
    (0..200u32).map(|i| (i * 7 % 256) as u8).collect()
}

fn json_after(packet: &str, prefix: &str) -> Value {
    let rest = packet
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{packet:?} does not start with {prefix:?}"));
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{packet:?}: bad JSON ({e})"))
}

/// The bytes of a `b` record the server sent (it writes plain padded base64).
fn record_bytes(record: &str) -> Vec<u8> {
    let b64 = record
        .strip_prefix('b')
        .unwrap_or_else(|| panic!("{record:?} is not a binary record"));
    STANDARD
        .decode(b64)
        .expect("the server writes standard base64")
}

/// A polling session connected to `/` (the CONNECT answer and the `auth` event consumed).
fn connected_polling(server: &TestServer) -> String {
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    server.get_n_skipping_pings(&sid, 2);
    sid
}

#[test]
fn android_encoding_is_three_lines_each_ending_in_a_line_feed() {
    // The fixture itself: 200 bytes are 268 characters, so 76 + 76 + 76 + 40, four line feeds.
    let text = android_base64(&attachment());
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(
        lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
        [76, 76, 76, 40]
    );
}

#[test]
fn binary_event_with_android_base64_is_decoded_and_echoed() {
    let server = start_socketio(quiet);
    let sid = connected_polling(&server);
    let body = format!(
        "451-[\"message\",{{\"_placeholder\":true,\"num\":0}}]\x1eb{}",
        android_base64(&attachment())
    );
    server.post_ok(&sid, &body);
    let packets = server.get_n_skipping_pings(&sid, 2);
    assert_eq!(
        json_after(&packets[0], "451-"),
        json!(["message-back", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(record_bytes(&packets[1]), attachment());
}

#[test]
fn binary_event_acknowledged_with_binary_keeps_the_android_attachment() {
    let server = start_socketio(quiet);
    let sid = connected_polling(&server);
    // Two attachments, each in its own POST as the Java client may send them.
    let second: Vec<u8> = vec![0xff, 0x00, 0xfe];
    server.post_ok(
        &sid,
        r#"452-9["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    server.post_ok(&sid, &format!("b{}", android_base64(&attachment())));
    server.post_ok(&sid, &format!("b{}", android_base64(&second)));
    let packets = server.get_n_skipping_pings(&sid, 3);
    assert_eq!(
        json_after(&packets[0], "462-9"),
        json!([{"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 1}])
    );
    assert_eq!(record_bytes(&packets[1]), attachment());
    assert_eq!(record_bytes(&packets[2]), second);
}

/// `ask` makes the server emit `question` with an ack id; the client's ack comes back to it
/// as `answer` with the ack id and the ack's arguments.
struct AskHandler;

impl Handler for AskHandler {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, _socket: &mut Socket<'_, ()>, _auth: &Value) -> Result<(), Refusal> {
        Ok(())
    }

    fn on_event(&self, socket: &mut Socket<'_, ()>, event: Event) {
        if event.name() == Some("ask") {
            socket.emit_with_ack("question", vec![json!("?")]);
        }
    }

    fn on_ack(&self, socket: &mut Socket<'_, ()>, ack_id: u64, data: Value) {
        socket.emit("answer", vec![json!(ack_id), data]);
    }
}

#[test]
fn binary_ack_from_the_client_with_android_base64_is_accepted() {
    let server = start_server(AskHandler, |c| {
        quiet(c);
        c.path = "/socket.io/".into();
    });
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    let connected = server.get_n_skipping_pings(&sid, 1);
    assert!(connected[0].starts_with("40{"), "{connected:?}");
    server.post_ok(&sid, r#"42["ask"]"#);
    let question = server.get_n_skipping_pings(&sid, 1);
    // `42<id>["question","?"]`: the id is the server's to choose; read it.
    let rest = question[0]
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("{question:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let id: u64 = digits.parse().unwrap_or_else(|_| panic!("{question:?}"));
    assert_eq!(json_after(rest, &digits), json!(["question", "?"]));

    let body = format!(
        "461-{id}[{{\"_placeholder\":true,\"num\":0}}]\x1eb{}",
        android_base64(&attachment())
    );
    server.post_ok(&sid, &body);
    let answer = server.get_n_skipping_pings(&sid, 1);
    assert_eq!(
        json_after(&answer[0], "42"),
        json!(["answer", id, [{"_placeholder": true, "num": 0}]])
    );
}

#[test]
fn a_record_node_reads_only_by_dropping_characters_is_still_refused() {
    let server = start_socketio(quiet);
    let sid = connected_polling(&server);
    server.post_ok(&sid, r#"451-["message",{"_placeholder":true,"num":0}]"#);
    // `!` is no base64 character: Node would skip it and hand over other bytes than sent.
    let response = server.post(&sid, b"bAQ!ID\n");
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.text(), r#"{"code":3,"message":"Bad request"}"#);
    // The session ended, as for any undecodable body.
    assert_eq!(server.get(&sid).status, 400);
}
