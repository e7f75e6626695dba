//! The JWT authorizer against tokens signed with a real RSA key (fixtures/jwt-test-rsa.pem, published
//! in fixtures/jwt-test-jwks.json under kid `local-test-key-1`) and with the local HS256 secret.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use local_stack::authorizer::{
    AuthError, AuthorizerConfigError, JwtAuthorizer, JwtAuthorizerConfig, mint_hs256,
};
use serde_json::{Value, json};

const TEST_KEY_PEM: &str = include_str!("fixtures/jwt-test-rsa.pem");
/// A second key, not in the JWKS: signs tokens that must fail verification.
const OTHER_KEY_PEM: &str = include_str!("fixtures/jwt-test-rsa-other.pem");
const TEST_JWKS: &str = include_str!("fixtures/jwt-test-jwks.json");
const TEST_KID: &str = "local-test-key-1";

const ISSUER: &str = "https://issuer.example.test/pool-1";
const AUDIENCE: &str = "files-api";
const HS256_SECRET: &str = "test-secret-for-hs256";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn jwks() -> JwkSet {
    serde_json::from_str(TEST_JWKS).expect("fixture JWKS parses")
}

fn rsa_authorizer() -> JwtAuthorizer {
    JwtAuthorizer::new(JwtAuthorizerConfig {
        issuer: ISSUER.into(),
        audiences: vec!["some-other-client".into(), AUDIENCE.into()],
        hs256_secret: None,
        jwks: Some(jwks()),
    })
    .expect("valid config")
}

fn hs256_authorizer() -> JwtAuthorizer {
    JwtAuthorizer::new(JwtAuthorizerConfig {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        hs256_secret: Some(HS256_SECRET.into()),
        jwks: None,
    })
    .expect("valid config")
}

fn valid_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "tenant_id": "acme",
        "iat": now(),
        "exp": now() + 600,
        "scope": "files:read files:write",
        "groups": ["admins", "staff"],
        "email_verified": true,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn sign_rs256(pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("fixture PEM loads");
    jsonwebtoken::encode(&header, claims, &key).expect("signs")
}

fn rs256(claims: &Value) -> String {
    sign_rs256(TEST_KEY_PEM, Some(TEST_KID), claims)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn valid_rs256_token_is_accepted_with_flattened_claims_and_scopes() {
    let claims = valid_claims();
    let authorized = rsa_authorizer()
        .authorize(Some(&bearer(&rs256(&claims))))
        .expect("valid token");
    assert_eq!(authorized.claims["sub"], "alice");
    assert_eq!(authorized.claims["tenant_id"], "acme");
    assert_eq!(authorized.claims["iss"], ISSUER);
    assert_eq!(authorized.claims["exp"], claims["exp"].to_string());
    assert_eq!(authorized.claims["groups"], "[admins staff]");
    assert_eq!(authorized.claims["email_verified"], "true");
    assert_eq!(
        authorized.scopes,
        Some(vec!["files:read".to_owned(), "files:write".to_owned()])
    );
}

#[test]
fn token_is_accepted_without_the_bearer_prefix() {
    let token = rs256(&valid_claims());
    assert!(rsa_authorizer().authorize(Some(&token)).is_ok());
    assert!(
        rsa_authorizer()
            .authorize(Some(&format!("bearer {token}")))
            .is_ok()
    );
}

#[test]
fn token_signed_by_another_key_fails_signature() {
    let token = sign_rs256(OTHER_KEY_PEM, Some(TEST_KID), &valid_claims());
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::InvalidSignature)
    );
}

#[test]
fn tampered_payload_fails_signature() {
    let token = rs256(&valid_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = b64url(
        with(valid_claims(), "tenant_id", json!("someone-else"))
            .to_string()
            .as_bytes(),
    );
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&forged))),
        Err(AuthError::InvalidSignature)
    );
}

#[test]
fn wrong_issuer_is_refused_even_by_a_trailing_slash() {
    for issuer in [
        "https://evil.example.test/pool-1",
        "https://issuer.example.test/pool-1/",
    ] {
        let token = rs256(&with(valid_claims(), "iss", json!(issuer)));
        assert_eq!(
            rsa_authorizer().authorize(Some(&bearer(&token))),
            Err(AuthError::InvalidIssuer),
            "issuer {issuer}"
        );
    }
    let token = rs256(&without(valid_claims(), "iss"));
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::MissingClaim("iss".into()))
    );
}

