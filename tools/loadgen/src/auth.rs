//! `--auth SECRET_FILE`: a JSON Web Token per client, signed HS256 by the `jsonwebtoken` crate
//! with the secret a server was given with `--auth-jwt-secret-file` (docs/API.md, "Token
//! authentication": the file's bytes less one trailing newline). Each token names its client:
//! `sub` = the client's userId, `name` = its username, `exp` = now + `--auth-ttl` seconds
//! (default 600). The token goes in the Socket.IO CONNECT payload as `{"token": …}`.
//!
//! Owns only minting and the CONNECT payload; it never prints the secret or a token.

use crate::args::Args;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Mints tokens for one run.
pub struct Minter {
    key: EncodingKey,
    ttl_s: u64,
}

impl Minter {
    /// A minter for `secret` (the raw bytes the server uses), tokens valid `ttl_s` seconds.
    pub fn new(secret: &[u8], ttl_s: u64) -> Result<Minter, String> {
        if secret.is_empty() {
            return Err("the --auth secret file is empty".into());
        }
        let key = EncodingKey::from_secret(secret).map_err(|e| format!("--auth: {e}"))?;
        Ok(Minter { key, ttl_s })
    }

    /// The minter `--auth FILE` (and `--auth-ttl S`) ask for; `Ok(None)` without `--auth`.
    /// Errors name the file and what is wrong with it.
    pub fn from_args(args: &Args) -> Result<Option<Arc<Minter>>, String> {
        let Some(path) = args.str("auth") else {
            return Ok(None);
        };
        let mut secret =
            std::fs::read(path).map_err(|e| format!("--auth {path:?}: cannot read: {e}"))?;
        // The server drops one trailing newline (`echo secret > file`), and so must we.
        if secret.last() == Some(&b'\n') {
            secret.pop();
        }
        Minter::new(&secret, args.get("auth-ttl", 600)).map(|m| Some(Arc::new(m)))
    }

    /// An HS256 token with `sub` = `user_id`, `name` = `username`, `exp` = now + ttl.
    pub fn token(&self, user_id: &str, username: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims =
            json!({ "sub": user_id, "name": username, "iat": now, "exp": now + self.ttl_s });
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|e| format!("cannot sign a token: {e}"))
    }
}

/// The JSON object of a Socket.IO CONNECT (`40{…}`): `{"token"}` when `minter` is given, plus
/// `extra` fields (e.g. a recovery's `pid` and `offset`), or `None` when there is nothing to
/// send (a bare `40`).
pub fn connect_payload(
    minter: Option<&Minter>,
    user: &str,
    extra: &[(&str, &str)],
) -> Result<Option<String>, String> {
    let mut fields = Map::new();
    for (k, v) in extra {
        fields.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    if let Some(m) = minter {
        fields.insert("token".into(), Value::String(m.token(user, user)?));
    }
    Ok((!fields.is_empty()).then(|| Value::Object(fields).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn tokens_verify_with_the_secret_and_name_their_client() {
        let m = Minter::new(b"a secret of at least thirty-two bytes!!", 60).unwrap();
        let payload = connect_payload(Some(&m), "u7", &[("pid", "p1"), ("offset", "3:9")])
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["pid"], "p1");
        assert_eq!(v["offset"], "3:9");
        let token = v["token"].as_str().unwrap();
        let data = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(b"a secret of at least thirty-two bytes!!").unwrap(),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "u7");
        assert_eq!(data.claims["name"], "u7");
        let wrong = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(b"another secret").unwrap(),
            &Validation::new(Algorithm::HS256),
        );
        assert!(wrong.is_err());
    }

    #[test]
    fn without_auth_or_fields_the_connect_is_bare() {
        assert_eq!(connect_payload(None, "u1", &[]).unwrap(), None);
        assert_eq!(
            connect_payload(None, "u1", &[("pid", "x")]).unwrap(),
            Some(r#"{"pid":"x"}"#.to_string())
        );
    }
}
