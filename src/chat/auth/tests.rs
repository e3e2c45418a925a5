//! The verifier against tokens signed here with `jsonwebtoken`'s encoder and the keys in
//! `test_keys/` (made with openssl for these tests only): which algorithm each key type takes,
//! algorithm confusion, the registered claims, `sub` and `name`.

use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};

const SECRET: &[u8] = b"a test secret of the chat, 32 bytes+";

struct Pair {
    kind: KeyKind,
    private: &'static [u8],
    public: &'static [u8],
}

const PAIRS: [Pair; 4] = [
    Pair {
        kind: KeyKind::Rsa,
        private: include_bytes!("test_keys/rsa.pem"),
        public: include_bytes!("test_keys/rsa.pub.pem"),
    },
    Pair {
        kind: KeyKind::EcP256,
        private: include_bytes!("test_keys/p256.pem"),
        public: include_bytes!("test_keys/p256.pub.pem"),
    },
    Pair {
        kind: KeyKind::EcP384,
        private: include_bytes!("test_keys/p384.pem"),
        public: include_bytes!("test_keys/p384.pub.pem"),
    },
    Pair {
        kind: KeyKind::Ed25519,
        private: include_bytes!("test_keys/ed25519.pem"),
        public: include_bytes!("test_keys/ed25519.pub.pem"),
    },
];

const ALL: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({ "sub": "reader-1", "exp": now() + 600 })
}

fn settings() -> AuthSettings {
    AuthSettings::default()
}

/// The key that signs `alg` in these tests: the secret for HS*, else the private key of the
/// key type whose algorithms include it (P-256 for ES256, P-384 for ES384).
fn signing_key(alg: Algorithm) -> EncodingKey {
    if KeyKind::Hmac.algorithms().contains(&alg) {
        return EncodingKey::from_secret(SECRET).unwrap();
    }
    let pair = PAIRS
        .iter()
        .find(|p| p.kind.algorithms().contains(&alg))
        .unwrap();
    match pair.kind {
        KeyKind::Rsa => EncodingKey::from_rsa_pem(pair.private).unwrap(),
        KeyKind::EcP256 | KeyKind::EcP384 => EncodingKey::from_ec_pem(pair.private).unwrap(),
        KeyKind::Ed25519 => EncodingKey::from_ed_pem(pair.private).unwrap(),
        KeyKind::Hmac => unreachable!(),
    }
}

fn sign(alg: Algorithm, claims: &Value) -> String {
    encode(&Header::new(alg), claims, &signing_key(alg)).unwrap()
}

fn hmac() -> TokenVerifier {
    TokenVerifier::from_secret(SECRET, &settings()).unwrap()
}

/// `header.payload.` with the header's `alg` as given and no signature, as an attacker
/// would write an unsigned token.
fn unsigned(header: &Value, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!("{}.{}.", b64(header), b64(claims))
}

#[test]
fn each_key_type_takes_exactly_its_algorithms() {
    let mut verifiers = vec![(KeyKind::Hmac, hmac())];
    for pair in &PAIRS {
        let verifier = TokenVerifier::from_public_key_pem(pair.public, &settings()).unwrap();
        assert_eq!(verifier.kind(), pair.kind);
        verifiers.push((pair.kind, verifier));
    }
    let expected: [(KeyKind, &[&str]); 5] = [
        (KeyKind::Hmac, &["HS256", "HS384", "HS512"]),
        (
            KeyKind::Rsa,
            &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        ),
        (KeyKind::EcP256, &["ES256"]),
        (KeyKind::EcP384, &["ES384"]),
        (KeyKind::Ed25519, &["EdDSA"]),
    ];
    for (kind, verifier) in &verifiers {
        let accepted = expected.iter().find(|(k, _)| k == kind).unwrap().1;
        for alg in ALL {
            let token = sign(alg, &claims());
            let name = format!("{alg:?}");
            let result = verifier.verify(&token);
            if accepted.contains(&name.as_str()) {
                let identity = result.unwrap_or_else(|e| panic!("{kind:?} {name}: {e:?}"));
                assert_eq!(identity.user_id, "reader-1");
            } else {
                assert_eq!(result, Err(Reason::InvalidToken), "{kind:?} took {name}");
            }
        }
    }
}

