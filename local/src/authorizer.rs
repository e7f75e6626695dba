//! Verifies bearer tokens the way the API Gateway HTTP API JWT authorizer does
//! ("Controlling access to HTTP APIs with JWT authorizers" in the API Gateway developer guide), so
//! that a request the local gateway lets through would also get through in AWS, and the handler sees
//! the claims in the same shape.
//!
//! What is checked, in order: the token is taken from the `Authorization` header, with or without a
//! `Bearer ` prefix; with a JWKS the algorithm must be RS256 and the header's `kid` must name a key of
//! the set; with the local shared secret the algorithm must be HS256; then the signature, `exp` in the
//! future (required), `nbf` and `iat` (when present) not in the future, `iss` equal to the configured
//! issuer, and `aud` (a string or an array) containing one of the configured audiences, or, only when
//! there is no `aud`, `client_id` being one of them.
//!
//! AWS answers every failure with the same 401; [`AuthError`] says why, for the gateway's log only.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Shared HS256 secret of the local stack when `FILES_JWT_SECRET` is not set.
pub const DEFAULT_LOCAL_SECRET: &str = "local-dev-secret-change-me";
/// Token issuer of the local stack when `FILES_JWT_ISSUER` is not set.
pub const DEFAULT_LOCAL_ISSUER: &str = "http://127.0.0.1:3000/local-issuer";
/// Token audience of the local stack when `FILES_JWT_AUDIENCE` is not set.
pub const DEFAULT_LOCAL_AUDIENCE: &str = "files-api";

/// Environment variable with the local HS256 secret.
pub const SECRET_ENV: &str = "FILES_JWT_SECRET";
/// Environment variable with the local issuer.
pub const ISSUER_ENV: &str = "FILES_JWT_ISSUER";
/// Environment variable with the local audience (comma-separated for several, like the
/// `JwtAudience` CommaDelimitedList parameter of the template).
pub const AUDIENCE_ENV: &str = "FILES_JWT_AUDIENCE";

/// Clock skew tolerated on `exp`, `nbf` and `iat`. API Gateway documents no leeway; a few seconds keep
/// tokens minted by a process on this machine from failing on a second boundary, without making an
/// expired token usable for any meaningful time.
const CLOCK_SKEW_LEEWAY_SECONDS: u64 = 5;

/// What the authorizer trusts.
#[derive(Debug, Clone)]
pub struct JwtAuthorizerConfig {
    /// Required value of `iss`, compared exactly (no trailing-slash normalisation, as in AWS).
    pub issuer: String,
    /// Accepted values of `aud` (or of `client_id` when a token has no `aud`).
    pub audiences: Vec<String>,
    /// Local shared secret: enables HS256 tokens. API Gateway itself only accepts RS256 from a JWKS;
    /// this exists so the local stack can mint tokens without an identity provider.
    pub hs256_secret: Option<String>,
    /// Public keys, as an identity provider publishes them at its `jwks_uri`: enables RS256 tokens.
    pub jwks: Option<JwkSet>,
}

impl JwtAuthorizerConfig {
    /// The local stack's configuration: HS256 with `FILES_JWT_SECRET`, `FILES_JWT_ISSUER` and
    /// `FILES_JWT_AUDIENCE`, each falling back to the `DEFAULT_LOCAL_*` constants. `mint-token`
    /// reads the same variables, so its tokens are accepted by a stack started in the same shell.
    pub fn local_from_env() -> JwtAuthorizerConfig {
        let read = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        JwtAuthorizerConfig {
            issuer: read(ISSUER_ENV, DEFAULT_LOCAL_ISSUER),
            audiences: read(AUDIENCE_ENV, DEFAULT_LOCAL_AUDIENCE)
                .split(',')
                .map(str::trim)
                .filter(|audience| !audience.is_empty())
                .map(str::to_owned)
                .collect(),
            hs256_secret: Some(read(SECRET_ENV, DEFAULT_LOCAL_SECRET)),
            jwks: None,
        }
    }
}

/// A configuration the authorizer cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerConfigError {
    #[error("the issuer must not be empty")]
    EmptyIssuer,
    #[error("at least one audience is required (API Gateway requires one too)")]
    NoAudiences,
    #[error("neither an HS256 secret nor a JWKS is configured: no token could ever be accepted")]
    NoKeys,
    #[error("the HS256 secret must not be empty")]
    EmptySecret,
    #[error("JWKS key {kid:?} is unusable: {reason}")]
    InvalidJwk { kid: String, reason: String },
}

