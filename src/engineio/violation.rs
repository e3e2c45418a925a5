//! Which protocol rule a client broke: the cause a session closes with when it closes for a
//! protocol error, carried to the edge so `/metrics` and the logs can name it.
//!
//! One flat list over every layer the server speaks (HTTP framing of Engine.IO requests,
//! Engine.IO packets and transports, RFC 6455 frames, Socket.IO packets), each with a stable
//! snake_case label for the `readrealm_protocol_violations_total{violation}` metric. Owns the
//! names only; must never decide what to do about a violation.

/// A protocol rule a client broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// Engine.IO v4: clients never ping (the server does).
    ClientPing,
    /// An `open` packet from a client.
    ClientOpen,
    /// `5` (upgrade) outside an upgrade probe.
    UpgradeOutsideProbe,
    /// A WebSocket text message that is not an Engine.IO packet.
    NotAnEngineIoPacket,
    /// A polling POST body that is not an Engine.IO payload.
    BadPayload,
    /// A second polling GET while one is parked.
    SecondGet,
    /// A second polling POST while one's body is arriving.
    SecondPost,
    /// A POST without `Content-Length`.
    LengthRequired,
    /// A POST body over maxPayload (or chunked).
    PayloadTooLarge,
    /// Input pipelined behind a parked GET beyond the head and payload limits.
    PipelinedWhileParked,
    /// The probe WebSocket broke the upgrade sequence (`2probe`, then `5`).
    UpgradeAborted,
    /// RFC 6455: an unmasked frame, a reserved opcode or bit, a bad continuation, a bad
    /// control frame.
    WebSocketFrame,
    /// RFC 6455: a text frame that is not UTF-8.
    WebSocketUtf8,
    /// RFC 6455: a frame or message over maxPayload.
    WebSocketTooBig,
    /// A Socket.IO packet the decoder refused; the label names which rule.
    SocketIo(SocketIoRule),
}

/// The Socket.IO rules a packet can break (see `socketio::packet::PacketError` and
/// `socketio::connection::SioError`, which map onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketIoRule {
    EmptyPacket,
    UnknownType,
    BadAttachmentCount,
    TooManyAttachments,
    BadAckId,
    InvalidJson,
    JsonTooDeep,
    JsonTooManyElements,
    ConnectDataNotObject,
    DisconnectHasData,
    EventDataNotArray,
    EventNameInvalid,
    ReservedEventName,
    AckDataNotArray,
    ConnectErrorDataInvalid,
    BadPlaceholder,
    UnexpectedText,
    UnexpectedAttachment,
    NotConnected,
    AlreadyConnected,
    ConnectErrorFromClient,
    TooManyNamespaces,
}

impl SocketIoRule {
    /// Every rule, in label order.
    pub const ALL: [SocketIoRule; 22] = [
        SocketIoRule::EmptyPacket,
        SocketIoRule::UnknownType,
        SocketIoRule::BadAttachmentCount,
        SocketIoRule::TooManyAttachments,
        SocketIoRule::BadAckId,
        SocketIoRule::InvalidJson,
        SocketIoRule::JsonTooDeep,
        SocketIoRule::JsonTooManyElements,
        SocketIoRule::ConnectDataNotObject,
        SocketIoRule::DisconnectHasData,
        SocketIoRule::EventDataNotArray,
        SocketIoRule::EventNameInvalid,
        SocketIoRule::ReservedEventName,
        SocketIoRule::AckDataNotArray,
        SocketIoRule::ConnectErrorDataInvalid,
        SocketIoRule::BadPlaceholder,
        SocketIoRule::UnexpectedText,
        SocketIoRule::UnexpectedAttachment,
        SocketIoRule::NotConnected,
        SocketIoRule::AlreadyConnected,
        SocketIoRule::ConnectErrorFromClient,
        SocketIoRule::TooManyNamespaces,
    ];