#[test]
fn an_rsa_pkcs1_public_key_is_an_rsa_key() {
    let verifier = TokenVerifier::from_public_key_pem(
        include_bytes!("test_keys/rsa.pkcs1.pub.pem"),
        &settings(),
    )
    .unwrap();
    assert_eq!(verifier.kind(), KeyKind::Rsa);
    assert!(verifier.verify(&sign(Algorithm::PS512, &claims())).is_ok());
}

#[test]
fn hmac_with_the_public_key_text_as_secret_is_refused() {
    for pair in &PAIRS {
        let verifier = TokenVerifier::from_public_key_pem(pair.public, &settings()).unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let forged = encode(
                &Header::new(alg),
                &claims(),
                &EncodingKey::from_secret(pair.public).unwrap(),
            )
            .unwrap();
            assert_eq!(verifier.verify(&forged), Err(Reason::InvalidToken));
        }
    }
}

#[test]
fn alg_none_and_unsigned_tokens_are_refused() {
    let verifier = hmac();
    for alg in ["none", "None", "NONE", "HS256"] {
        let token = unsigned(&json!({ "alg": alg, "typ": "JWT" }), &claims());
        assert_eq!(verifier.verify(&token), Err(Reason::InvalidToken), "{alg}");
    }
    for junk in ["", "a", "a.b", "a.b.c", "...", "\u{0}.\u{0}.\u{0}"] {
        assert_eq!(verifier.verify(junk), Err(Reason::InvalidToken), "{junk:?}");
    }
}

#[test]
fn exp_is_required_and_only_a_passed_exp_is_expired() {
    let verifier = TokenVerifier::from_secret(
        SECRET,
        &AuthSettings {
            leeway_secs: 0,
            ..settings()
        },
    )
    .unwrap();
    let t = now();
    let token = |claims: Value| sign(Algorithm::HS256, &claims);
    assert_eq!(
        verifier.verify(&token(json!({ "sub": "u" }))),
        Err(Reason::InvalidToken)
    );
    assert_eq!(
        verifier.verify(&token(json!({ "sub": "u", "exp": "soon" }))),
        Err(Reason::InvalidToken)
    );
    assert_eq!(
        verifier.verify(&token(json!({ "sub": "u", "exp": t - 5 }))),
        Err(Reason::ExpiredToken)
    );
    assert!(verifier
        .verify(&token(json!({ "sub": "u", "exp": t + 5 })))
        .is_ok());
    // `nbf` in the future is invalid, not expired; one in the past is fine.
    assert_eq!(
        verifier.verify(&token(json!({ "sub": "u", "exp": t + 60, "nbf": t + 30 }))),
        Err(Reason::InvalidToken)
    );
    assert!(verifier
        .verify(&token(json!({ "sub": "u", "exp": t + 60, "nbf": t - 1 })))
        .is_ok());
    // An expired token with a bad signature is invalid: nothing is believed before the
    // signature is.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "u", "exp": t - 5 }),
        &EncodingKey::from_secret(b"another secret").unwrap(),
    )
    .unwrap();
    assert_eq!(verifier.verify(&forged), Err(Reason::InvalidToken));
}