/// Why a request was refused. Every variant means 401 to the client; the variant is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token in the Authorization header")]
    MissingToken,
    #[error("the token is not a well-formed JWT")]
    MalformedToken,
    #[error("algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("the token header has no kid")]
    MissingKeyId,
    #[error("kid {0:?} is not in the JWKS")]
    UnknownKeyId(String),
    #[error("the signature does not verify")]
    InvalidSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf in the future)")]
    NotYetValid,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the issuer does not match")]
    InvalidIssuer,
    #[error("neither aud nor client_id matches an accepted audience")]
    InvalidAudience,
    #[error("required claim {0:?} is missing")]
    MissingClaim(String),
    #[error("claim {0:?} has the wrong type")]
    InvalidClaim(String),
    #[error("the token was rejected: {0}")]
    Rejected(String),
}

impl AuthError {
    /// Short, stable name for structured logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::MalformedToken => "malformed_token",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::MissingKeyId => "missing_kid",
            AuthError::UnknownKeyId(_) => "unknown_kid",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::InvalidIssuer => "invalid_issuer",
            AuthError::InvalidAudience => "invalid_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim(_) => "invalid_claim",
            AuthError::Rejected(_) => "rejected",
        }
    }
}

/// What the authorizer hands on to the integration (`requestContext.authorizer.jwt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedJwt {
    /// Every claim, flattened to a string as API Gateway does (see [`claim_text`]).
    pub claims: HashMap<String, String>,
    /// From `scope` (space separated) or else `scp` (array or space-separated string); `None` when
    /// the token carries neither.
    pub scopes: Option<Vec<String>>,
}

/// Verifies tokens against one [`JwtAuthorizerConfig`].
pub struct JwtAuthorizer {
    issuer: String,
    audiences: Vec<String>,
    hs256_key: Option<DecodingKey>,
    /// RS256 keys by `kid`; `None` when no JWKS is configured (RS256 then refused outright).
    rsa_keys_by_kid: Option<HashMap<String, DecodingKey>>,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthorizer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("hs256", &self.hs256_key.is_some())
            .field(
                "rsa_kids",
                &self
                    .rsa_keys_by_kid
                    .as_ref()
                    .map(|keys| keys.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

impl JwtAuthorizer {
    /// Checks the configuration and prepares the verification keys.
    pub fn new(config: JwtAuthorizerConfig) -> Result<Self, AuthorizerConfigError> {
        if config.issuer.is_empty() {
            return Err(AuthorizerConfigError::EmptyIssuer);
        }
        if config.audiences.iter().all(String::is_empty) {
            return Err(AuthorizerConfigError::NoAudiences);
        }
        if config.hs256_secret.is_none() && config.jwks.is_none() {
            return Err(AuthorizerConfigError::NoKeys);
        }
        let hs256_key = match config.hs256_secret {
            Some(secret) if secret.is_empty() => return Err(AuthorizerConfigError::EmptySecret),
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())),
            None => None,
        };
        let rsa_keys_by_kid = config.jwks.map(rsa_keys_by_kid).transpose()?;
        Ok(JwtAuthorizer {
            issuer: config.issuer,
            audiences: config.audiences,
            hs256_key,
            rsa_keys_by_kid,
        })
    }

    /// Verifies the token in an `Authorization` header value (`None` when the header is absent).
    pub fn authorize(
        &self,
        authorization_header: Option<&str>,
    ) -> Result<AuthorizedJwt, AuthError> {
        let token = bearer_token(authorization_header).ok_or(AuthError::MissingToken)?;
        let header = read_token_header(token)?;
        let (algorithm, key) = self.verification_key(&header)?;

        let mut validation = Validation::new(algorithm);
        validation.leeway = CLOCK_SKEW_LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        // Issuer and audience are checked below, by hand: AWS falls back to `client_id` when there
        // is no `aud`, which jsonwebtoken's audience check cannot express.
        validation.validate_aud = false;

        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|error| map_jwt_error(error.into_kind(), &header.alg))?
            .claims;

        self.check_issued_at(&claims)?;
        self.check_issuer(&claims)?;
        self.check_audience(&claims)?;

        Ok(AuthorizedJwt {
            scopes: scopes(&claims),
            claims: claims
                .iter()
                .map(|(name, value)| (name.clone(), claim_text(value)))
                .collect(),
        })
    }

