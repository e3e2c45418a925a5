//! Socket.IO v5 packets: the codec, nothing else.
//!
//! Owns the wire format of one Socket.IO packet as it travels inside an Engine.IO message
//! (`<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`) and the payload rules a
//! packet must obey to be accepted (socket.io-parser 4.x `decodeString` and `isPayloadValid`).
//! It never touches a socket, a clock, a session or a namespace table: it turns text into a
//! [`Packet`] or a typed [`PacketError`], and a [`Packet`] back into text, so unit tests and
//! the fuzz target drive it directly.
//!
//! It does not collect binary attachments; that is [`super::binary`]'s job, because the
//! attachments arrive as later Engine.IO messages. Nothing reachable from peer input panics:
//! every violation is a named error, and the caller closes the connection on any of them.
//!
//! Where socket.io-parser is lax in ways no client relies on, this codec is stricter (an
//! EVENT, ACK or CONNECT_ERROR without data, an empty attachment count, an ack id that does
//! not fit in a `u64`), because a packet that means nothing should end the session rather
//! than reach a handler.

use crate::engineio::violation::SocketIoRule;
use bytes::Bytes;
use serde_json::Value;

use super::event_json::{self, EventHead, EventName};
use super::json_limits::{self, JsonLimitError};
use super::json_text;

/// Event names a client may not emit: they have a meaning of their own on the server
/// (socket.io's `RESERVED_EVENTS`).
pub const RESERVED_EVENT_NAMES: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The namespace a packet belongs to when the wire leaves it out.
pub const DEFAULT_NAMESPACE: &str = "/";

/// The seven Socket.IO packet types, numbered as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

impl PacketKind {
    /// The kind named by a type digit, if any.
    pub fn from_digit(byte: u8) -> Option<PacketKind> {
        Some(match byte {
            b'0' => PacketKind::Connect,
            b'1' => PacketKind::Disconnect,
            b'2' => PacketKind::Event,
            b'3' => PacketKind::Ack,
            b'4' => PacketKind::ConnectError,
            b'5' => PacketKind::BinaryEvent,
            b'6' => PacketKind::BinaryAck,
            _ => return None,
        })
    }

    /// The type digit written on the wire.
    pub fn digit(self) -> u8 {
        b'0' + self as u8
    }

    /// Whether the wire form carries an attachment count (`5` and `6`).
    pub fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }

    /// Whether this is an event, with or without attachments.
    pub fn is_event(self) -> bool {
        matches!(self, PacketKind::Event | PacketKind::BinaryEvent)
    }

    /// Whether this is an acknowledgement, with or without attachments.
    pub fn is_ack(self) -> bool {
        matches!(self, PacketKind::Ack | PacketKind::BinaryAck)
    }
}

/// A decoded or to-be-encoded Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: PacketKind,
    /// The namespace; `"/"` when absent on the wire.
    pub nsp: String,
    /// The ack id.
    pub id: Option<u64>,
    /// The JSON data. Binary values appear as `{"_placeholder":true,"num":i}`. `None` when
    /// there is none, or when the data is kept as text in [`Packet::json`].
    pub data: Option<Value>,
    /// The data as JSON text, not parsed into a tree: set by [`decode_deferred`] for an
    /// EVENT without attachments (checked for syntax, shape, name and depth, with lone
    /// surrogates and out-of-range numbers rewritten by [`json_text::normalize`]), and by
    /// [`Packet::event_json`] / [`Packet::ack_json`] for text the application encoded. The
    /// encoder writes it when `data` is `None`.
    pub json: Option<Box<str>>,
    /// Binary attachments, in order. For `BinaryEvent`/`BinaryAck` its length equals the
    /// attachment count once the packet is complete; other kinds that go on the wire ignore
    /// it, except `Event`/`Ack`, which are written as their binary forms when it is non-empty.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// `0[nsp,][data]`: a client's connection request (data is its auth object) or the
    /// server's answer (data is `{"sid": ...}`).
    pub fn connect(nsp: &str, data: Option<Value>) -> Packet {
        Packet::new(PacketKind::Connect, nsp, None, data, Vec::new())
    }

    /// `1[nsp,]`: leave a namespace.
    pub fn disconnect(nsp: &str) -> Packet {
        Packet::new(PacketKind::Disconnect, nsp, None, None, Vec::new())
    }

    /// An event. `data` is the whole array, event name first. With attachments the kind is
    /// [`PacketKind::BinaryEvent`], the kind it decodes as, so `decode(encode(p)) == p`.
    pub fn event(nsp: &str, data: Value, id: Option<u64>, attachments: Vec<Bytes>) -> Packet {
        let kind = if attachments.is_empty() {
            PacketKind::Event
        } else {
            PacketKind::BinaryEvent
        };
        Packet::new(kind, nsp, id, Some(data), attachments)
    }

    /// An acknowledgement of the event with ack id `id`; `data` is the array of values. With
    /// attachments the kind is [`PacketKind::BinaryAck`].
    pub fn ack(nsp: &str, id: u64, data: Value, attachments: Vec<Bytes>) -> Packet {
        let kind = if attachments.is_empty() {
            PacketKind::Ack
        } else {
            PacketKind::BinaryAck
        };
        Packet::new(kind, nsp, Some(id), Some(data), attachments)
    }

    /// An event whose data array is JSON text the application already encoded (event name
    /// first), written as is: e.g. a message serialised once and sent to many. The text is
    /// not checked here; the caller vouches that it is one JSON array (serde_json's output).
    pub fn event_json(nsp: &str, json: Box<str>, id: Option<u64>) -> Packet {
        Packet::new_json(PacketKind::Event, nsp, id, json)
    }

    /// An acknowledgement of the event with ack id `id` whose data array (the values) is JSON
    /// text the application already encoded; see [`Packet::event_json`].
    pub fn ack_json(nsp: &str, id: u64, json: Box<str>) -> Packet {
        Packet::new_json(PacketKind::Ack, nsp, Some(id), json)
    }

    fn new_json(kind: PacketKind, nsp: &str, id: Option<u64>, json: Box<str>) -> Packet {
        debug_assert!(json.starts_with('[') && json.ends_with(']'));
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            data: None,
            json: Some(json),
            attachments: Vec::new(),
        }
    }

    /// `4[nsp,]{"message":...[,"data":...]}`: a refused connection.
    pub fn connect_error(nsp: &str, message: &str, data: Option<Value>) -> Packet {
        let mut body = serde_json::Map::new();
        body.insert("message".to_owned(), Value::String(message.to_owned()));
        if let Some(data) = data {
            body.insert("data".to_owned(), data);
        }
        Packet::new(
            PacketKind::ConnectError,
            nsp,
            None,
            Some(Value::Object(body)),
            Vec::new(),
        )
    }

    fn new(
        kind: PacketKind,
        nsp: &str,
        id: Option<u64>,
        data: Option<Value>,
        attachments: Vec<Bytes>,
    ) -> Packet {
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            data,
            json: None,
            attachments,
        }
    }

    /// The event name: the first element of an event's data array, when it is a string.
    /// `None` for other kinds and for events named by a number.
    pub fn event_name(&self) -> Option<std::borrow::Cow<'_, str>> {
        if !self.kind.is_event() {
            return None;
        }
        match (&self.data, &self.json) {
            (Some(Value::Array(items)), _) => items.first().and_then(Value::as_str).map(Into::into),
            (None, Some(json)) => event_json::event_name(json).map(Into::into),
            _ => None,
        }
    }
}