    fn label(self) -> &'static str {
        match self {
            SocketIoRule::EmptyPacket => "sio_empty_packet",
            SocketIoRule::UnknownType => "sio_unknown_type",
            SocketIoRule::BadAttachmentCount => "sio_bad_attachment_count",
            SocketIoRule::TooManyAttachments => "sio_too_many_attachments",
            SocketIoRule::BadAckId => "sio_bad_ack_id",
            SocketIoRule::InvalidJson => "sio_invalid_json",
            SocketIoRule::JsonTooDeep => "sio_json_too_deep",
            SocketIoRule::JsonTooManyElements => "sio_json_too_many_elements",
            SocketIoRule::ConnectDataNotObject => "sio_connect_data_not_object",
            SocketIoRule::DisconnectHasData => "sio_disconnect_has_data",
            SocketIoRule::EventDataNotArray => "sio_event_data_not_array",
            SocketIoRule::EventNameInvalid => "sio_event_name_invalid",
            SocketIoRule::ReservedEventName => "sio_reserved_event_name",
            SocketIoRule::AckDataNotArray => "sio_ack_data_not_array",
            SocketIoRule::ConnectErrorDataInvalid => "sio_connect_error_data_invalid",
            SocketIoRule::BadPlaceholder => "sio_bad_placeholder",
            SocketIoRule::UnexpectedText => "sio_unexpected_text",
            SocketIoRule::UnexpectedAttachment => "sio_unexpected_attachment",
            SocketIoRule::NotConnected => "sio_not_connected",
            SocketIoRule::AlreadyConnected => "sio_already_connected",
            SocketIoRule::ConnectErrorFromClient => "sio_connect_error_from_client",
            SocketIoRule::TooManyNamespaces => "sio_too_many_namespaces",
        }
    }
}

/// The violations that are not Socket.IO's, in label order.
const OTHERS: [Violation; 14] = [
    Violation::ClientPing,
    Violation::ClientOpen,
    Violation::UpgradeOutsideProbe,
    Violation::NotAnEngineIoPacket,
    Violation::BadPayload,
    Violation::SecondGet,
    Violation::SecondPost,
    Violation::LengthRequired,
    Violation::PayloadTooLarge,
    Violation::PipelinedWhileParked,
    Violation::UpgradeAborted,
    Violation::WebSocketFrame,
    Violation::WebSocketUtf8,
    Violation::WebSocketTooBig,
];

impl Violation {
    /// How many violations there are (the metric's label count).
    pub const COUNT: usize = OTHERS.len() + SocketIoRule::ALL.len();

    /// The violation with index `index` (see [`Violation::index`]).
    pub fn from_index(index: usize) -> Option<Violation> {
        match OTHERS.get(index) {
            Some(v) => Some(*v),
            None => SocketIoRule::ALL
                .get(index.checked_sub(OTHERS.len())?)
                .map(|rule| Violation::SocketIo(*rule)),
        }
    }

    /// A dense index below [`Violation::COUNT`], for counters.
    pub fn index(self) -> usize {
        match self {
            Violation::SocketIo(rule) => {
                OTHERS.len()
                    + SocketIoRule::ALL
                        .iter()
                        .position(|r| *r == rule)
                        .unwrap_or(0)
            }
            other => OTHERS.iter().position(|v| *v == other).unwrap_or(0),
        }
    }

    /// The metric label and log value: snake_case, stable.
    pub fn label(self) -> &'static str {
        match self {
            Violation::ClientPing => "eio_client_ping",
            Violation::ClientOpen => "eio_client_open",
            Violation::UpgradeOutsideProbe => "eio_upgrade_outside_probe",
            Violation::NotAnEngineIoPacket => "eio_not_a_packet",
            Violation::BadPayload => "eio_bad_payload",
            Violation::SecondGet => "eio_second_get",
            Violation::SecondPost => "eio_second_post",
            Violation::LengthRequired => "http_length_required",
            Violation::PayloadTooLarge => "http_payload_too_large",
            Violation::PipelinedWhileParked => "http_pipelined_while_parked",
            Violation::UpgradeAborted => "eio_upgrade_aborted",
            Violation::WebSocketFrame => "ws_bad_frame",
            Violation::WebSocketUtf8 => "ws_invalid_utf8",
            Violation::WebSocketTooBig => "ws_too_big",
            Violation::SocketIo(rule) => rule.label(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_dense_and_labels_unique() {
        let mut labels = std::collections::HashSet::new();
        for index in 0..Violation::COUNT {
            let violation = Violation::from_index(index).expect("every index names one");
            assert_eq!(violation.index(), index);
            assert!(
                labels.insert(violation.label()),
                "{} twice",
                violation.label()
            );
        }
        assert_eq!(Violation::from_index(Violation::COUNT), None);
    }
}
