//! The CORS policy: which browser origins may read the server's responses.
//!
//! Owns: the configured policy ([`CorsPolicy`], whether credentials are allowed) and the
//! `Access-Control-*` and `Vary` headers it implies for an ordinary response and for a
//! preflight (`OPTIONS`).
//!
//! Must never: refuse or route requests (CORS is enforced by browsers, not servers: a request
//! from an unlisted origin is still answered, just without the headers that would let the page
//! read it), nor send `Access-Control-Allow-Credentials: true` next to a wildcard origin, which
//! browsers reject. Engine.IO clients send cookies and use `withCredentials`, so with
//! credentials allowed the request's `Origin` is echoed instead of `*`, as the reference
//! server (the `cors` npm package with `origin: true, credentials: true`) does.
//!
//! The headers come back as `(name, value)` pairs for [`super::response`]'s writers.

/// Which origins get CORS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Every origin: the request's `Origin` is echoed (`*` when there is none).
    AnyOrigin,
    /// Only these origins, compared exactly (`scheme://host[:port]`, as browsers send them).
    Origins(Vec<String>),
    /// No CORS headers at all: cross-origin pages cannot read responses.
    Disabled,
}

/// `Access-Control-Allow-Methods` on preflights: the `cors` package's default list, which
/// is what the reference server sends.
pub const ALLOW_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE";

/// `Access-Control-Max-Age` on preflights, in seconds. Lets a browser reuse a preflight for
/// 10 minutes instead of the 5-second default, saving an `OPTIONS` round trip per polling
/// request when a client sends custom headers (`extraHeaders`). Chromium caps it at 2 hours,
/// so larger values would buy nothing.
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// The CORS policy in force. The default allows any origin, with credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    policy: CorsPolicy,
    credentials: bool,
}

impl Default for Cors {
    fn default() -> Self {
        Cors::new(CorsPolicy::AnyOrigin, true)
    }
}

impl Cors {
    pub fn new(policy: CorsPolicy, credentials: bool) -> Self {
        Cors {
            policy,
            credentials,
        }
    }

    pub fn policy(&self) -> &CorsPolicy {
        &self.policy
    }

    pub fn credentials(&self) -> bool {
        self.credentials
    }

