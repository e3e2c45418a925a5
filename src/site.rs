//! The reading-room page: the HTML and script compiled into the binary, and the
//! socket.io-client browser bundle it loads, read once from the npm package on disk.
//!
//! Owns what the static routes answer (`/`, `/app.js`, `/socket.io/socket.io.min.js`): bodies,
//! content types and caching headers. The routing itself is the server's (`server::ops`).
//! The bundle is not committed; the set-up script installs it with `npm ci` in `static/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The page at `/`.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

/// The page's script at `/app.js` (its own file, so the page's CSP can forbid inline script).
pub const APP_JS: &str = include_str!("../static/app.js");

/// Where the client bundle is looked for when no path is configured, relative to the working
/// directory and to the binary's directory: the npm package `npm ci` installs in `static/`.
pub const CLIENT_JS_DEFAULT: &str = "static/node_modules/socket.io-client/dist/socket.io.min.js";

/// Where the page asks for the client bundle.
pub const CLIENT_JS_ROUTE: &str = "/socket.io/socket.io.min.js";

/// The headers of the page: always revalidated (a new binary brings a new page), and locked
/// down — scripts only from this origin, no framing, no type sniffing.
pub const PAGE_HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
    ),
];

/// The headers of the scripts: cacheable for an hour, never sniffed.
pub const SCRIPT_HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "public, max-age=3600"),
    ("X-Content-Type-Options", "nosniff"),
];

pub const HTML: &str = "text/html; charset=utf-8";
pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The static part of the server.
#[derive(Debug, Clone)]
pub struct Site {
    /// The client bundle, if it could be read.
    pub client_js: Option<Arc<[u8]>>,
    /// Where it was looked for (for the log line when it is missing).
    pub client_js_path: Option<PathBuf>,
}

impl Site {
    /// Read the client bundle at `path` (None: none was found); a missing or unreadable file
    /// leaves the page without it and is logged at warn.
    pub fn load(path: Option<&Path>) -> Site {
        let client_js = match path {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => Some(Arc::from(bytes)),
                Err(e) => {
                    crate::log_warn!(
                        "client_js_unreadable",
                        path = path.display(),
                        cause = e,
                        fix = "run tools/setup.sh (npm ci in static/) or pass --client-js"
                    );
                    None
                }
            },
            None => {
                crate::log_warn!(
                    "client_js_not_found",
                    looked_for = CLIENT_JS_DEFAULT,
                    fix = "run tools/setup.sh (npm ci in static/) or pass --client-js"
                );
                None
            }
        };
        Site {
            client_js,
            client_js_path: path.map(Path::to_path_buf),
        }
    }
}