/// Why a Socket.IO packet was refused. Every one of them ends the client's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// An Engine.IO message with no Socket.IO text at all.
    Empty,
    /// The first byte is not a type digit `0`–`6`; the byte as received.
    UnknownType(u8),
    /// A binary packet whose attachment count is missing, not decimal, or not ended by `-`.
    BadAttachmentCount,
    /// A binary packet announcing more attachments than [`Limits::max_attachments`].
    TooManyAttachments,
    /// An ack id too large for a `u64`.
    BadAckId,
    /// The data is not one JSON value (including trailing garbage and nesting too deep).
    InvalidJson,
    /// The data nests deeper than [`Limits::max_json_depth`].
    JsonTooDeep,
    /// The data holds more values than [`Limits::max_json_elements`].
    JsonTooManyElements,
    /// CONNECT data that is not an object.
    ConnectDataNotObject,
    /// DISCONNECT with data.
    DisconnectHasData,
    /// EVENT data that is missing or not an array.
    EventDataNotArray,
    /// EVENT data whose first element (the name) is missing or neither a string nor a number.
    EventNameInvalid,
    /// EVENT named by one of [`RESERVED_EVENT_NAMES`].
    ReservedEventName,
    /// ACK data that is missing or not an array.
    AckDataNotArray,
    /// CONNECT_ERROR data that is missing or neither a string nor an object.
    ConnectErrorDataInvalid,
    /// A binary packet whose data holds a placeholder (`"_placeholder":true`) whose `num` is
    /// not an index below the attachment count.
    BadPlaceholder,
    /// A text message arrived while a binary packet still awaited attachments.
    UnexpectedText,
    /// A binary message arrived while no packet awaited attachments.
    UnexpectedAttachment,
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "empty Socket.IO packet"),
            Self::UnknownType(b) => write!(f, "unknown Socket.IO packet type byte 0x{b:02x}"),
            Self::BadAttachmentCount => write!(f, "malformed attachment count"),
            Self::TooManyAttachments => write!(f, "too many attachments"),
            Self::BadAckId => write!(f, "ack id out of range"),
            Self::InvalidJson => write!(f, "packet data is not valid JSON"),
            Self::JsonTooDeep => write!(f, "packet data nests too deep"),
            Self::JsonTooManyElements => write!(f, "packet data holds too many values"),
            Self::ConnectDataNotObject => write!(f, "CONNECT data is not an object"),
            Self::DisconnectHasData => write!(f, "DISCONNECT carries data"),
            Self::EventDataNotArray => write!(f, "EVENT data is not an array"),
            Self::EventNameInvalid => write!(f, "EVENT name is neither a string nor a number"),
            Self::ReservedEventName => write!(f, "EVENT uses a reserved name"),
            Self::AckDataNotArray => write!(f, "ACK data is not an array"),
            Self::ConnectErrorDataInvalid => {
                write!(f, "CONNECT_ERROR data is neither a string nor an object")
            }
            Self::BadPlaceholder => write!(f, "attachment placeholder out of range"),
            Self::UnexpectedText => write!(f, "text packet while awaiting attachments"),
            Self::UnexpectedAttachment => write!(f, "attachment while no packet awaits one"),
        }
    }
}

impl std::error::Error for PacketError {}