#[test]
fn audience_must_match_via_aud_or_else_client_id() {
    let authorizer = rsa_authorizer();
    let check = |claims: Value| authorizer.authorize(Some(&bearer(&rs256(&claims))));

    assert_eq!(
        check(with(valid_claims(), "aud", json!("another-api"))),
        Err(AuthError::InvalidAudience)
    );
    assert!(check(with(valid_claims(), "aud", json!(["x", AUDIENCE]))).is_ok());
    assert_eq!(
        check(with(valid_claims(), "aud", json!(["x", "y"]))),
        Err(AuthError::InvalidAudience)
    );
    // No aud: client_id is used (Cognito access tokens).
    let no_aud = without(valid_claims(), "aud");
    assert!(check(with(no_aud.clone(), "client_id", json!(AUDIENCE))).is_ok());
    assert_eq!(
        check(with(no_aud.clone(), "client_id", json!("nope"))),
        Err(AuthError::InvalidAudience)
    );
    assert_eq!(check(no_aud), Err(AuthError::InvalidAudience));
    // With an aud present, a matching client_id does not rescue a wrong aud.
    let wrong_aud = with(valid_claims(), "aud", json!("another-api"));
    assert_eq!(
        check(with(wrong_aud, "client_id", json!(AUDIENCE))),
        Err(AuthError::InvalidAudience)
    );
}

#[test]
fn expired_token_is_refused() {
    let token = rs256(&with(valid_claims(), "exp", json!(now() - 60)));
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::Expired)
    );
    let token = rs256(&without(valid_claims(), "exp"));
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::MissingClaim("exp".into()))
    );
}

#[test]
fn expiry_within_the_five_second_leeway_is_tolerated() {
    let token = rs256(&with(valid_claims(), "exp", json!(now() - 2)));
    assert!(rsa_authorizer().authorize(Some(&bearer(&token))).is_ok());
}

#[test]
fn not_before_and_issued_at_in_the_future_are_refused() {
    let token = rs256(&with(valid_claims(), "nbf", json!(now() + 120)));
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::NotYetValid)
    );
    let token = rs256(&with(valid_claims(), "iat", json!(now() + 120)));
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::IssuedInFuture)
    );
    let token = rs256(&with(valid_claims(), "nbf", json!(now() - 10)));
    assert!(rsa_authorizer().authorize(Some(&bearer(&token))).is_ok());
}

#[test]
fn alg_none_is_refused() {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(valid_claims().to_string().as_bytes());
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&format!("{header}.{payload}.")))),
        Err(AuthError::UnsupportedAlgorithm("none".into()))
    );
    // Without the (empty) signature part it is not even a JWS.
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&format!("{header}.{payload}")))),
        Err(AuthError::MalformedToken)
    );
    assert_eq!(
        hs256_authorizer().authorize(Some(&format!("{header}.{payload}."))),
        Err(AuthError::UnsupportedAlgorithm("none".into()))
    );
}

#[test]
fn hs256_token_is_refused_when_only_a_jwks_is_configured() {
    // Algorithm confusion: an HMAC token, here even keyed with the published modulus, must not be
    // verified with the RSA public key material.
    let jwks: Value = serde_json::from_str(TEST_JWKS).unwrap();
    let modulus = jwks["keys"][0]["n"].as_str().unwrap();
    for secret in [modulus, HS256_SECRET] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(TEST_KID.into());
        let token = jsonwebtoken::encode(
            &header,
            &valid_claims(),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            rsa_authorizer().authorize(Some(&bearer(&token))),
            Err(AuthError::UnsupportedAlgorithm("HS256".into()))
        );
    }
}

#[test]
fn other_rsa_algorithms_are_refused() {
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some(TEST_KID.into());
    let key = EncodingKey::from_rsa_pem(TEST_KEY_PEM.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &valid_claims(), &key).unwrap();
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::UnsupportedAlgorithm("RS512".into()))
    );
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    let token = sign_rs256(TEST_KEY_PEM, Some("rotated-away"), &valid_claims());
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::UnknownKeyId("rotated-away".into()))
    );
    let token = sign_rs256(TEST_KEY_PEM, None, &valid_claims());
    assert_eq!(
        rsa_authorizer().authorize(Some(&bearer(&token))),
        Err(AuthError::MissingKeyId)
    );
}