#[test]
fn the_leeway_tolerates_skew_on_exp_and_nbf_and_moves_the_close() {
    let verifier = TokenVerifier::from_secret(
        SECRET,
        &AuthSettings {
            leeway_secs: 30,
            ..settings()
        },
    )
    .unwrap();
    let t = now();
    let token = |claims: Value| sign(Algorithm::HS256, &claims);
    let identity = verifier
        .verify(&token(json!({ "sub": "u", "exp": t - 10, "nbf": t + 10 })))
        .unwrap();
    assert_eq!(identity.close_at_unix_secs, (t - 10 + 30) as f64);
    let left = identity.remaining(SystemTime::now()).unwrap();
    assert!(
        left <= Duration::from_secs(20) && left >= Duration::from_secs(18),
        "{left:?}"
    );
    assert_eq!(
        verifier.verify(&token(json!({ "sub": "u", "exp": t - 40 }))),
        Err(Reason::ExpiredToken)
    );
    assert_eq!(
        verifier.verify(&token(json!({ "sub": "u", "exp": t + 60, "nbf": t + 40 }))),
        Err(Reason::InvalidToken)
    );
}

#[test]
fn issuer_and_audience_are_checked_only_when_set() {
    let t = now();
    let token = |claims: Value| sign(Algorithm::HS256, &claims);
    let open = hmac();
    assert!(open
        .verify(&token(
            json!({ "sub": "u", "exp": t + 60, "iss": "x", "aud": "y" })
        ))
        .is_ok());
    let strict = TokenVerifier::from_secret(
        SECRET,
        &AuthSettings {
            issuer: Some("https://api.readrealm.example".into()),
            audience: Some("readrealm-chat".into()),
            ..settings()
        },
    )
    .unwrap();
    let good = json!({ "sub": "u", "exp": t + 60, "iss": "https://api.readrealm.example", "aud": "readrealm-chat" });
    assert!(strict.verify(&token(good.clone())).is_ok());
    let mut listed = good.clone();
    listed["aud"] = json!(["other", "readrealm-chat"]);
    assert!(strict.verify(&token(listed)).is_ok());
    for (key, value) in [
        ("iss", json!("https://evil.example")),
        ("aud", json!("other")),
        ("aud", json!(["other"])),
        ("iss", json!(null)),
    ] {
        let mut bad = good.clone();
        bad[key] = value.clone();
        assert_eq!(
            strict.verify(&token(bad)),
            Err(Reason::InvalidToken),
            "{key}={value}"
        );
    }
    for key in ["iss", "aud"] {
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove(key);
        assert_eq!(
            strict.verify(&token(missing)),
            Err(Reason::InvalidToken),
            "{key}"
        );
    }
}

#[test]
fn sub_is_the_user_id_and_name_follows_the_username_rules() {
    let verifier = hmac();
    let exp = now() + 60;
    let token = |claims: Value| sign(Algorithm::HS512, &claims);
    let identity = verifier
        .verify(&token(
            json!({ "sub": "u-7", "name": "  Ishmael ", "exp": exp }),
        ))
        .unwrap();
    assert_eq!(identity.user_id, "u-7");
    assert_eq!(identity.username.as_deref(), Some("Ishmael"));
    assert_eq!(
        verifier
            .verify(&token(json!({ "sub": "u-7", "exp": exp })))
            .unwrap()
            .username,
        None
    );
    assert!(verifier
        .verify(&token(json!({ "sub": "é".repeat(128), "exp": exp })))
        .is_ok());
    for bad in [
        json!({ "exp": exp }),
        json!({ "sub": "", "exp": exp }),
        json!({ "sub": "x".repeat(129), "exp": exp }),
        json!({ "sub": 7, "exp": exp }),
        json!({ "sub": "u", "name": "", "exp": exp }),
        json!({ "sub": "u", "name": "   ", "exp": exp }),
        json!({ "sub": "u", "name": "x".repeat(65), "exp": exp }),
        json!({ "sub": "u", "name": "a\u{7}b", "exp": exp }),
        json!({ "sub": "u", "name": 5, "exp": exp }),
    ] {
        assert_eq!(
            verifier.verify(&token(bad.clone())),
            Err(Reason::InvalidToken),
            "{bad}"
        );
    }
}