    fn verification_key(
        &self,
        header: &TokenHeader,
    ) -> Result<(Algorithm, &DecodingKey), AuthError> {
        match (header.alg.as_str(), &self.hs256_key, &self.rsa_keys_by_kid) {
            ("RS256", _, Some(rsa_keys)) => {
                let kid = header.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
                let key = rsa_keys
                    .get(kid)
                    .ok_or_else(|| AuthError::UnknownKeyId(kid.to_owned()))?;
                Ok((Algorithm::RS256, key))
            }
            ("HS256", Some(secret), _) => Ok((Algorithm::HS256, secret)),
            // Everything else, `none` included, and HS256 when only a JWKS is configured (the
            // classic confusion of an RSA public key used as an HMAC secret).
            (other, _, _) => Err(AuthError::UnsupportedAlgorithm(other.to_owned())),
        }
    }

    fn check_issued_at(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let Some(issued_at) = claims.get("iat") else {
            return Ok(());
        };
        let issued_at =
            numeric_date(issued_at).ok_or_else(|| AuthError::InvalidClaim("iat".into()))?;
        let now = jsonwebtoken::get_current_timestamp();
        if issued_at > now.saturating_add(CLOCK_SKEW_LEEWAY_SECONDS) {
            return Err(AuthError::IssuedInFuture);
        }
        Ok(())
    }

    fn check_issuer(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        match claims.get("iss") {
            Some(Value::String(issuer)) if *issuer == self.issuer => Ok(()),
            Some(Value::String(_)) => Err(AuthError::InvalidIssuer),
            Some(_) => Err(AuthError::InvalidClaim("iss".into())),
            None => Err(AuthError::MissingClaim("iss".into())),
        }
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let accepted = |candidate: &str| self.audiences.iter().any(|a| a == candidate);
        let matches = match claims.get("aud") {
            Some(Value::String(audience)) => accepted(audience),
            Some(Value::Array(audiences)) => {
                audiences.iter().filter_map(Value::as_str).any(accepted)
            }
            Some(_) => return Err(AuthError::InvalidClaim("aud".into())),
            // Only without `aud` does AWS look at `client_id` (Cognito access tokens have no aud).
            None => match claims.get("client_id") {
                Some(Value::String(client_id)) => accepted(client_id),
                _ => false,
            },
        };
        if matches {
            Ok(())
        } else {
            Err(AuthError::InvalidAudience)
        }
    }
}

fn rsa_keys_by_kid(jwks: JwkSet) -> Result<HashMap<String, DecodingKey>, AuthorizerConfigError> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        // API Gateway selects keys by kid only, and supports only RSA keys: skip the rest rather
        // than fail, as identity providers often publish other keys (e.g. for encryption) alongside.
        let (Some(kid), AlgorithmParameters::RSA(_)) = (&jwk.common.key_id, &jwk.algorithm) else {
            continue;
        };
        let key =
            DecodingKey::from_jwk(jwk).map_err(|error| AuthorizerConfigError::InvalidJwk {
                kid: kid.clone(),
                reason: error.to_string(),
            })?;
        keys.insert(kid.clone(), key);
    }
    Ok(keys)
}

/// The token of an `Authorization` header value, with or without a `Bearer ` prefix.
fn bearer_token(authorization_header: Option<&str>) -> Option<&str> {
    let value = authorization_header?.trim();
    // A bare scheme ("Bearer " once trimmed) carries no token.
    if value.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// The JOSE header fields the authorizer needs, read before anything is verified.
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

/// Reads the header by hand rather than with `jsonwebtoken::decode_header`, which fails with a
/// generic JSON error on algorithms it does not know (`none`); the reason should say what happened.
fn read_token_header(token: &str) -> Result<TokenHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(encoded_header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::MalformedToken);
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .map_err(|_| AuthError::MalformedToken)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header_bytes).map_err(|_| AuthError::MalformedToken)?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(AuthError::MalformedToken),
    };
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    Ok(TokenHeader { alg, kid })
}

