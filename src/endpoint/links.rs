//! The link table: which session each connection the endpoint knows carries, and in which
//! role (the reverse of what the sessions hold).
//!
//! A session's connections are stored once, by the session: its Engine.IO
//! [`crate::engineio::session::Session`] holds the parked GET, the WebSocket and the probe,
//! its entry the POST whose body is arriving. A connection gets its [`Link`] in
//! [`Endpoint::link`] right after the session took it, and loses it in [`Endpoint::unlink`],
//! which also makes the session let go of it if it still holds it; a session that ends drops
//! the links of what it held. So between two calls into the endpoint the links are exactly
//! the connections the sessions hold, which [`Endpoint::check_links`] checks (the test pair
//! runs it after every call). Must never decide protocol behaviour: it only records and
//! forgets.

use super::io::ConnId;
use super::timers::SessionRef;
use super::Endpoint;
use crate::engineio::session::CloseReason;
use crate::socketio::Handler;

/// What a connection carries for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Get,
    Post,
    WebSocket,
    Probe,
}

/// A connection's session and role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub session: SessionRef,
    pub role: Role,
}

impl<H: Handler> Endpoint<H> {
    /// Record that `conn` carries `role` for `session`: call right after the session took
    /// `conn` (or, for [`Role::Post`], to set the entry's `post_conn`).
    pub(super) fn link(&mut self, conn: ConnId, session: SessionRef, role: Role) {
        let Some(entry) = self.session(session) else {
            return;
        };
        if role == Role::Post {
            entry.post_conn = Some(conn);
        }
        self.links.insert(conn, Link { session, role });
    }

    /// Forget what `conn` carries: its link, and the session's hold on it if the session
    /// still has it (a parked GET, a probe or the WebSocket is let go of, a POST forgotten;
    /// a session that lost its WebSocket must be ended next). Returns the link `conn` had, if
    /// any.
    pub(super) fn unlink(&mut self, conn: ConnId) -> Option<Link> {
        let link = self.links.remove(&conn)?;
        if let Some(entry) = self.session(link.session) {
            match link.role {
                Role::Get => {
                    if entry.eio.parked_get().is_some_and(|g| g.conn == conn) {
                        entry.eio.take_get();
                    }
                }
                Role::Post => {
                    if entry.post_conn == Some(conn) {
                        entry.post_conn = None;
                    }
                }
                Role::Probe => {
                    if entry.eio.probe() == Some(&conn) {
                        entry.eio.cancel_upgrade();
                    }
                }
                Role::WebSocket => {
                    if entry.eio.websocket_conn() == Some(&conn) {
                        entry.eio.lose_websocket();
                    }
                }
            }
        }
        Some(link)
    }

    /// A connection that carried `link` is gone (already unlinked).
    pub(super) fn on_link_closed(&mut self, link: Link, reason: CloseReason) {
        match link.role {
            // engine.io: "poll connection closed prematurely": the client is gone.
            Role::Get => self.close_session(link.session, CloseReason::TransportClose),
            Role::WebSocket => self.close_session(link.session, reason),
            // The upgrade was abandoned by `unlink`; the session stays on polling.
            Role::Post | Role::Probe => {}
        }
    }

    /// Every breach of the rule that the links are exactly the connections the sessions hold,
    /// each in its role (empty when it holds). For the test pair, after each call.
    pub(super) fn check_links(&self) -> Vec<String> {
        let mut breaches = Vec::new();
        let mut held = 0;
        for (key, entry) in &self.sessions {
            let session = SessionRef {
                key,
                generation: entry.generation,
            };
            let conns = [
                (entry.eio.parked_get().map(|g| g.conn), Role::Get),
                (entry.post_conn, Role::Post),
                (entry.eio.websocket_conn().copied(), Role::WebSocket),
                (entry.eio.probe().copied(), Role::Probe),
            ];
            for (conn, role) in conns {
                let Some(conn) = conn else {
                    continue;
                };
                held += 1;
                let want = Link { session, role };
                match self.links.get(&conn) {
                    Some(link) if *link == want => {}
                    other => breaches.push(format!(
                        "{conn:?} is the {role:?} of session {session:?} but linked as {other:?}"
                    )),
                }
            }
        }
        if self.links.len() != held {
            breaches.push(format!(
                "{} links for {held} connections held by sessions: {:?}",
                self.links.len(),
                self.links
            ));
        }
        breaches
    }
}