#[test]
fn the_connect_payload_gives_the_token() {
    let verifier = hmac();
    for missing in [
        json!({}),
        json!({ "token": null }),
        json!({ "token": "" }),
        json!(null),
    ] {
        assert_eq!(
            verifier.check_auth(&missing),
            Err(Reason::MissingToken),
            "{missing}"
        );
    }
    assert_eq!(
        verifier.check_auth(&json!({ "token": 5 })),
        Err(Reason::InvalidToken)
    );
    let token = sign(Algorithm::HS384, &claims());
    assert!(verifier.check_auth(&json!({ "token": token })).is_ok());
    let refusal = Reason::ExpiredToken.refusal();
    assert_eq!(refusal.message, "unauthorized");
    assert_eq!(
        refusal.data,
        Some(json!({ "code": "unauthorized", "reason": "expired_token" }))
    );
}

#[test]
fn secret_files_lose_one_trailing_newline() {
    let t = now();
    let with = |secret: &[u8]| {
        encode(
            &Header::new(Algorithm::HS256),
            &json!({ "sub": "u", "exp": t + 60 }),
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    };
    for file in [&b"s3cret"[..], b"s3cret\n", b"s3cret\r\n"] {
        let verifier = TokenVerifier::from_secret(file, &settings()).unwrap();
        assert!(verifier.verify(&with(b"s3cret")).is_ok(), "{file:?}");
    }
    // Only one newline goes; a second one is part of the secret.
    let verifier = TokenVerifier::from_secret(b"s3cret\n\n", &settings()).unwrap();
    assert!(verifier.verify(&with(b"s3cret\n")).is_ok());
    assert_eq!(verifier.verify(&with(b"s3cret")), Err(Reason::InvalidToken));
    for empty in [&b""[..], b"\n", b"\r\n"] {
        assert!(TokenVerifier::from_secret(empty, &settings()).is_err());
    }
}

#[test]
fn bad_key_files_are_refused_with_messages_that_hold_no_key() {
    let secp256k1 = include_bytes!("test_keys/k256.pub.pem");
    let private = include_bytes!("test_keys/p256.pem");
    let cases: [(&[u8], &str); 5] = [
        (b"not a pem", "not a PEM file"),
        (private, "private key"),
        (secp256k1, "P-256"),
        (
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "public key",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "CERTIFICATE",
        ),
    ];
    for (file, expected) in cases {
        let err = TokenVerifier::from_public_key_pem(file, &settings())
            .err()
            .unwrap_or_else(|| panic!("accepted {}", String::from_utf8_lossy(file)));
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("BEGIN") && !err.contains("MII"), "{err}");
    }
    let dir = std::env::temp_dir().join(format!("rr-auth-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, b"hunter2-the-secret\n").unwrap();
    let both = AuthSettings {
        secret_file: Some(secret.clone()),
        public_key_file: Some(secret.clone()),
        ..settings()
    };
    assert!(TokenVerifier::from_settings(&both)
        .err()
        .unwrap()
        .contains("both"));
    let wrong_file = AuthSettings {
        public_key_file: Some(secret.clone()),
        ..settings()
    };
    let err = TokenVerifier::from_settings(&wrong_file).err().unwrap();
    assert!(
        err.contains("--auth-jwt-public-key-file") && !err.contains("hunter2"),
        "{err}"
    );
    let missing = AuthSettings {
        secret_file: Some(dir.join("nope")),
        ..settings()
    };
    assert!(TokenVerifier::from_settings(&missing)
        .err()
        .unwrap()
        .contains("cannot read"));
    let good = AuthSettings {
        secret_file: Some(secret),
        ..settings()
    };
    assert_eq!(
        TokenVerifier::from_settings(&good).unwrap().unwrap().kind(),
        KeyKind::Hmac
    );
    assert!(TokenVerifier::from_settings(&settings()).unwrap().is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