    /// Parses a configuration string: `*` is [`CorsPolicy::AnyOrigin`]; empty (or only commas
    /// and spaces) or `none` (any case) is [`CorsPolicy::Disabled`]; otherwise a comma-separated
    /// list of origins. Entries are trimmed, and a trailing `/` is dropped because browsers
    /// never send one and `https://a.example/` in a config file would otherwise match nothing.
    /// A `*` anywhere in the list means any origin.
    pub fn parse_policy(s: &str) -> CorsPolicy {
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") {
            return CorsPolicy::Disabled;
        }
        let mut origins = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                return CorsPolicy::AnyOrigin;
            }
            let entry = entry.trim_end_matches('/');
            if !entry.is_empty() && !origins.iter().any(|o| o == entry) {
                origins.push(entry.to_owned());
            }
        }
        if origins.is_empty() {
            CorsPolicy::Disabled
        } else {
            CorsPolicy::Origins(origins)
        }
    }

    /// The origin to put in `Access-Control-Allow-Origin`, if any. An empty `Origin` header is
    /// treated as absent.
    fn allowed_origin<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        let origin = origin.filter(|o| !o.is_empty());
        match &self.policy {
            CorsPolicy::Disabled => None,
            CorsPolicy::AnyOrigin => Some(origin.unwrap_or("*")),
            CorsPolicy::Origins(list) => origin.filter(|o| list.iter().any(|l| l == o)),
        }
    }

    /// Headers for an ordinary response to a request with this `Origin`:
    ///
    /// - any origin, `Origin` present: it is echoed, with `Access-Control-Allow-Credentials:
    ///   true` if credentials are allowed;
    /// - any origin, no `Origin`: `Access-Control-Allow-Origin: *` (never with credentials);
    /// - a list: the origin is echoed (plus credentials) only if listed, else no `Access-*`;
    /// - disabled: nothing.
    ///
    /// Unless disabled, `Vary: Origin` is always added: the answer depends on the `Origin`
    /// header, so a cache must not serve it to another origin.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        self.build(origin, None, false)
    }

    /// Headers for the answer to a preflight (`OPTIONS`), which the server sends as
    /// `204 No Content`: those of [`Cors::headers`], plus, when the origin is allowed,
    /// `Access-Control-Allow-Methods` ([`ALLOW_METHODS`]), `Access-Control-Allow-Headers`
    /// echoing the request's `Access-Control-Request-Headers` (with `Vary` naming that header
    /// too) and `Access-Control-Max-Age` ([`PREFLIGHT_MAX_AGE_SECS`]).
    pub fn preflight_headers(
        &self,
        origin: Option<&str>,
        request_headers: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        self.build(origin, request_headers, true)
    }

    fn build(
        &self,
        origin: Option<&str>,
        request_headers: Option<&str>,
        preflight: bool,
    ) -> Vec<(&'static str, String)> {
        if self.policy == CorsPolicy::Disabled {
            return Vec::new();
        }
        let request_headers = request_headers
            .map(str::trim)
            .filter(|h| preflight && !h.is_empty());
        let mut out = Vec::with_capacity(6);
        let allowed = self.allowed_origin(origin);
        if let Some(allowed) = allowed {
            out.push(("Access-Control-Allow-Origin", allowed.to_owned()));
            if self.credentials && allowed != "*" {
                out.push(("Access-Control-Allow-Credentials", "true".to_owned()));
            }
        }
        let vary = if request_headers.is_some() {
            "Origin, Access-Control-Request-Headers"
        } else {
            "Origin"
        };
        out.push(("Vary", vary.to_owned()));
        if preflight && allowed.is_some() {
            out.push(("Access-Control-Allow-Methods", ALLOW_METHODS.to_owned()));
            if let Some(requested) = request_headers {
                out.push(("Access-Control-Allow-Headers", requested.to_owned()));
            }
            out.push(("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_SECS.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn any_origin_echoes_with_credentials() {
        let cors = Cors::default();
        assert_eq!(
            pairs(&cors.headers(Some("http://localhost:8080"))),
            [
                ("Access-Control-Allow-Origin", "http://localhost:8080"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]
        );
    }

    #[test]
    fn any_origin_without_credentials_echoes_only() {
        let cors = Cors::new(CorsPolicy::AnyOrigin, false);
        assert_eq!(
            pairs(&cors.headers(Some("https://a.example"))),
            [
                ("Access-Control-Allow-Origin", "https://a.example"),
                ("Vary", "Origin"),
            ]
        );
    }

    #[test]
    fn any_origin_without_origin_is_a_wildcard_never_with_credentials() {
        for cors in [Cors::default(), Cors::new(CorsPolicy::AnyOrigin, false)] {
            for origin in [None, Some("")] {
                assert_eq!(
                    pairs(&cors.headers(origin)),
                    [("Access-Control-Allow-Origin", "*"), ("Vary", "Origin")]
                );
            }
        }
    }

    #[test]
    fn listed_origins_only() {
        let cors = Cors::new(
            CorsPolicy::Origins(vec![
                "https://a.example".into(),
                "http://b.example:81".into(),
            ]),
            true,
        );
        assert_eq!(
            pairs(&cors.headers(Some("http://b.example:81"))),
            [
                ("Access-Control-Allow-Origin", "http://b.example:81"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]
        );
        for other in [
            Some("https://evil.example"),
            Some("https://a.example.evil"),
            Some("http://a.example"),
            Some("HTTPS://A.EXAMPLE"),
            None,
        ] {
            assert_eq!(
                pairs(&cors.headers(other)),
                [("Vary", "Origin")],
                "{other:?}"
            );
            assert_eq!(
                pairs(&cors.preflight_headers(other, Some("x-a"))),
                [("Vary", "Origin, Access-Control-Request-Headers")]
            );
        }
    }

    #[test]
    fn disabled_sends_nothing() {
        let cors = Cors::new(CorsPolicy::Disabled, true);
        assert!(cors.headers(Some("https://a.example")).is_empty());
        assert!(cors.headers(None).is_empty());
        assert!(cors
            .preflight_headers(Some("https://a.example"), Some("x"))
            .is_empty());
    }

    #[test]
    fn preflight_adds_methods_headers_and_max_age() {
        let cors = Cors::default();
        assert_eq!(
            pairs(
                &cors.preflight_headers(Some("https://a.example"), Some(" x-token, content-type "))
            ),
            [
                ("Access-Control-Allow-Origin", "https://a.example"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin, Access-Control-Request-Headers"),
                (
                    "Access-Control-Allow-Methods",
                    "GET,HEAD,PUT,PATCH,POST,DELETE"
                ),
                ("Access-Control-Allow-Headers", "x-token, content-type"),
                ("Access-Control-Max-Age", "600"),
            ]
        );
        assert_eq!(
            pairs(&cors.preflight_headers(Some("https://a.example"), None)),
            [
                ("Access-Control-Allow-Origin", "https://a.example"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
                (
                    "Access-Control-Allow-Methods",
                    "GET,HEAD,PUT,PATCH,POST,DELETE"
                ),
                ("Access-Control-Max-Age", "600"),
            ]
        );
    }

    #[test]
    fn ordinary_headers_ignore_request_headers() {
        let cors = Cors::default();
        assert_eq!(
            cors.build(Some("o"), Some("x-a"), false),
            cors.headers(Some("o"))
        );
    }

    #[test]
    fn parse_policy_strings() {
        assert_eq!(Cors::parse_policy("*"), CorsPolicy::AnyOrigin);
        assert_eq!(Cors::parse_policy(" * "), CorsPolicy::AnyOrigin);
        assert_eq!(
            Cors::parse_policy("https://a.example, *"),
            CorsPolicy::AnyOrigin
        );
        assert_eq!(Cors::parse_policy(""), CorsPolicy::Disabled);
        assert_eq!(Cors::parse_policy("  "), CorsPolicy::Disabled);
        assert_eq!(Cors::parse_policy(" , ,"), CorsPolicy::Disabled);
        assert_eq!(Cors::parse_policy("none"), CorsPolicy::Disabled);
        assert_eq!(Cors::parse_policy("NONE"), CorsPolicy::Disabled);
        assert_eq!(
            Cors::parse_policy("https://a.example"),
            CorsPolicy::Origins(vec!["https://a.example".into()])
        );
        assert_eq!(
            Cors::parse_policy("https://a.example/, http://localhost:3000 ,https://a.example,"),
            CorsPolicy::Origins(vec![
                "https://a.example".into(),
                "http://localhost:3000".into()
            ])
        );
    }

    #[test]
    fn default_is_any_origin_with_credentials() {
        let cors = Cors::default();
        assert_eq!(cors.policy(), &CorsPolicy::AnyOrigin);
        assert!(cors.credentials());
    }
}
