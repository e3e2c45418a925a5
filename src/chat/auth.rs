//! Token authentication (docs/API.md, "Token authentication"): the key the server was given,
//! which JWT algorithms it serves, and the check of the token a connection presents in its
//! Socket.IO CONNECT payload.
//!
//! Signatures and the registered claims (`exp`, `nbf`, `iss`, `aud`, the leeway) are checked
//! by the `jsonwebtoken` crate; this module decides which algorithms a key serves (by the key's
//! type, never by the token's header), reads `sub` and `name`, and maps every failure to one of
//! the three refusal reasons. It must never log, return or format the key or the secret, and
//! never accept `none` or an algorithm the key's type does not serve.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::validate::{self, Field, MAX_USER_ID_CHARS};
pub use crate::config::{AuthSettings, DEFAULT_JWT_LEEWAY_SECS};
use crate::socketio::Refusal;

/// What a key is, which decides the algorithms it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    /// The JWT algorithms a key of this kind verifies (RFC 7518 §3.1, RFC 8037 for EdDSA).
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyKind::Hmac => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            KeyKind::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            KeyKind::EcP256 => &[Algorithm::ES256],
            KeyKind::EcP384 => &[Algorithm::ES384],
            KeyKind::Ed25519 => &[Algorithm::EdDSA],
        }
    }

    /// The kind's name for `--print-config` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Hmac => "HMAC secret",
            KeyKind::Rsa => "RSA public key",
            KeyKind::EcP256 => "EC P-256 public key",
            KeyKind::EcP384 => "EC P-384 public key",
            KeyKind::Ed25519 => "Ed25519 public key",
        }
    }
}

/// Why a connection is refused: the `reason` of the refusal's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No token in the CONNECT payload (`auth.token` absent, null or empty).
    MissingToken,
    /// A token breaking any rule but a passed `exp` (bad signature or algorithm, `nbf` in
    /// the future, wrong `iss`/`aud`, no `exp`, a bad `sub` or `name`).
    InvalidToken,
    /// A token that was valid but whose `exp` (plus the leeway) has passed.
    ExpiredToken,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::InvalidToken => "invalid_token",
            Reason::ExpiredToken => "expired_token",
        }
    }

    /// The CONNECT_ERROR the client gets: socket.io-client reports it as `connect_error` with
    /// `err.message === "unauthorized"` and `err.data = { code: "unauthorized", reason }`.
    pub fn refusal(self) -> Refusal {
        Refusal {
            message: "unauthorized".to_owned(),
            data: Some(json!({ "code": "unauthorized", "reason": self.as_str() })),
        }
    }
}

/// The identity a valid token gives a connection, for the connection's life.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenIdentity {
    /// `sub`: the reader's `userId` (1–128 characters).
    pub user_id: String,
    /// `name`, when the token has one: the reader's `username` (username rules, trimmed).
    pub username: Option<String>,
    /// When the connection must close: `exp` plus the leeway, in seconds since the Unix epoch.
    pub close_at_unix_secs: f64,
}

impl TokenIdentity {
    /// How long from `now` until the connection must close (zero when it is due already);
    /// None when that is too far away to be a [`Duration`].
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let left = self.close_at_unix_secs - now.as_secs_f64();
        Duration::try_from_secs_f64(left.max(0.0)).ok()
    }
}

/// A key and the rules every token is checked against; built once at start.
pub struct TokenVerifier {
    key: DecodingKey,
    kind: KeyKind,
    validation: Validation,
    leeway_secs: u64,
}

/// The claims read from a token beyond what `jsonwebtoken` checks. A claim of the wrong
/// type fails the decoding, which makes the token invalid.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    name: Option<String>,
    exp: f64,
}

