//! Engine.IO v4, sans-IO: the packet and payload codec, session ids, and the per-session
//! state machine (transport, heartbeat, upgrade, outbound queue).
//!
//! Nothing here owns a socket or reads a clock; the server feeds it bytes and instants.

pub mod packet;
pub mod session;
pub mod sid;
pub mod violation;
