//! Who is calling: tenant, subject and scopes, taken from the claims that API Gateway's JWT authorizer
//! verified and put into the request context.
//!
//! The handler never sees the raw token. API Gateway flattens every claim to a string, so scopes come
//! from the authorizer's `scopes` list or from the space-separated `scope` claim.

use crate::error::ApiError;
use lambda_http::request::RequestContext;
use std::collections::HashMap;

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every key of this request is scoped to.
    pub tenant_id: String,
    /// The token's `sub`: recorded as `created_by`.
    pub subject: String,
    pub scopes: Vec<String>,
}

/// Longest tenant id accepted: it is part of every key, and keys have size limits.
const MAX_TENANT_ID_LEN: usize = 128;

/// A tenant id becomes part of DynamoDB keys and S3 object keys, so it is restricted to characters
/// that are safe in both and cannot forge a key separator (`#`, `/`).
pub fn is_valid_tenant_id(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_ID_LEN
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && tenant != "."
        && tenant != ".."
}

impl Principal {
    /// Builds the principal from verified claims.
    pub fn from_claims(
        claims: &HashMap<String, String>,
        scopes: Option<&[String]>,
        tenant_claim: &str,
    ) -> Result<Self, ApiError> {
        let missing = || ApiError::MissingTenant {
            claim: tenant_claim.to_string(),
        };
        let tenant_id = claims.get(tenant_claim).ok_or_else(missing)?;
        if !is_valid_tenant_id(tenant_id) {
            return Err(missing());
        }
        let subject = claims
            .get("sub")
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::Unauthenticated)?;
        let scopes = match scopes {
            Some(list) if !list.is_empty() => list.to_vec(),
            _ => claims
                .get("scope")
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        };
        Ok(Principal {
            tenant_id: tenant_id.clone(),
            subject: subject.clone(),
            scopes,
        })
    }

    /// Reads the principal from an API Gateway HTTP API (payload 2.0) request.
    pub fn from_request(req: &lambda_http::Request, tenant_claim: &str) -> Result<Self, ApiError> {
        use lambda_http::RequestExt;
        let jwt = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref())
            }
            _ => None,
        };
        let jwt = jwt.ok_or(ApiError::Unauthenticated)?;
        Self::from_claims(&jwt.claims, jwt.scopes.as_deref(), tenant_claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tenant_comes_from_the_configured_claim() {
        let c = claims(&[("sub", "alice"), ("org", "acme"), ("tenant_id", "other")]);
        let p = Principal::from_claims(&c, None, "org").unwrap();
        assert_eq!(p.tenant_id, "acme");
        assert_eq!(p.subject, "alice");
    }

    #[test]
    fn tenant_ids_that_could_forge_keys_are_refused() {
        for bad in ["", "a#b", "a/b", "..", "x".repeat(129).as_str(), "é"] {
            let c = claims(&[("sub", "alice"), ("tenant_id", bad)]);
            let err = Principal::from_claims(&c, None, "tenant_id").unwrap_err();
            assert_eq!(err.code(), "missing_tenant", "{bad:?}");
        }
    }

    #[test]
    fn scopes_fall_back_to_the_scope_claim() {
        let c = claims(&[
            ("sub", "alice"),
            ("tenant_id", "acme"),
            ("scope", "files:read  files:write"),
        ]);
        let p = Principal::from_claims(&c, None, "tenant_id").unwrap();
        assert_eq!(p.scopes, vec!["files:read", "files:write"]);
        let listed = vec!["files:admin".to_string()];
        let p = Principal::from_claims(&c, Some(&listed), "tenant_id").unwrap();
        assert_eq!(p.scopes, vec!["files:admin"]);
    }
}