#[test]
fn garbage_is_malformed() {
    for garbage in [
        "not-a-jwt",
        "a.b.c",
        "a.b.c.d",
        "Bearer %%%.%%%.%%%",
        &format!("{}.e30.", b64url(b"[1,2]")),
        &format!("{}.e30.", b64url(br#"{"typ":"JWT"}"#)),
    ] {
        assert_eq!(
            rsa_authorizer().authorize(Some(garbage)),
            Err(AuthError::MalformedToken),
            "{garbage}"
        );
    }
    // A well-formed header over a payload that is not JSON.
    let header = b64url(format!(r#"{{"alg":"RS256","kid":"{TEST_KID}"}}"#).as_bytes());
    let token = format!("{header}.{}.{}", b64url(b"not json"), b64url(b"sig"));
    assert!(rsa_authorizer().authorize(Some(&bearer(&token))).is_err());
}

#[test]
fn missing_or_empty_header_is_missing_token() {
    assert_eq!(
        rsa_authorizer().authorize(None),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        rsa_authorizer().authorize(Some("")),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        rsa_authorizer().authorize(Some("Bearer ")),
        Err(AuthError::MissingToken)
    );
    assert_eq!(AuthError::MissingToken.reason(), "missing_token");
}

#[test]
fn hs256_tokens_with_the_local_secret() {
    let authorizer = hs256_authorizer();
    let token = mint_hs256(HS256_SECRET, &valid_claims());
    let authorized = authorizer.authorize(Some(&bearer(&token))).expect("valid");
    assert_eq!(authorized.claims["tenant_id"], "acme");

    let wrong_secret = mint_hs256("another-secret", &valid_claims());
    assert_eq!(
        authorizer.authorize(Some(&bearer(&wrong_secret))),
        Err(AuthError::InvalidSignature)
    );
    let expired = mint_hs256(
        HS256_SECRET,
        &with(valid_claims(), "exp", json!(now() - 60)),
    );
    assert_eq!(
        authorizer.authorize(Some(&bearer(&expired))),
        Err(AuthError::Expired)
    );
    // RS256 needs a JWKS, which this authorizer does not have.
    assert_eq!(
        authorizer.authorize(Some(&bearer(&rs256(&valid_claims())))),
        Err(AuthError::UnsupportedAlgorithm("RS256".into()))
    );
}

#[test]
fn both_key_kinds_can_be_configured_together() {
    let authorizer = JwtAuthorizer::new(JwtAuthorizerConfig {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        hs256_secret: Some(HS256_SECRET.into()),
        jwks: Some(jwks()),
    })
    .unwrap();
    assert!(authorizer.authorize(Some(&rs256(&valid_claims()))).is_ok());
    assert!(
        authorizer
            .authorize(Some(&mint_hs256(HS256_SECRET, &valid_claims())))
            .is_ok()
    );
}

#[test]
fn scp_array_becomes_scopes_and_no_scope_claim_means_none() {
    let claims = with(without(valid_claims(), "scope"), "scp", json!(["a", "b"]));
    let authorized = rsa_authorizer().authorize(Some(&rs256(&claims))).unwrap();
    assert_eq!(
        authorized.scopes,
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(authorized.claims["scp"], "[a b]");

    let claims = without(valid_claims(), "scope");
    let authorized = rsa_authorizer().authorize(Some(&rs256(&claims))).unwrap();
    assert_eq!(authorized.scopes, None);
}

#[test]
fn config_is_checked() {
    let err = JwtAuthorizer::new(JwtAuthorizerConfig {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        hs256_secret: None,
        jwks: None,
    })
    .unwrap_err();
    assert!(matches!(err, AuthorizerConfigError::NoKeys));
    let err = JwtAuthorizer::new(JwtAuthorizerConfig {
        issuer: String::new(),
        audiences: vec![AUDIENCE.into()],
        hs256_secret: Some("s".into()),
        jwks: None,
    })
    .unwrap_err();
    assert!(matches!(err, AuthorizerConfigError::EmptyIssuer));
}

#[test]
fn local_defaults_accept_tokens_minted_with_them() {
    use local_stack::authorizer::{
        DEFAULT_LOCAL_AUDIENCE, DEFAULT_LOCAL_ISSUER, DEFAULT_LOCAL_SECRET,
    };
    let authorizer = JwtAuthorizer::new(JwtAuthorizerConfig {
        issuer: DEFAULT_LOCAL_ISSUER.into(),
        audiences: vec![DEFAULT_LOCAL_AUDIENCE.into()],
        hs256_secret: Some(DEFAULT_LOCAL_SECRET.into()),
        jwks: None,
    })
    .unwrap();
    let token = mint_hs256(
        DEFAULT_LOCAL_SECRET,
        &json!({"iss": DEFAULT_LOCAL_ISSUER, "aud": DEFAULT_LOCAL_AUDIENCE, "sub": "s", "exp": now() + 60}),
    );
    assert!(authorizer.authorize(Some(&bearer(&token))).is_ok());
}