impl PacketError {
    /// The rule this error names, for the metrics and logs.
    pub fn rule(&self) -> SocketIoRule {
        match self {
            Self::Empty => SocketIoRule::EmptyPacket,
            Self::UnknownType(_) => SocketIoRule::UnknownType,
            Self::BadAttachmentCount => SocketIoRule::BadAttachmentCount,
            Self::TooManyAttachments => SocketIoRule::TooManyAttachments,
            Self::BadAckId => SocketIoRule::BadAckId,
            Self::InvalidJson => SocketIoRule::InvalidJson,
            Self::JsonTooDeep => SocketIoRule::JsonTooDeep,
            Self::JsonTooManyElements => SocketIoRule::JsonTooManyElements,
            Self::ConnectDataNotObject => SocketIoRule::ConnectDataNotObject,
            Self::DisconnectHasData => SocketIoRule::DisconnectHasData,
            Self::EventDataNotArray => SocketIoRule::EventDataNotArray,
            Self::EventNameInvalid => SocketIoRule::EventNameInvalid,
            Self::ReservedEventName => SocketIoRule::ReservedEventName,
            Self::AckDataNotArray => SocketIoRule::AckDataNotArray,
            Self::ConnectErrorDataInvalid => SocketIoRule::ConnectErrorDataInvalid,
            Self::BadPlaceholder => SocketIoRule::BadPlaceholder,
            Self::UnexpectedText => SocketIoRule::UnexpectedText,
            Self::UnexpectedAttachment => SocketIoRule::UnexpectedAttachment,
        }
    }
}

/// Limits the decoder enforces on peer input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most attachments one binary packet may announce. Each attachment is a whole
    /// Engine.IO message (already capped by maxPayload), held until the last one arrives, so
    /// this count times maxPayload bounds what one half-received packet can pin in memory.
    pub max_attachments: usize,
    /// Deepest JSON nesting in a packet's data (every packet; serde_json follows at most
    /// [`Limits::SERDE_MAX_DEPTH`] levels into a tree, so a larger value acts as that for the
    /// packets decoded into one).
    pub max_json_depth: usize,
    /// Most JSON values in a packet's data, for the packets decoded into a tree (see
    /// [`super::json_limits`]): CONNECT, ACK, CONNECT_ERROR and packets with attachments. An
    /// EVENT without attachments is never decoded into a tree by [`decode_deferred`], so it
    /// is not counted: its size is bounded by maxPayload alone.
    pub max_json_elements: usize,
}

impl Limits {
    /// The default cap on attachments per packet: ten is far more than a chat client sends
    /// with one message (an image or a file or two), and keeps a stalled binary packet's
    /// memory to a small multiple of maxPayload. The server's configuration may override it.
    pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;
    /// The deepest nesting serde_json decodes into a tree (its recursion limit): what
    /// socket.io would parse below it, this server parses too.
    pub const SERDE_MAX_DEPTH: usize = 127;
    /// serde_json's own limit: a packet within it is never closed for its depth.
    pub const DEFAULT_MAX_JSON_DEPTH: usize = Self::SERDE_MAX_DEPTH;
    /// Ten thousand values: a few hundred kB of `serde_json::Value`s at most.
    pub const DEFAULT_MAX_JSON_ELEMENTS: usize = 10_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attachments: Self::DEFAULT_MAX_ATTACHMENTS,
            max_json_depth: Self::DEFAULT_MAX_JSON_DEPTH,
            max_json_elements: Self::DEFAULT_MAX_JSON_ELEMENTS,
        }
    }
}

/// Decode one Socket.IO packet from the text of an Engine.IO message (without the Engine.IO
/// `4`), its data decoded into a [`Value`] tree.
///
/// Returns the packet and the number of attachments that must follow it. For
/// `BinaryEvent`/`BinaryAck` the packet's `attachments` is empty and the count is what the
/// packet announced (possibly 0); for every other kind the count is 0.
///
/// The data text is first rewritten by [`json_text::normalize`] (lone surrogate escapes
/// become U+FFFD, numbers beyond `f64` become `null`), so what `JSON.parse` accepts is
/// accepted here too.
pub fn decode(text: &str, limits: &Limits) -> Result<(Packet, usize), PacketError> {
    decode_with(text, limits, false)
}

/// [`decode`], except that an EVENT without attachments keeps its data as text in
/// [`Packet::json`]: read once for its syntax, shape and name, its depth checked, but no
/// tree built and its values not counted against [`Limits::max_json_elements`]. This is the
/// server's path: an application decodes the arguments it wants into typed values (see
/// [`super::handler::Event`]), and an argument of the wrong type is refused there, with an
/// answer, not here with a close.
pub fn decode_deferred(text: &str, limits: &Limits) -> Result<(Packet, usize), PacketError> {
    decode_with(text, limits, true)
}

fn decode_with(
    text: &str,
    limits: &Limits,
    defer_events: bool,
) -> Result<(Packet, usize), PacketError> {
    let first = *text.as_bytes().first().ok_or(PacketError::Empty)?;
    let kind = PacketKind::from_digit(first).ok_or(PacketError::UnknownType(first))?;
    // The type digit is ASCII, so index 1 is a char boundary.
    let mut rest = text.get(1..).unwrap_or_default();

    let mut count = 0;
    if kind.is_binary() {
        let (digits, after) = split_digits(rest);
        rest = after
            .strip_prefix('-')
            .filter(|_| !digits.is_empty())
            .ok_or(PacketError::BadAttachmentCount)?;
        count = parse_decimal(digits)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= limits.max_attachments)
            .ok_or(PacketError::TooManyAttachments)?;
    }

    let mut nsp = DEFAULT_NAMESPACE;
    if rest.starts_with('/') {
        // A namespace runs to the first comma, or to the end (`41/custom` is valid).
        (nsp, rest) = rest.split_once(',').unwrap_or((rest, ""));
    }

    let (digits, after) = split_digits(rest);
    let id = if digits.is_empty() {
        None
    } else {
        Some(parse_decimal(digits).ok_or(PacketError::BadAckId)?)
    };
    rest = after;

    let mut packet = Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        data: None,
        json: None,
        attachments: Vec::new(),
    };
    if rest.is_empty() {
        validate(kind, None)?;
        return Ok((packet, count));
    }
    if defer_events && kind == PacketKind::Event {
        // One pass rewrites and checks the depth; the values are not counted.
        let rest = json_text::normalize_within(rest, limits.max_json_depth)
            .map_err(|_| PacketError::JsonTooDeep)?;
        let head = EventHead::read(&rest).map_err(|_| PacketError::InvalidJson)?;
        validate_event_head(&head)?;
        packet.json = Some(rest.into());
        return Ok((packet, count));
    }
    let rest = json_text::normalize(rest);
    check_limits(&rest, limits.max_json_depth, limits.max_json_elements)?;
    let data = serde_json::from_str::<Value>(&rest).map_err(|_| PacketError::InvalidJson)?;
    validate(kind, Some(&data))?;
    packet.data = Some(data);
    Ok((packet, count))
}

