//! The routes beside the Engine.IO endpoint, on the same port: `GET /health` and
//! `GET /metrics` for operators, and the reading-room page (`/`, `/app.js`,
//! `/socket.io/socket.io.min.js`) for readers.
//!
//! Owns which of them a server answers ([`Ops`]: the `readrealm-chat` binary turns them on;
//! the protocol test servers keep every other path a 404) and how each is written. The
//! numbers come from [`crate::metrics`], the page from [`crate::site`].

use std::sync::Arc;

use super::Shard;
use crate::http::response::{APPLICATION_JSON, TEXT_PLAIN_UTF8};
use crate::http::{write_response, Method, RequestHead, Status};
use crate::metrics::Metrics;
use crate::site::{self, Site};
use crate::socketio::Handler;

/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a server does besides Engine.IO.
#[derive(Debug, Clone)]
pub struct Ops {
    /// The counters every shard adds to (always kept; cheap).
    pub metrics: Arc<Metrics>,
    /// Answer `/health` and `/metrics`.
    pub routes: bool,
    /// Serve the reading-room page.
    pub site: Option<Arc<Site>>,
}

impl Ops {
    /// Counting only, no routes: what [`super::start`] uses.
    pub fn counting_only(shards: usize) -> Ops {
        Ops {
            metrics: Metrics::new(shards),
            routes: false,
            site: None,
        }
    }

    /// `/health`, `/metrics` and, with `site`, the page.
    pub fn serving(metrics: Arc<Metrics>, site: Option<Site>) -> Ops {
        Ops {
            metrics,
            routes: true,
            site: site.map(Arc::new),
        }
    }
}

impl<H: Handler> Shard<H> {
    /// Answer `head` if its path is one of the ops routes; false otherwise (the caller
    /// answers 404). The head (and any body) is consumed.
    pub(super) fn ops_route(&mut self, key: usize, head: &RequestHead) -> bool {
        let page = self.ops.site.is_some();
        let known = match head.path.as_str() {
            "/health" | "/metrics" => self.ops.routes,
            "/" | "/index.html" | "/app.js" | site::CLIENT_JS_ROUTE => page,
            _ => false,
        };
        if !known {
            return false;
        }
        let body_len = head
            .content_length
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let keep_alive = head.keep_alive && body_len == 0 && !head.chunked;
        if let Some(conn) = self.conns.get_mut(key) {
            let input = &mut conn.buffers.input;
            input.drain(..head.head_len.min(input.len()));
        }
        // HEAD (load balancers, `curl -I`) gets GET's head without the body.
        let head_only = head.method == Method::Head;
        if head.method != Method::Get && head.method != Method::Head {
            let allow = [("Allow", "GET, HEAD".to_owned())];
            self.ops_reply(key, keep_alive, head_only, |out| {
                write_response(
                    out,
                    Status::METHOD_NOT_ALLOWED,
                    Some(TEXT_PLAIN_UTF8),
                    &allow,
                    b"Method Not Allowed",
                    keep_alive,
                )
            });
            return true;
        }
        let no_store = [("Cache-Control", "no-store".to_owned())];
        match head.path.as_str() {
            "/health" => {
                let body = self.ops.metrics.health_json();
                self.ops_reply(key, keep_alive, head_only, |out| {
                    write_response(
                        out,
                        Status::OK,
                        Some(APPLICATION_JSON),
                        &no_store,
                        body.as_bytes(),
                        keep_alive,
                    )
                });
            }
            "/metrics" => {
                let depths: Vec<usize> = self
                    .peers
                    .mailboxes
                    .iter()
                    .map(|mailbox| mailbox.sender.len())
                    .collect();
                let body = self.ops.metrics.render(&depths);
                self.ops_reply(key, keep_alive, head_only, |out| {
                    write_response(
                        out,
                        Status::OK,
                        Some(PROMETHEUS_TEXT),
                        &no_store,
                        body.as_bytes(),
                        keep_alive,
                    )
                });
            }
            "/" | "/index.html" => self.static_reply(
                key,
                keep_alive,
                head_only,
                site::HTML,
                site::PAGE_HEADERS,
                None,
            ),
            "/app.js" => self.static_reply(
                key,
                keep_alive,
                head_only,
                site::JAVASCRIPT,
                site::SCRIPT_HEADERS,
                Some(site::APP_JS.as_bytes()),
            ),
            _ => {
                let bundle = self.ops.site.as_ref().and_then(|s| s.client_js.clone());
                match bundle {
                    Some(bytes) => self.static_reply(
                        key,
                        keep_alive,
                        head_only,
                        site::JAVASCRIPT,
                        site::SCRIPT_HEADERS,
                        Some(&bytes),
                    ),
                    None => {
                        let path = self
                            .ops
                            .site
                            .as_ref()
                            .and_then(|s| s.client_js_path.as_ref())
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| site::CLIENT_JS_DEFAULT.to_owned());
                        crate::log_warn!(
                            "client_js_missing",
                            route = site::CLIENT_JS_ROUTE,
                            path = path,
                            fix = "run tools/setup.sh (npm ci in static/) or pass --client-js"
                        );
                        self.ops_reply(key, keep_alive, head_only, |out| {
                            write_response(
                                out,
                                Status::NOT_FOUND,
                                Some(TEXT_PLAIN_UTF8),
                                &no_store,
                                b"socket.io.min.js is not installed on this server",
                                keep_alive,
                            )
                        });
                    }
                }
            }
        }
        true
    }

    /// A 200 with a static body (`None`: the page).
    #[allow(clippy::too_many_arguments)]
    fn static_reply(
        &mut self,
        key: usize,
        keep_alive: bool,
        head_only: bool,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) {
        let headers: Vec<(&str, String)> = headers
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect();
        let body = body.unwrap_or(site::INDEX_HTML.as_bytes());
        self.ops_reply(key, keep_alive, head_only, |out| {
            write_response(
                out,
                Status::OK,
                Some(content_type),
                &headers,
                body,
                keep_alive,
            )
        });
    }

    fn ops_reply(
        &mut self,
        key: usize,
        keep_alive: bool,
        head_only: bool,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let out = conn.output();
        let start = out.len();
        write(out);
        if head_only {
            let head_end = out
                .get(start..)
                .unwrap_or_default()
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(out.len(), |at| start + at + 4);
            out.truncate(head_end);
        }
        if keep_alive {
            self.mark_dirty(key, false);
        } else {
            self.close_after_flush(key);
        }
    }
}
