//! The book chat of docs/API.md on socketioxide: `joinRoom`, `chatMessage`, `leaveRoom` and
//! disconnect, with the same checks in the same order as readrealm-chat's `src/chat/mod.rs`
//! (payload → identity → membership → rate), acks, the `exception` event, and the history
//! (each room's 50 newest messages) in memory.
//!
//! socketioxide spawns a task per event for the handler's future; all the work here happens
//! before that, in the handler call itself, which socketioxide makes in the order the
//! connection's packets arrive. So one connection's requests are answered in order (the rate
//! limit's "first 20 ok, then rate_limited" holds), and a room's lock, held while a message is
//! numbered, kept and broadcast, gives every member one order of `newMessage`s.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;

use crate::validate;

/// History sent on join, and all that a room keeps.
pub const HISTORY_LEN: usize = 50;

/// The chat limits of docs/API.md, each configurable.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rooms: usize,
    pub message_rate: f64,
    pub message_burst: f64,
    pub max_content_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rooms: 100,
            message_rate: 10.0,
            message_burst: 20.0,
            max_content_chars: 4000,
        }
    }
}

/// A failed request: its docs/API.md code and a message naming what was wrong.
#[derive(Debug)]
pub struct ChatError {
    pub code: &'static str,
    pub message: String,
}

impl ChatError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ChatError {
        ChatError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ChatError {
        ChatError::new("invalid_payload", message)
    }
}

/// A message as docs/API.md shows it; field order as there.
#[derive(Debug, Serialize)]
struct Message {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "bookId")]
    book_id: u64,
    #[serde(rename = "userId")]
    user_id: String,
    username: String,
    content: String,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
}

#[derive(Default)]
struct Room {
    /// Milliseconds of the room's last `_id`: never go backwards within a room.
    last_ms: u64,
    /// Newest last, at most HISTORY_LEN.
    history: VecDeque<Arc<Message>>,
}

/// What the chat keeps per connection.
struct Reader {
    user_id: Option<String>,
    /// Books joined, with the username given at join (for `userLeft` on disconnect).
    rooms: HashMap<u64, String>,
    tokens: f64,
    updated: Option<Instant>,
}

/// The chat shared by every connection.
pub struct Chat {
    limits: Limits,
    rooms: Mutex<HashMap<u64, Arc<Mutex<Room>>>>,
    /// The low 6 bytes of every `_id`; one counter for the process, so ids are unique.
    counter: AtomicU64,
}

/// The ack id of the event, if the client asked for an answer (AckSender does not tell).
struct AckId(Option<i64>);