fn map_jwt_error(kind: JwtErrorKind, alg: &str) -> AuthError {
    match kind {
        JwtErrorKind::InvalidSignature => AuthError::InvalidSignature,
        JwtErrorKind::ExpiredSignature => AuthError::Expired,
        JwtErrorKind::ImmatureSignature => AuthError::NotYetValid,
        JwtErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
        JwtErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(claim),
        JwtErrorKind::InvalidAlgorithm | JwtErrorKind::InvalidAlgorithmName => {
            AuthError::UnsupportedAlgorithm(alg.to_owned())
        }
        JwtErrorKind::InvalidToken
        | JwtErrorKind::Base64(_)
        | JwtErrorKind::Json(_)
        | JwtErrorKind::Utf8(_) => AuthError::MalformedToken,
        other => AuthError::Rejected(format!("{other:?}")),
    }
}

/// A NumericDate (seconds since the epoch), accepting fractions as jsonwebtoken does for `exp`.
fn numeric_date(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map(|seconds| seconds.round() as u64)
    })
}

/// A claim value as API Gateway passes it in `requestContext.authorizer.jwt.claims`: strings as they
/// are, numbers and booleans as their JSON text, arrays as `[a b c]`. AWS renders arrays the way Go's
/// `fmt` does; objects and null follow the same convention here (`map[k:v]`, `<nil>`), which is an
/// inference: AWS does not document them.
pub fn claim_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => "<nil>".to_owned(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(claim_text).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(fields) => {
            let mut entries: Vec<(&String, &Value)> = fields.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(name, value)| format!("{name}:{}", claim_text(value)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

fn scopes(claims: &Map<String, Value>) -> Option<Vec<String>> {
    let split =
        |text: &str| -> Vec<String> { text.split_whitespace().map(str::to_owned).collect() };
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) => split(scope),
        (_, Some(Value::String(scp))) => split(scp),
        (_, Some(Value::Array(scp))) => scp.iter().map(claim_text).collect(),
        _ => return None,
    };
    (!scopes.is_empty()).then_some(scopes)
}

/// Signs `claims` as an HS256 JWT (header `{"alg":"HS256","typ":"JWT"}`), for the local stack and tests.
pub fn mint_hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    // HMAC accepts keys of any length and a serde_json::Value always serialises: nothing here
    // depends on the input in a way that can fail.
    .expect("HS256 signing of a JSON value cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_are_flattened_like_api_gateway() {
        assert_eq!(claim_text(&json!("alice")), "alice");
        assert_eq!(claim_text(&json!(1700000000)), "1700000000");
        assert_eq!(claim_text(&json!(1.5)), "1.5");
        assert_eq!(claim_text(&json!(true)), "true");
        assert_eq!(claim_text(&json!(["a", "b", "c"])), "[a b c]");
        assert_eq!(claim_text(&json!([1, ["x"]])), "[1 [x]]");
        assert_eq!(claim_text(&json!({"b": 2, "a": "x"})), "map[a:x b:2]");
    }

    #[test]
    fn bearer_prefix_is_optional_and_case_insensitive() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("abc")), Some("abc"));
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("  ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let claims = |value: Value| value.as_object().cloned().unwrap();
        assert_eq!(
            scopes(&claims(json!({"scope": "files:read  files:write"}))),
            Some(vec!["files:read".to_owned(), "files:write".to_owned()])
        );
        assert_eq!(
            scopes(&claims(json!({"scp": ["a", "b"]}))),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            scopes(&claims(json!({"scp": "a b"}))).map(|s| s.len()),
            Some(2)
        );
        assert_eq!(scopes(&claims(json!({"sub": "x"}))), None);
        assert_eq!(scopes(&claims(json!({"scope": ""}))), None);
    }

    #[test]
    fn config_without_keys_or_audiences_is_refused() {
        let base = JwtAuthorizerConfig {
            issuer: "https://issuer".into(),
            audiences: vec!["aud".into()],
            hs256_secret: None,
            jwks: None,
        };
        assert!(matches!(
            JwtAuthorizer::new(base.clone()),
            Err(AuthorizerConfigError::NoKeys)
        ));
        let no_audience = JwtAuthorizerConfig {
            audiences: vec![],
            hs256_secret: Some("s".into()),
            ..base.clone()
        };
        assert!(matches!(
            JwtAuthorizer::new(no_audience),
            Err(AuthorizerConfigError::NoAudiences)
        ));
        let empty_secret = JwtAuthorizerConfig {
            hs256_secret: Some(String::new()),
            ..base
        };
        assert!(matches!(
            JwtAuthorizer::new(empty_secret),
            Err(AuthorizerConfigError::EmptySecret)
        ));
    }
}
