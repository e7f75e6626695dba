//! Who is calling: tenant, subject and scopes, taken from the claims that API Gateway's JWT authorizer
//! verified and put into the request context.
//!
//! The handler never sees the raw token. API Gateway flattens every claim to a string, so scopes come
//! from the authorizer's `scopes` list or from the space-separated `scope` claim.

use crate::domain::actor;
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
    /// `app` for service tokens (claim `principal_type: app`), else a user.
    pub kind: PrincipalKind,
    /// The OIDC `name` claim, bounded ([`crate::domain::actor::bounded_name`]).
    pub name: Option<String>,
    /// The OIDC `email` claim, when it is a plausible address of at most 254 characters.
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    App,
}

/// What a route needs the token to allow. Each level includes the ones below it: `files:admin`
/// can do what `files:write` can, which can do what `files:read` can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "files:read",
            Scope::Write => "files:write",
            Scope::Admin => "files:admin",
        }
    }

    fn parse(scope: &str) -> Option<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == scope)
    }
}

/// The claim that marks service (app) tokens.
pub const PRINCIPAL_TYPE_CLAIM: &str = "principal_type";

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
        let kind = match claims.get(PRINCIPAL_TYPE_CLAIM).map(String::as_str) {
            Some("app") => PrincipalKind::App,
            _ => PrincipalKind::User,
        };
        Ok(Principal {
            tenant_id: tenant_id.clone(),
            subject: subject.clone(),
            scopes,
            kind,
            name: claims.get("name").and_then(|n| actor::bounded_name(n)),
            email: claims.get("email").and_then(|e| actor::bounded_email(e)),
        })
    }

    /// The caller as recorded in `created_by` / `updated_by`.
    pub fn actor(&self) -> actor::Actor {
        actor::Actor {
            id: self.subject.clone(),
            principal_type: match self.kind {
                PrincipalKind::User => actor::PrincipalType::User,
                PrincipalKind::App => actor::PrincipalType::App,
            },
            name: self.name.clone(),
            email: self.email.clone(),
        }
    }

    /// The highest scope the token grants, if any.
    pub fn granted(&self) -> Option<Scope> {
        self.scopes.iter().filter_map(|s| Scope::parse(s)).max()
    }

    /// 403 `insufficient_scope` unless the token grants `needed` (or more).
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        match self.granted() {
            Some(granted) if granted >= needed => Ok(()),
            _ => Err(ApiError::InsufficientScope {
                needed: needed.as_str(),
            }),
        }
    }

    /// Replacing the content of someone else's file is for apps and admins (as Twake allows only
    /// apps to overwrite): a user may only add revisions to files they created.
    pub fn may_replace_content_of(&self, created_by: &actor::Actor) -> Result<(), ApiError> {
        if self.subject == created_by.id
            || self.kind == PrincipalKind::App
            || self.granted() == Some(Scope::Admin)
        {
            Ok(())
        } else {
            Err(ApiError::NotFileOwner)
        }
    }

    /// Completing or aborting an upload follows the same rule as replacing content: aborting can
    /// delete the never-filled file the upload created, completing decides when its content
    /// becomes a revision. `created_by` is the upload session's creator.
    pub fn may_act_on_upload(&self, created_by: &actor::Actor) -> Result<(), ApiError> {
        self.may_replace_content_of(created_by)
            .map_err(|_| ApiError::NotUploadOwner)
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

    fn principal(scopes: &str, kind: PrincipalKind) -> Principal {
        Principal {
            tenant_id: "acme".into(),
            subject: "alice".into(),
            scopes: scopes.split_whitespace().map(str::to_string).collect(),
            kind,
            name: None,
            email: None,
        }
    }

    #[test]
    fn scopes_include_the_lower_ones() {
        let writer = principal("files:write", PrincipalKind::User);
        assert!(writer.require(Scope::Read).is_ok());
        assert!(writer.require(Scope::Write).is_ok());
        assert_eq!(writer.require(Scope::Admin).unwrap_err().status(), 403);
        let nobody = principal("openid profile", PrincipalKind::User);
        assert_eq!(
            nobody.require(Scope::Read).unwrap_err().code(),
            "insufficient_scope"
        );
    }

    #[test]
    fn only_owners_apps_and_admins_replace_content() {
        let user = principal("files:write", PrincipalKind::User);
        assert!(user.may_replace_content_of(&actor::user("alice")).is_ok());
        assert_eq!(
            user.may_replace_content_of(&actor::user("bob"))
                .unwrap_err()
                .code(),
            "not_file_owner"
        );
        assert!(
            principal("files:write", PrincipalKind::App)
                .may_replace_content_of(&actor::user("bob"))
                .is_ok()
        );
        assert!(
            principal("files:admin", PrincipalKind::User)
                .may_replace_content_of(&actor::user("bob"))
                .is_ok()
        );
    }

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