fn check_limits(text: &str, max_depth: usize, max_elements: usize) -> Result<(), PacketError> {
    json_limits::check(text, max_depth, max_elements).map_err(|e| match e {
        JsonLimitError::TooDeep => PacketError::JsonTooDeep,
        JsonLimitError::TooManyElements => PacketError::JsonTooManyElements,
    })
}

/// [`validate`]'s EVENT rules, on a head read without a tree.
fn validate_event_head(head: &EventHead<'_>) -> Result<(), PacketError> {
    match head {
        EventHead::NotArray => Err(PacketError::EventDataNotArray),
        EventHead::Array(EventName::Number) => Ok(()),
        EventHead::Array(EventName::Str(name)) if RESERVED_EVENT_NAMES.contains(&&**name) => {
            Err(PacketError::ReservedEventName)
        }
        EventHead::Array(EventName::Str(_)) => Ok(()),
        EventHead::Array(EventName::Other | EventName::Missing) => {
            Err(PacketError::EventNameInvalid)
        }
    }
}

/// The payload rules of socket.io-parser's `isPayloadValid`, tightened so that an EVENT, ACK
/// or CONNECT_ERROR must carry data.
fn validate(kind: PacketKind, data: Option<&Value>) -> Result<(), PacketError> {
    match kind {
        PacketKind::Connect => match data {
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err(PacketError::ConnectDataNotObject),
        },
        PacketKind::Disconnect => match data {
            None => Ok(()),
            Some(_) => Err(PacketError::DisconnectHasData),
        },
        PacketKind::Event | PacketKind::BinaryEvent => match data {
            Some(Value::Array(items)) => match items.first() {
                Some(Value::Number(_)) => Ok(()),
                Some(Value::String(name)) if RESERVED_EVENT_NAMES.contains(&name.as_str()) => {
                    Err(PacketError::ReservedEventName)
                }
                Some(Value::String(_)) => Ok(()),
                _ => Err(PacketError::EventNameInvalid),
            },
            _ => Err(PacketError::EventDataNotArray),
        },
        PacketKind::Ack | PacketKind::BinaryAck => match data {
            Some(Value::Array(_)) => Ok(()),
            _ => Err(PacketError::AckDataNotArray),
        },
        PacketKind::ConnectError => match data {
            Some(Value::String(_) | Value::Object(_)) => Ok(()),
            _ => Err(PacketError::ConnectErrorDataInvalid),
        },
    }
}

/// Split off the leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    // ASCII digits are one byte each, so `n` is a char boundary and this never falls back.
    s.split_at_checked(n).unwrap_or(("", s))
}