impl<A: Adapter> FromMessageParts<A> for AckId {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(AckId(*ack_id))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a broadcast future to completion now. socketioxide's local adapter answers at once
/// (`future::ready`), so the packets are queued before the caller goes on.
fn now<E>(future: impl Future<Output = Result<(), E>>) {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    if future.as_mut().poll(&mut cx).is_pending() {
        eprintln!("readrealm-baseline-socketioxide: a broadcast did not complete at once");
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (Howard Hinnant's days-to-civil algorithm).
fn iso8601(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

fn presence(username: &str) -> Value {
    json!({ "username": username, "timestamp": iso8601(now_millis()) })
}

fn room_name(book_id: u64) -> String {
    format!("book_{book_id}")
}

impl Chat {
    pub fn new(limits: Limits) -> Arc<Chat> {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Arc::new(Chat {
            limits,
            rooms: Mutex::default(),
            counter: AtomicU64::new(u64::from(seed)),
        })
    }

    fn room(&self, book_id: u64) -> Arc<Mutex<Room>> {
        lock(&self.rooms).entry(book_id).or_default().clone()
    }

    /// Registers the chat's handlers on a new connection.
    pub fn on_connect(self: &Arc<Self>, s: SocketRef) -> Ready<()> {
        let reader = Arc::new(Mutex::new(Reader {
            user_id: None,
            rooms: HashMap::new(),
            tokens: f64::INFINITY,
            updated: None,
        }));
        for event in ["joinRoom", "chatMessage", "leaveRoom"] {
            let chat = self.clone();
            let reader = reader.clone();
            s.on(
                event,
                move |s: SocketRef, AckId(ack_id): AckId, ack: AckSender, TryData(data): TryData<Value>| {
                    chat.request(event, &s, &reader, data.ok().as_ref(), ack_id.is_some(), ack);
                    ready(())
                },
            );
        }
        s.on_disconnect(move |s: SocketRef| {
            let rooms: Vec<(u64, String)> = lock(&reader).rooms.drain().collect();
            for (book_id, username) in rooms {
                now(s.to(room_name(book_id)).emit("userLeft", &presence(&username)));
            }
            ready(())
        });
        ready(())
    }

    /// One request: the answer goes through the ack if there is one, else errors as `exception`.
    fn request(
        &self,
        event: &str,
        s: &SocketRef,
        reader: &Mutex<Reader>,
        payload: Option<&Value>,
        has_ack: bool,
        ack: AckSender,
    ) {
        let mut reader = lock(reader);
        let result = match event {
            "joinRoom" => self.join(s, &mut reader, payload),
            "chatMessage" => self.post(s, &mut reader, payload),
            _ => self.leave(s, &mut reader, payload),
        };
        drop(reader);
        match result {
            Ok(answer) => {
                let _ = ack.send(&answer);
            }
            Err(e) if has_ack => {
                let _ = ack.send(&json!({ "ok": false, "error": { "code": e.code, "message": e.message } }));
            }
            Err(e) => {
                let _ = s.emit(
                    "exception",
                    &json!({ "status": "error", "event": event, "code": e.code, "message": e.message }),
                );
            }
        }
    }

    fn join(&self, s: &SocketRef, reader: &mut Reader, payload: Option<&Value>) -> Result<Value, ChatError> {
        let request = validate::join(payload)?;
        check_identity(reader, &request.user_id)?;
        let already_in = reader.rooms.contains_key(&request.book_id);
        if !already_in && reader.rooms.len() >= self.limits.max_rooms {
            return Err(ChatError::new(
                "too_many_rooms",
                format!("a connection may be in at most {} rooms", self.limits.max_rooms),
            ));
        }
        reader.user_id.get_or_insert_with(|| request.user_id.clone());
        let name = room_name(request.book_id);
        {
            // Under the room's lock: every message is either in this history or a newMessage.
            let room = self.room(request.book_id);
            let room = lock(&room);
            if !already_in {
                s.join(name.clone());
                reader.rooms.insert(request.book_id, request.username.clone());
            }
            let previous: Vec<&Message> = room.history.iter().rev().map(|m| &**m).collect();
            let _ = s.emit("previousMessages", &previous);
        }
        if !already_in {
            now(s
                .to(name.clone())
                .emit("userJoined", &presence(&request.username)));
        }
        Ok(json!({ "ok": true, "room": name }))
    }

    fn post(&self, s: &SocketRef, reader: &mut Reader, payload: Option<&Value>) -> Result<Value, ChatError> {
        let request = validate::message(payload, self.limits.max_content_chars)?;
        check_identity(reader, &request.user_id)?;
        if !reader.rooms.contains_key(&request.book_id) {
            return Err(ChatError::new(
                "not_in_room",
                format!("join book {} before posting to it", request.book_id),
            ));
        }
        if !take_token(reader, self.limits.message_rate, self.limits.message_burst) {
            return Err(ChatError::new(
                "rate_limited",
                format!(
                    "at most {} messages per second, bursts of {}",
                    self.limits.message_rate, self.limits.message_burst
                ),
            ));
        }
        let room = self.room(request.book_id);
        let mut room = lock(&room);
        let ms = now_millis().max(room.last_ms);
        room.last_ms = ms;
        let counter = self.counter.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
        let at = iso8601(ms);
        let message = Arc::new(Message {
            id: format!("{ms:012x}{counter:012x}"),
            book_id: request.book_id,
            user_id: request.user_id,
            username: request.username,
            content: request.content,
            created_at: at.clone(),
            updated_at: at,
        });
        room.history.push_back(message.clone());
        if room.history.len() > HISTORY_LEN {
            room.history.pop_front();
        }
        now(s.within(room_name(request.book_id)).emit("newMessage", &*message));
        drop(room);
        Ok(json!({ "ok": true, "message": &*message }))
    }

    fn leave(&self, s: &SocketRef, reader: &mut Reader, payload: Option<&Value>) -> Result<Value, ChatError> {
        let request = validate::leave(payload)?;
        if let Some(user_id) = &request.user_id {
            check_identity(reader, user_id)?;
        }
        if reader.rooms.remove(&request.book_id).is_some() {
            let name = room_name(request.book_id);
            s.leave(name.clone());
            now(s.to(name).emit("userLeft", &presence(&request.username)));
        }
        Ok(json!({ "ok": true }))
    }
}

fn check_identity(reader: &Reader, user_id: &str) -> Result<(), ChatError> {
    match &reader.user_id {
        Some(bound) if bound != user_id => Err(ChatError::new(
            "identity_mismatch",
            "userId differs from the one this connection joined with",
        )),
        _ => Ok(()),
    }
}

/// Token bucket: starts full, refills at `rate` per second, never above `burst`.
fn take_token(reader: &mut Reader, rate: f64, burst: f64) -> bool {
    let now = Instant::now();
    let elapsed = reader
        .updated
        .map_or(0.0, |then| now.saturating_duration_since(then).as_secs_f64());
    reader.tokens = (reader.tokens.min(burst) + elapsed * rate).min(burst);
    reader.updated = Some(now);
    if reader.tokens >= 1.0 {
        reader.tokens -= 1.0;
        true
    } else {
        false
    }
}