impl TokenVerifier {
    /// The verifier the settings ask for: None when no key file is set.
    ///
    /// # Errors
    ///
    /// Both key files set, a file that cannot be read, an empty secret, or a public key file
    /// that is not a PEM public key of a supported type. The message names the setting and
    /// the file, never the file's content.
    pub fn from_settings(settings: &AuthSettings) -> Result<Option<TokenVerifier>, String> {
        let read = |flag: &str, path: &Path| {
            std::fs::read(path).map_err(|e| format!("{flag}: cannot read {}: {e}", path.display()))
        };
        match (&settings.secret_file, &settings.public_key_file) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(
                "--auth-jwt-secret-file and --auth-jwt-public-key-file are both set; give one"
                    .to_owned(),
            ),
            (Some(path), None) => {
                let bytes = read("--auth-jwt-secret-file", path)?;
                TokenVerifier::from_secret(&bytes, settings)
                    .map(Some)
                    .map_err(|e| format!("--auth-jwt-secret-file {}: {e}", path.display()))
            }
            (None, Some(path)) => {
                let bytes = read("--auth-jwt-public-key-file", path)?;
                TokenVerifier::from_public_key_pem(&bytes, settings)
                    .map(Some)
                    .map_err(|e| format!("--auth-jwt-public-key-file {}: {e}", path.display()))
            }
        }
    }

    /// An HMAC verifier from a secret file's bytes (one trailing `\n` or `\r\n` is not part
    /// of the secret).
    ///
    /// # Errors
    ///
    /// An empty secret.
    pub fn from_secret(file: &[u8], settings: &AuthSettings) -> Result<TokenVerifier, String> {
        let secret = file
            .strip_suffix(b"\r\n")
            .or_else(|| file.strip_suffix(b"\n"))
            .unwrap_or(file);
        if secret.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        let key = DecodingKey::from_secret(secret).map_err(|_| "not a usable HMAC secret")?;
        Ok(TokenVerifier::new(key, KeyKind::Hmac, settings))
    }

    /// A verifier from a PEM public key (`PUBLIC KEY`, or `RSA PUBLIC KEY` for PKCS#1), its
    /// kind read from the key itself.
    ///
    /// # Errors
    ///
    /// Not PEM, a private key or certificate, a key `jsonwebtoken` cannot read, or a curve
    /// other than P-256, P-384 and Ed25519.
    pub fn from_public_key_pem(
        pem_text: &[u8],
        settings: &AuthSettings,
    ) -> Result<TokenVerifier, String> {
        let parsed = pem::parse(pem_text).map_err(|_| "not a PEM file")?;
        match parsed.tag() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
            tag if tag.contains("PRIVATE") => {
                return Err("holds a private key; give the public key".to_owned())
            }
            tag => return Err(format!("holds a {tag:?}, not a PEM public key")),
        }
        // The key's type and curve come from its SubjectPublicKeyInfo (RFC 5280 §4.1.2.7,
        // RFC 5480 for EC, RFC 8410 for Ed25519); a PKCS#1 `RSA PUBLIC KEY` is RSA.
        let kind = if parsed.tag() == "RSA PUBLIC KEY" {
            KeyKind::Rsa
        } else {
            let info = spki::SubjectPublicKeyInfoRef::try_from(parsed.contents())
                .map_err(|_| "not a readable public key (bad SubjectPublicKeyInfo)")?;
            match info.algorithm.oid {
                oid::RSA_ENCRYPTION => KeyKind::Rsa,
                oid::EC_PUBLIC_KEY => match info.algorithm.parameters_oid() {
                    Ok(oid::SECP256R1) => KeyKind::EcP256,
                    Ok(oid::SECP384R1) => KeyKind::EcP384,
                    _ => return Err("an EC key on a curve other than P-256 or P-384".to_owned()),
                },
                oid::ED25519 => KeyKind::Ed25519,
                _ => return Err("not an RSA, EC (P-256, P-384) or Ed25519 public key".to_owned()),
            }
        };
        let key = match kind {
            KeyKind::Rsa => DecodingKey::from_rsa_pem(pem_text),
            KeyKind::EcP256 | KeyKind::EcP384 => DecodingKey::from_ec_pem(pem_text),
            KeyKind::Ed25519 => DecodingKey::from_ed_pem(pem_text),
            KeyKind::Hmac => return Err("not a public key".to_owned()),
        }
        .map_err(|_| "the public key cannot be read (malformed key)")?;
        // `Jwk::from_decoding_key` reads the key's numbers (the RSA modulus, the EC point, the
        // Ed25519 point), which fails for a malformed key; its curve must be the declared one.
        let jwk = Jwk::from_decoding_key(&key, None)
            .map_err(|_| "the public key cannot be read (malformed key)")?;
        let read_as = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(KeyKind::Rsa),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(KeyKind::EcP256),
                EllipticCurve::P384 => Some(KeyKind::EcP384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some(KeyKind::Ed25519)
            }
            _ => None,
        };
        if read_as != Some(kind) {
            return Err("the public key cannot be read (malformed key)".to_owned());
        }
        Ok(TokenVerifier::new(key, kind, settings))
    }

    fn new(key: DecodingKey, kind: KeyKind, settings: &AuthSettings) -> TokenVerifier {
        // `new` takes one algorithm; the list replaces it at once.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = kind.algorithms().to_vec();
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // `jsonwebtoken` compares `iss` and `aud` only when the token has them: a configured
        // one makes the claim required too.
        let mut required = vec!["exp"];
        match &settings.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience, a token's `aud` is not checked.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        TokenVerifier {
            key,
            kind,
            validation,
            leeway_secs: settings.leeway_secs,
        }
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Check the `auth` object of a CONNECT (`{ token: "<JWT>" }`) at the current time.
    ///
    /// # Errors
    ///
    /// The [`Reason`] to refuse the connection with.
    pub fn check_auth(&self, auth: &Value) -> Result<TokenIdentity, Reason> {
        match auth.get("token") {
            None | Some(Value::Null) => Err(Reason::MissingToken),
            Some(Value::String(token)) if token.is_empty() => Err(Reason::MissingToken),
            Some(Value::String(token)) => self.verify(token),
            Some(_) => Err(Reason::InvalidToken),
        }
    }

    /// Verify one token at the current time (`jsonwebtoken` reads the system clock).
    ///
    /// # Errors
    ///
    /// [`Reason::ExpiredToken`] for a passed `exp` (beyond the leeway) on a token otherwise
    /// valid as far as checked; [`Reason::InvalidToken`] for anything else.
    pub fn verify(&self, token: &str) -> Result<TokenIdentity, Reason> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => Reason::ExpiredToken,
                _ => Reason::InvalidToken,
            },
        )?;
        let claims = data.claims;
        let user_id = claims.sub.ok_or(Reason::InvalidToken)?;
        let chars = user_id.chars().count();
        if chars == 0 || chars > MAX_USER_ID_CHARS {
            return Err(Reason::InvalidToken);
        }
        let username = match claims.name {
            None => None,
            Some(name) => Some(
                validate::username(Some(&Field::Str(name.into())))
                    .map_err(|_| Reason::InvalidToken)?,
            ),
        };
        Ok(TokenIdentity {
            user_id,
            username,
            close_at_unix_secs: claims.exp + self.leeway_secs as f64,
        })
    }
}

/// Most `auth_refused` log lines per second, all shards together (refusals are caused by
/// clients, who must not be able to flood the log).
pub const REFUSAL_LOG_RATE: u64 = 20;

static REFUSAL_LOG: crate::logging::Throttle = crate::logging::Throttle::new(REFUSAL_LOG_RATE);

/// Log a refused connection at info level: the reason only, never the token.
pub fn log_refusal(shard: usize, reason: Reason) {
    if !crate::logging::enabled(crate::logging::Level::Info) {
        return;
    }
    if let Some(suppressed) = REFUSAL_LOG.admit() {
        crate::log_info!(
            "auth_refused",
            shard = shard,
            reason = reason.as_str(),
            suppressed_before = suppressed
        );
    }
}

/// The object identifiers of the supported public key types.
mod oid {
    use spki::ObjectIdentifier;
    /// rsaEncryption (RFC 8017).
    pub const RSA_ENCRYPTION: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    /// id-ecPublicKey (RFC 5480).
    pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    /// secp256r1, NIST P-256 (RFC 5480).
    pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    /// secp384r1, NIST P-384 (RFC 5480).
    pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    /// id-Ed25519 (RFC 8410).
    pub const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
}

#[cfg(test)]
mod tests;