/// A run of ASCII digits as a number; `None` when it does not fit in a `u64`.
fn parse_decimal(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |n, d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

/// Encode `packet` as Socket.IO text (not the Engine.IO `4`), appended to `out`.
///
/// The wire type follows from the packet: `Event`/`Ack` with attachments are written as
/// `5`/`6` with `N-`; `BinaryEvent`/`BinaryAck` always carry `N-` (N may be 0). The
/// attachments themselves are not written: the caller sends them as the next N binary
/// Engine.IO messages, right after this one.
pub fn encode_into(packet: &Packet, out: &mut Vec<u8>) {
    let kind = match packet.kind {
        PacketKind::Event if !packet.attachments.is_empty() => PacketKind::BinaryEvent,
        PacketKind::Ack if !packet.attachments.is_empty() => PacketKind::BinaryAck,
        kind => kind,
    };
    out.push(kind.digit());
    if kind.is_binary() {
        push_decimal(out, packet.attachments.len() as u64);
        out.push(b'-');
    }
    if !packet.nsp.is_empty() && packet.nsp != DEFAULT_NAMESPACE {
        out.extend_from_slice(packet.nsp.as_bytes());
        out.push(b',');
    }
    if let Some(id) = packet.id {
        push_decimal(out, id);
    }
    if let Some(data) = &packet.data {
        // Writing a `Value` into a `Vec` cannot fail: the writer is infallible and a
        // `Value`'s object keys are always strings.
        let _ = serde_json::to_writer(&mut *out, data);
    } else if let Some(json) = &packet.json {
        out.extend_from_slice(json.as_bytes());
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut len = 0;
    for slot in buf.iter_mut().rev() {
        // `n % 10` is below 10, so the cast is exact.
        *slot = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(buf.len() - len..).unwrap_or_default());
}

/// The round-trip check (fuzz target `sio_packet`), shared by the fuzz target, `tests/fuzz_regressions.rs`
/// and the unit tests below.
#[cfg(any(test, feature = "checks"))]
#[doc(hidden)]
pub mod checks;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits::default()
    }

    fn dec(text: &str) -> Result<(Packet, usize), PacketError> {
        decode(text, &limits())
    }

    fn enc(packet: &Packet) -> String {
        let mut out = Vec::new();
        encode_into(packet, &mut out);
        String::from_utf8(out).expect("encoder writes UTF-8")
    }

    fn packet(kind: PacketKind, nsp: &str, id: Option<u64>, data: Option<Value>) -> Packet {
        Packet::new(kind, nsp, id, data, Vec::new())
    }

    /// Canonical wire texts (sorted object keys, `/` left out, nothing redundant): each
    /// decodes and encodes back to the same bytes.
    const CANONICAL: &[&str] = &[
        "0",
        "0{}",
        "0{\"token\":\"123\"}",
        "0/admin,",
        "0/admin,{\"token\":\"123\"}",
        "0/custom,{\"sid\":\"x\"}",
        "1",
        "1/admin,",
        "2[\"hello\"]",
        "2[\"hello\",1,\"two\",{\"three\":[false,null,1.5]}]",
        "2[42]",
        "2[-1.5,\"x\"]",
        "2/admin,[\"bar\"]",
        "212[\"foo\"]",
        "2/admin,456[\"project:delete\",123]",
        "218446744073709551615[\"max id\"]",
        "3[]",
        "3456[1,\"2\",{\"3\":[false]}]",
        "3/admin,456[]",
        "4\"not allowed\"",
        "4{\"message\":\"Invalid namespace\"}",
        "4/random,{\"message\":\"Invalid namespace\"}",
        "4{\"data\":{\"retry\":true},\"message\":\"no\"}",
        "50-[\"empty binary\"]",
        "51-[\"hello\",{\"_placeholder\":true,\"num\":0}]",
        "52-/admin,[\"project:delete\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
        "51-12[\"upload\",{\"_placeholder\":true,\"num\":0}]",
        "60-1[]",
        "61-789[{\"_placeholder\":true,\"num\":0}]",
        "61-/admin,456[{\"_placeholder\":true,\"num\":0}]",
        "2[\"caf\u{e9} \u{1f4da}\",\"\u{65e5}\u{672c}\"]",
        "2/\u{e9}t\u{e9},[\"x\"]",
    ];

    /// Decode `text` and give the packet as many attachments as it announced, as the
    /// reassembler would.
    fn complete(text: &str) -> Packet {
        let (mut packet, count) = dec(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        packet.attachments = vec![Bytes::from_static(b"\x00"); count];
        packet
    }

    #[test]
    fn canonical_texts_round_trip_byte_for_byte() {
        for text in CANONICAL {
            let packet = complete(text);
            assert_eq!(enc(&packet), *text);
        }
    }

    #[test]
    fn canonical_texts_decode_encode_decode_to_equal_packets() {
        for text in CANONICAL {
            let first = complete(text);
            let (mut second, count) = dec(&enc(&first)).expect("re-encoded is valid");
            assert_eq!(count, first.attachments.len(), "{text}");
            second.attachments = first.attachments.clone();
            assert_eq!(first, second, "{text}");
        }
    }

    #[test]
    fn object_keys_keep_the_order_they_came_in() {
        let (packet, _) = dec("0{\"b\":1,\"a\":2}").unwrap();
        assert_eq!(enc(&packet), "0{\"b\":1,\"a\":2}");
    }

    #[test]
    fn non_canonical_texts_reencode_to_their_canonical_form() {
        // Each of these is valid but is written differently by the encoder.
        for (text, canonical) in [
            ("1/custom", "1/custom,"),
            ("0/,{}", "0{}"),
            ("2007[\"x\"]", "27[\"x\"]"),
            ("2 [\"x\"] ", "2[\"x\"]"),
            ("2[1e2]", "2[100.0]"),
        ] {
            let (packet, _) = dec(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(enc(&packet), canonical, "{text}");
        }
    }

    #[test]
    fn namespace_without_comma_runs_to_the_end() {
        // Engine.IO `41/custom`: the Socket.IO text is `1/custom`, no comma and no data.
        let (p, count) = dec("1/custom").expect("valid");
        assert_eq!(p, packet(PacketKind::Disconnect, "/custom", None, None));
        assert_eq!(count, 0);
        let (p, _) = dec("0/custom").expect("valid");
        assert_eq!(p, packet(PacketKind::Connect, "/custom", None, None));
    }

    #[test]
    fn connect_without_namespace_is_on_root() {
        let (p, _) = dec("0").expect("valid");
        assert_eq!(p, packet(PacketKind::Connect, "/", None, None));
        let (p, _) = dec("0{\"token\":\"123\"}").expect("valid");
        assert_eq!(p.data, Some(json!({"token": "123"})));
    }

    #[test]
    fn event_with_namespace_and_ack_id_decodes_all_parts() {
        let (p, count) = dec("2/admin,456[\"project:delete\",123]").expect("valid");
        assert_eq!(
            p,
            packet(
                PacketKind::Event,
                "/admin",
                Some(456),
                Some(json!(["project:delete", 123]))
            )
        );
        assert_eq!(count, 0);
        assert_eq!(p.event_name().as_deref(), Some("project:delete"));
    }

    #[test]
    fn binary_event_reports_attachment_count_and_no_attachments_yet() {
        let (p, count) =
            dec("52-/admin,7[\"up\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]")
                .expect("valid");
        assert_eq!(count, 2);
        assert_eq!(p.kind, PacketKind::BinaryEvent);
        assert_eq!(p.nsp, "/admin");
        assert_eq!(p.id, Some(7));
        assert!(p.attachments.is_empty());
    }

    #[test]
    fn ack_id_at_u64_max_decodes() {
        let (p, _) = dec("318446744073709551615[]").expect("valid");
        assert_eq!(p.id, Some(u64::MAX));
    }

    #[test]
    fn ack_id_is_read_on_every_kind_as_socketio_parser_does() {
        let (p, _) = dec("01").expect("valid");
        assert_eq!(p, packet(PacketKind::Connect, "/", Some(1), None));
        let (p, _) = dec("42{}").expect("valid");
        assert_eq!(
            p,
            packet(PacketKind::ConnectError, "/", Some(2), Some(json!({})))
        );
        assert_eq!(enc(&p), "42{}");
    }

    #[test]
    fn empty_text_is_rejected() {
        assert_eq!(dec(""), Err(PacketError::Empty));
    }

    #[test]
    fn unknown_type_digit_is_rejected() {
        assert_eq!(dec("7[\"x\"]"), Err(PacketError::UnknownType(b'7')));
        assert_eq!(dec("abc"), Err(PacketError::UnknownType(b'a')));
        assert_eq!(dec("9"), Err(PacketError::UnknownType(b'9')));
        assert_eq!(dec("\u{e9}"), Err(PacketError::UnknownType(0xc3)));
    }

    #[test]
    fn binary_packet_without_attachment_dash_is_rejected() {
        assert_eq!(dec("51[\"x\"]"), Err(PacketError::BadAttachmentCount));
        assert_eq!(dec("5"), Err(PacketError::BadAttachmentCount));
        assert_eq!(dec("61"), Err(PacketError::BadAttachmentCount));
        assert_eq!(dec("5a-[\"x\"]"), Err(PacketError::BadAttachmentCount));
    }

    #[test]
    fn binary_packet_with_empty_attachment_count_is_rejected() {
        assert_eq!(dec("5-[\"x\"]"), Err(PacketError::BadAttachmentCount));
        assert_eq!(dec("6-1[]"), Err(PacketError::BadAttachmentCount));
    }

    #[test]
    fn attachment_count_above_limit_is_rejected() {
        assert_eq!(dec("511-[\"x\"]"), Err(PacketError::TooManyAttachments));
        assert_eq!(
            dec("599999999999999999999999999-[\"x\"]"),
            Err(PacketError::TooManyAttachments)
        );
        let tight = Limits {
            max_attachments: 1,
            ..Limits::default()
        };
        assert!(decode("51-[\"x\"]", &tight).is_ok());
        assert_eq!(
            decode("52-[\"x\"]", &tight),
            Err(PacketError::TooManyAttachments)
        );
    }

    #[test]
    fn attachment_count_at_limit_is_accepted() {
        let (_, count) = dec("510-[\"x\"]").expect("valid");
        assert_eq!(count, 10);
    }

    #[test]
    fn ack_id_beyond_u64_is_rejected() {
        assert_eq!(
            dec("218446744073709551616[\"x\"]"),
            Err(PacketError::BadAckId)
        );
        assert_eq!(
            dec("3999999999999999999999999999999[]"),
            Err(PacketError::BadAckId)
        );
    }

    #[test]
    fn non_digit_ack_id_is_invalid_json() {
        // Engine.IO `42abc["x"]`: the id is not digits, so `abc[...]` is taken as the data.
        assert_eq!(dec("2abc[\"x\"]"), Err(PacketError::InvalidJson));
    }

    #[test]
    fn malformed_json_is_rejected() {
        for text in [
            "2[\"x\"",
            "2[\"x\"]garbage",
            "2[\"x\"][]",
            "0{",
            "2 ",
            "2[\"x\",]",
            "2/admin,\u{1}",
        ] {
            assert_eq!(dec(text), Err(PacketError::InvalidJson), "{text}");
        }
    }

    #[test]
    fn json_nested_beyond_serde_limit_is_rejected_without_overflowing_the_stack() {
        let text = format!("2[\"x\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(dec(&text), Err(PacketError::JsonTooDeep));
        // Past the configured depth, serde_json's own limit still stands behind it.
        let unlimited = Limits {
            max_json_depth: usize::MAX,
            max_json_elements: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(decode(&text, &unlimited), Err(PacketError::InvalidJson));
    }

    #[test]
    fn json_limits_refuse_deep_or_wide_data_and_accept_what_is_within() {
        let tight = Limits {
            max_json_depth: 3,
            max_json_elements: 6,
            ..Limits::default()
        };
        assert!(decode(r#"2["x",[[1]]]"#, &tight).is_ok());
        assert_eq!(
            decode(r#"2["x",[[[1]]]]"#, &tight),
            Err(PacketError::JsonTooDeep)
        );
        assert!(decode(r#"2["x",1,2,3,4]"#, &tight).is_ok());
        assert_eq!(
            decode(r#"2["x",[1,2,3,4,5,6]]"#, &tight),
            Err(PacketError::JsonTooManyElements)
        );
    }

    #[test]
    fn serde_max_depth_is_what_serde_json_decodes() {
        let unlimited = Limits {
            max_json_depth: usize::MAX,
            ..Limits::default()
        };
        let nested = |levels: usize| {
            // The event array itself is one level.
            let inner = levels - 1;
            format!("2[\"x\",{}{}]", "[".repeat(inner), "]".repeat(inner))
        };
        let at = nested(Limits::SERDE_MAX_DEPTH);
        assert!(decode(&at, &unlimited).is_ok());
        let beyond = nested(Limits::SERDE_MAX_DEPTH + 1);
        assert_eq!(decode(&beyond, &unlimited), Err(PacketError::InvalidJson));
        // With the default limit it is refused by the pre-check first, on both paths.
        assert_eq!(dec(&beyond), Err(PacketError::JsonTooDeep));
        assert_eq!(
            decode_deferred(&beyond, &limits()),
            Err(PacketError::JsonTooDeep)
        );
        assert!(decode_deferred(&at, &limits()).is_ok());
    }

    #[test]
    fn deferred_events_keep_their_text_and_are_not_counted() {
        let numbers = vec!["0"; 200_000].join(",");
        let text = format!(r#"2/admin,7["chatMessage",{{"bookId":2701,"content":[{numbers}]}}]"#);
        assert_eq!(dec(&text), Err(PacketError::JsonTooManyElements));
        let (p, count) = decode_deferred(&text, &limits()).expect("answered, not refused");
        assert_eq!(count, 0);
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.id),
            (PacketKind::Event, "/admin", Some(7))
        );
        assert_eq!(p.data, None);
        assert_eq!(p.event_name().as_deref(), Some("chatMessage"));
        let json = p.json.as_deref().expect("kept as text");
        assert_eq!(Some(json), text.get("2/admin,7".len()..));
        assert_eq!(enc(&p), text);
    }

    #[test]
    fn deferred_events_obey_the_same_rules_as_trees() {
        for text in [
            "2{}",
            "2\"x\"",
            "2[]",
            "2[null]",
            "2[[\"x\"]]",
            "2[\"connect\"]",
            "2[\"x\"",
            "2[\"x\"]y",
            "2[\"x\",]",
            "2[\"x\",01]",
            "2[\"\\ud83d\",1e400]",
            "2[5,1]",
            "2[\"x\",\"\\u12\"]",
            "2[\"disconnecting\",{}]",
        ] {
            let tree = dec(text).map(|_| ());
            let deferred = decode_deferred(text, &limits()).map(|_| ());
            assert_eq!(tree, deferred, "{text}");
        }
        // Other kinds are decoded into trees on both paths.
        let (p, _) = decode_deferred("3[1]", &limits()).unwrap();
        assert_eq!((p.data, p.json), (Some(json!([1])), None));
        let (p, _) =
            decode_deferred("51-[\"x\",{\"_placeholder\":true,\"num\":0}]", &limits()).unwrap();
        assert!(p.data.is_some() && p.json.is_none());
    }

    #[test]
    fn lone_surrogates_and_overflowing_numbers_decode_everywhere() {
        let (p, _) = dec(r#"2["ev\udc00",{"k\ud800":"\ud83d"},1e400]"#).expect("accepted");
        assert_eq!(
            p.data,
            Some(json!(["ev\u{fffd}", {"k\u{fffd}": "\u{fffd}"}, null]))
        );
        let (p, _) = dec(r#"31["\ud83d"]"#).expect("an ack argument");
        assert_eq!(p.data, Some(json!(["\u{fffd}"])));
        let (p, _) = dec(r#"0{"token":"\udfff"}"#).expect("an auth object");
        assert_eq!(p.data, Some(json!({"token": "\u{fffd}"})));
        let (p, _) = decode_deferred(r#"2["\ud83d",-1e999]"#, &limits()).expect("deferred");
        assert_eq!(p.json.as_deref(), Some(r#"["\ufffd",null]"#));
        assert_eq!(p.event_name().as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn connect_data_must_be_an_object() {
        for text in ["0[]", "0\"x\"", "0true", "0 1", "0null", "0/admin,[]"] {
            assert_eq!(dec(text), Err(PacketError::ConnectDataNotObject), "{text}");
        }
    }

    #[test]
    fn disconnect_must_not_carry_data() {
        for text in ["1{}", "1[]", "1\"x\"", "1/admin,{}"] {
            assert_eq!(dec(text), Err(PacketError::DisconnectHasData), "{text}");
        }
    }

    #[test]
    fn event_data_must_be_an_array() {
        for text in [
            "2{}",
            "2",
            "2/admin,",
            "212",
            "2\"x\"",
            "2null",
            "2/chat[\"x\"]",
        ] {
            assert_eq!(dec(text), Err(PacketError::EventDataNotArray), "{text}");
        }
        assert_eq!(dec("50-{}"), Err(PacketError::EventDataNotArray));
    }

    #[test]
    fn event_name_must_be_string_or_number() {
        for text in [
            "2[]",
            "2[null]",
            "2[{}]",
            "2[[\"x\"]]",
            "2[true]",
            "51-[{\"_placeholder\":true,\"num\":0}]",
        ] {
            assert_eq!(dec(text), Err(PacketError::EventNameInvalid), "{text}");
        }
    }

    #[test]
    fn reserved_event_names_are_rejected() {
        for name in RESERVED_EVENT_NAMES {
            let text = format!("2[\"{name}\",1]");
            assert_eq!(dec(&text), Err(PacketError::ReservedEventName), "{text}");
            let text = format!("50-[\"{name}\"]");
            assert_eq!(dec(&text), Err(PacketError::ReservedEventName), "{text}");
        }
        // Only the exact names are reserved.
        assert!(dec("2[\"Connect\"]").is_ok());
        assert!(dec("2[\"connected\"]").is_ok());
    }

    #[test]
    fn ack_data_must_be_an_array() {
        for text in ["3", "312", "3{}", "31\"x\"", "60-1{}", "60-1"] {
            assert_eq!(dec(text), Err(PacketError::AckDataNotArray), "{text}");
        }
    }

    #[test]
    fn connect_error_data_must_be_string_or_object() {
        for text in ["4", "4[]", "4null", "4/admin,", "4true"] {
            assert_eq!(
                dec(text),
                Err(PacketError::ConnectErrorDataInvalid),
                "{text}"
            );
        }
    }

    #[test]
    fn ack_encodes_as_type_id_and_array() {
        let p = Packet::ack("/", 456, json!([1, "2", {"3": [false]}]), Vec::new());
        assert_eq!(enc(&p), "3456[1,\"2\",{\"3\":[false]}]");
    }

    #[test]
    fn ack_with_attachments_encodes_as_binary_ack() {
        let data = json!([{"_placeholder": true, "num": 0}]);
        let p = Packet::ack(
            "/",
            789,
            data.clone(),
            vec![Bytes::from_static(b"\x01\x02")],
        );
        assert_eq!(p.kind, PacketKind::BinaryAck);
        assert_eq!(enc(&p), "61-789[{\"_placeholder\":true,\"num\":0}]");
        // A hand-built plain Ack with attachments is written the same way.
        let mut plain = p.clone();
        plain.kind = PacketKind::Ack;
        assert_eq!(enc(&plain), "61-789[{\"_placeholder\":true,\"num\":0}]");
    }

    #[test]
    fn event_with_attachments_encodes_as_binary_event() {
        let data =
            json!(["file", {"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 1}]);
        let attachments = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let p = Packet::event("/admin", data, Some(3), attachments);
        assert_eq!(p.kind, PacketKind::BinaryEvent);
        assert_eq!(
            enc(&p),
            "52-/admin,3[\"file\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]"
        );
        let mut plain = p.clone();
        plain.kind = PacketKind::Event;
        assert_eq!(enc(&plain), enc(&p));
    }

    #[test]
    fn event_without_attachments_encodes_as_plain_event() {
        let p = Packet::event("/", json!(["hello", 1]), None, Vec::new());
        assert_eq!(p.kind, PacketKind::Event);
        assert_eq!(enc(&p), "2[\"hello\",1]");
    }

    #[test]
    fn binary_kind_without_attachments_still_writes_zero_count() {
        let p = packet(PacketKind::BinaryEvent, "/", None, Some(json!(["x"])));
        assert_eq!(enc(&p), "50-[\"x\"]");
    }

    #[test]
    fn connect_reply_on_custom_namespace_encodes_sid() {
        let p = Packet::connect("/custom", Some(json!({"sid": "x"})));
        assert_eq!(enc(&p), "0/custom,{\"sid\":\"x\"}");
    }

    #[test]
    fn connect_error_encodes_message_and_optional_data() {
        let p = Packet::connect_error("/random", "Invalid namespace", None);
        assert_eq!(enc(&p), "4/random,{\"message\":\"Invalid namespace\"}");
        let p = Packet::connect_error("/", "not authorized", Some(json!({"code": 7})));
        assert_eq!(
            enc(&p),
            "4{\"message\":\"not authorized\",\"data\":{\"code\":7}}"
        );
    }

    #[test]
    fn disconnect_encodes_namespace_only() {
        assert_eq!(enc(&Packet::disconnect("/")), "1");
        assert_eq!(enc(&Packet::disconnect("/admin")), "1/admin,");
    }

    #[test]
    fn encode_appends_without_clearing_the_buffer() {
        let mut out = b"4".to_vec();
        encode_into(&Packet::disconnect("/"), &mut out);
        assert_eq!(out, b"41");
    }

    #[test]
    fn constructed_packets_decode_back_to_themselves() {
        let packets = [
            Packet::connect("/", None),
            Packet::connect("/custom", Some(json!({"sid": "abc"}))),
            Packet::disconnect("/chat"),
            Packet::event("/", json!(["message", {"text": "hi"}]), None, Vec::new()),
            Packet::event("/x", json!([7, "numbered"]), Some(u64::MAX), Vec::new()),
            Packet::ack("/", 0, json!([]), Vec::new()),
            Packet::connect_error("/nope", "Invalid namespace", None),
        ];
        for p in packets {
            let (back, count) = dec(&enc(&p)).expect("valid");
            assert_eq!(back, p);
            assert_eq!(count, 0);
        }
        let bin = Packet::event(
            "/",
            json!(["up", {"_placeholder": true, "num": 0}]),
            Some(1),
            vec![Bytes::from_static(b"z")],
        );
        let (mut back, count) = dec(&enc(&bin)).expect("valid");
        assert_eq!(count, 1);
        back.attachments = bin.attachments.clone();
        assert_eq!(back, bin);
    }

    #[test]
    fn event_name_is_first_string_of_an_event_only() {
        let p = Packet::event("/", json!(["chat", 1]), None, Vec::new());
        assert_eq!(p.event_name().as_deref(), Some("chat"));
        let p = Packet::event("/", json!([1, "chat"]), None, Vec::new());
        assert_eq!(p.event_name(), None);
        let p = Packet::ack("/", 1, json!(["chat"]), Vec::new());
        assert_eq!(p.event_name(), None);
        let (p, _) = dec("51-[\"bin\",{\"_placeholder\":true,\"num\":0}]").expect("valid");
        assert_eq!(p.event_name().as_deref(), Some("bin"));
        let (p, _) = decode_deferred("2[\"t\\u00e9\",1]", &limits()).expect("valid");
        assert_eq!(p.event_name().as_deref(), Some("t\u{e9}"));
    }

    #[test]
    fn push_decimal_writes_every_width() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::MAX / 10, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn decoding_never_panics_on_any_prefix_of_valid_texts() {
        for text in CANONICAL {
            for (i, _) in text.char_indices() {
                let prefix = text.get(..i).unwrap_or_default();
                let _ = dec(prefix);
            }
        }
    }

    #[test]
    fn errors_display_a_message() {
        assert_eq!(
            PacketError::UnknownType(b'7').to_string(),
            "unknown Socket.IO packet type byte 0x37"
        );
        assert!(!PacketError::InvalidJson.to_string().is_empty());
    }

    #[test]
    fn the_round_trip_check_holds_on_a_few_packets() {
        super::checks::check(b"\x00\x0b2[\"hi\",1.5]");
        super::checks::check(b"\x00*51-/admin,7[{\"_placeholder\":true,\"num\":0}]\x01\x03abc");
        super::checks::check(b"\x00\x034{}\x01\x01x");
    }
}
