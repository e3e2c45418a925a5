//! The chat contract's core (docs/API.md: joinRoom, previousMessages, userJoined, chatMessage
//! with its ack, newMessage, invalid_payload) through the `rust_socketio` 0.6 client, an
//! implementation of Socket.IO written independently of socket.io's own, against the real
//! `readrealm-chat` binary (from `READREALM_BIN_DIR`), on each of its transports: polling only,
//! WebSocket only, and polling upgraded to WebSocket.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use rust_socketio::{ClientBuilder, Payload, RawClient, TransportType};
use serde_json::{json, Value};

/// Longest wait for one answer or event.
const WAIT: Duration = Duration::from_secs(5);

/// `readrealm-chat` on a fresh data directory and a free port; killed and removed on drop.
struct Server {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Server {
    fn start(tag: &str) -> Server {
        let bin_dir = std::env::var("READREALM_BIN_DIR")
            .expect("READREALM_BIN_DIR names the directory holding readrealm-chat");
        let data_dir = std::env::temp_dir().join(format!(
            "readrealm-rust-client-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut child = Command::new(PathBuf::from(bin_dir).join("readrealm-chat"))
            .args(["--listen", "127.0.0.1:0", "--shards", "2", "--data-dir"])
            .arg(&data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start readrealm-chat");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            url: format!("http://{addr}"),
            data_dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A connected client and the events it received, `(name, first argument)`, in order.
struct Reader {
    client: rust_socketio::client::Client,
    events: Receiver<(String, Value)>,
}

fn first_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        other => panic!("expected a JSON argument, got {other:?}"),
    }
}

fn connect(server: &Server, transport: TransportType) -> Reader {
    let (tx, events) = channel();
    let mut builder = ClientBuilder::new(server.url.as_str()).transport_type(transport);
    for name in ["previousMessages", "newMessage", "userJoined", "exception"] {
        let tx = Mutex::new(tx.clone());
        builder = builder.on(name, move |payload: Payload, _: RawClient| {
            let _ = tx
                .lock()
                .expect("sender")
                .send((name.to_owned(), first_value(payload)));
        });
    }
    let client = builder.connect().expect("rust_socketio connects");
    Reader { client, events }
}

impl Reader {
    /// Emit `event` with `data` and wait for the server's acknowledgement; its first value.
    fn call(&self, event: &str, data: Value) -> Value {
        let (tx, rx): (Sender<Value>, Receiver<Value>) = channel();
        let tx = Mutex::new(tx);
        self.client
            .emit_with_ack(event, data, WAIT, move |payload: Payload, _: RawClient| {
                // rust_socketio 0.6 hands an ack's argument list over as one JSON array.
                let first = match first_value(payload) {
                    Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                    other => panic!("expected the ack's argument list, got {other}"),
                };
                let _ = tx.lock().expect("sender").send(first);
            })
            .expect("emit");
        rx.recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no acknowledgement of {event} within {WAIT:?}"))
    }

    /// The next event named `name` (others before it are skipped).
    fn expect(&self, name: &str) -> Value {
        loop {
            let (got, value) = self
                .events
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no {name} within {WAIT:?}"));
            if got == name {
                return value;
            }
        }
    }
}

fn chat(transport: TransportType, tag: &str) {
    let server = Server::start(tag);
    let book = 2701;
    let alice = connect(&server, transport.clone());
    let ack = alice.call(
        "joinRoom",
        json!({ "bookId": book, "userId": "u-alice", "username": "Alice" }),
    );
    let alice_member = json!({ "userId": "u-alice", "username": "Alice" });
    assert_eq!(
        ack,
        json!({ "ok": true, "room": "book_2701", "members": [alice_member], "memberCount": 1 })
    );
    assert_eq!(alice.expect("previousMessages"), json!([]));

    let bob = connect(&server, transport.clone());
    let ack = bob.call(
        "joinRoom",
        json!({ "bookId": "2701", "userId": "u-bob", "username": "Bob" }),
    );
    // The joiner is listed first (docs/API.md, "Who is here").
    let bob_member = json!({ "userId": "u-bob", "username": "Bob" });
    assert_eq!(
        ack,
        json!({ "ok": true, "room": "book_2701", "members": [bob_member, alice_member], "memberCount": 2 })
    );
    assert_eq!(alice.expect("userJoined")["username"], "Bob");

    let ack = bob.call(
        "chatMessage",
        json!({ "bookId": book, "userId": "u-bob", "username": "Bob", "content": "  Call me Ishmael.  " }),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    let message = &ack["message"];
    assert_eq!(message["content"], "Call me Ishmael.", "trimmed");
    assert_eq!(message["bookId"], book);
    assert_eq!(message["userId"], "u-bob");
    assert_eq!(message["username"], "Bob");
    let delivered = alice.expect("newMessage");
    assert_eq!(delivered["content"], "Call me Ishmael.");
    assert_eq!(
        delivered["_id"], message["_id"],
        "the same message as acked"
    );
    assert_eq!(bob.expect("newMessage")["content"], "Call me Ishmael.");

    // An error is answered through the ack and the connection stays.
    let ack = bob.call("chatMessage", json!("not an object"));
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["error"]["code"], "invalid_payload", "{ack}");
    let ack = bob.call(
        "chatMessage",
        json!({ "bookId": book, "userId": "u-bob", "username": "Bob", "content": "still here" }),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(alice.expect("newMessage")["content"], "still here");

    // A third reader gets both messages as history, newest first.
    let carol = connect(&server, transport);
    carol.call(
        "joinRoom",
        json!({ "bookId": book, "userId": "u-carol", "username": "Carol" }),
    );
    let history = carol.expect("previousMessages");
    let contents: Vec<&str> = history
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, ["still here", "Call me Ishmael."]);

    for reader in [alice, bob, carol] {
        let _ = reader.client.disconnect();
    }
}

#[test]
fn chat_over_polling() {
    chat(TransportType::Polling, "polling");
}

#[test]
fn chat_over_websocket() {
    chat(TransportType::Websocket, "websocket");
}

#[test]
fn chat_over_polling_upgraded_to_websocket() {
    chat(TransportType::WebsocketUpgrade, "upgrade");
}
