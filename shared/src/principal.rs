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
    /// With the [`PARENTS_CLAIM`] claim: the only parents whose files this token may see and
    /// change (sorted, unique). `None`: the whole tenant.
    pub parents: Option<Vec<String>>,
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

/// The claim that limits a token to some parents (cases, projects, posts): a product mints it for a
/// user who opened a case. Absent: the token sees the whole tenant.
pub const PARENTS_CLAIM: &str = "files_parents";

/// The most parents one token may name. A listing without `parent` reads every named parent's index
/// range, one Query each per page, all at once: 10 keeps that fan-out (and the per-parent share of
/// the request's read budget, `MAX_ITEMS_READ / 10` = 500 items, five pages of 100) small; the
/// cursor does not grow with it (it is one position in the merged order). It also keeps the claim
/// well inside what API Gateway takes in a header: 10 parents of 256 characters, percent-encoded.
pub const MAX_PERMITTED_PARENTS: usize = 10;

/// Reads the value of the [`PARENTS_CLAIM`] claim as API Gateway's HTTP API JWT authorizer hands it
/// over (every claim flattened to a string): a JSON array of strings arrives as `[a b c]`, its items
/// joined by spaces, and a string arrives as it is. Both are accepted, so an identity provider that
/// can only put strings into tokens (Cognito custom attributes) can send `"a b c"`.
///
/// Because the flattening joins by spaces and brackets the list, a parent holding a space, `[`, `]`,
/// `"`, `,` or `%` must be percent-encoded in the token (as JavaScript's `encodeURIComponent`
/// does, which is also fine for every other character); each item is decoded here. Raw `"` and `,`
/// are refused because they mean the claim was written as JSON text (`"[\"a\",\"b\"]"`), which
/// would otherwise be read as other parents than meant. 1 to [`MAX_PERMITTED_PARENTS`] parents, each
/// a valid `parent` (1 to 256 characters, no control characters); anything else is
/// `invalid_token_claim` (403): a limit that cannot be read must not become no limit.
pub fn parse_parents_claim(raw: &str) -> Result<Vec<String>, ApiError> {
    let invalid = |reason: String| ApiError::InvalidTokenClaim {
        claim: PARENTS_CLAIM,
        reason,
    };
    let trimmed = raw.trim();
    let list = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    let mut parents = Vec::new();
    for item in list.split_whitespace() {
        if let Some(bad) = item.chars().find(|c| matches!(c, '[' | ']' | '"' | ',')) {
            return Err(invalid(format!(
                "{bad:?} must be percent-encoded (%{:02X}) in a parent",
                bad as u32
            )));
        }
        let bytes = percent_decode(item)
            .ok_or_else(|| invalid("a % must start a percent-encoded byte (%XX)".to_string()))?;
        let parent = String::from_utf8(bytes)
            .map_err(|_| invalid("a parent must decode to UTF-8".to_string()))?;
        crate::domain::validate::parent(Some(&parent))
            .map_err(|e| invalid(format!("a parent is not valid: {e}")))?;
        parents.push(parent);
    }
    parents.sort();
    parents.dedup();
    if parents.is_empty() {
        return Err(invalid(
            "it names no parent (leave the claim out for access to the whole tenant)".to_string(),
        ));
    }
    if parents.len() > MAX_PERMITTED_PARENTS {
        return Err(invalid(format!(
            "it names {} parents, at most {MAX_PERMITTED_PARENTS} are allowed",
            parents.len()
        )));
    }
    Ok(parents)
}

/// A parent as it goes into a [`PARENTS_CLAIM`] claim's list: percent-encoded as JavaScript's
/// `encodeURIComponent` does (every byte but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`), which is what
/// [`parse_parents_claim`] decodes. For token minters (the local `mint-token`, tests).
pub fn encode_parent(parent: &str) -> String {
    let mut out = String::with_capacity(parent.len());
    for byte in parent.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `%XX` sequences to bytes; `None` for a `%` not followed by two hex digits.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
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
            parents: claims
                .get(PARENTS_CLAIM)
                .map(|raw| parse_parents_claim(raw))
                .transpose()?,
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

    /// True when this token may see files of `parent` (`None`: files without a parent): always for
    /// a token without [`PARENTS_CLAIM`], else only for the parents it names. Every route asks
    /// this of the file it serves (through [`crate::App::file_of`] or [`Principal::may_see`]);
    /// what it may not see answers 404, exactly like another tenant's file.
    pub fn may_see_parent(&self, parent: Option<&str>) -> bool {
        match (&self.parents, parent) {
            (None, _) => true,
            (Some(permitted), Some(parent)) => permitted
                .binary_search_by(|p| p.as_str().cmp(parent))
                .is_ok(),
            (Some(_), None) => false,
        }
    }

    /// [`Principal::may_see_parent`] of a file.
    pub fn may_see(&self, file: &crate::domain::FileRecord) -> bool {
        self.may_see_parent(file.parent.as_deref())
    }

    /// 403 `parent_not_permitted` unless a new file may be put into `parent`, or a file moved
    /// there: the parent must be one the token names (a limited token cannot create files without
    /// a parent, nor move files out of its parents).
    pub fn may_put_into(&self, parent: Option<&str>) -> Result<(), ApiError> {
        if self.may_see_parent(parent) {
            Ok(())
        } else {
            Err(ApiError::ParentNotPermitted {
                claim: PARENTS_CLAIM,
            })
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
            parents: None,
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

    #[test]
    fn parents_come_as_api_gateway_flattens_them() {
        let limited = |raw: &str| {
            let c = claims(&[
                ("sub", "alice"),
                ("tenant_id", "acme"),
                (PARENTS_CLAIM, raw),
            ]);
            Principal::from_claims(&c, None, "tenant_id").map(|p| p.parents)
        };
        // A JSON array ["case-2", "case 1", "case-2"] arrives as "[case-2 case%201 case-2]".
        assert_eq!(
            limited("[case-2 case%201 case-2]").unwrap(),
            Some(vec!["case 1".to_string(), "case-2".to_string()])
        );
        assert_eq!(
            limited("case-1  %5Bx%5D%2C%22%25").unwrap(),
            Some(vec!["[x],\"%".to_string(), "case-1".to_string()])
        );
        assert_eq!(limited("[%C3%A9]").unwrap(), Some(vec!["é".to_string()]));
        let odd = "Pictures/2026 [draft], \"50%\" é";
        assert_eq!(
            limited(&format!("[{} x]", encode_parent(odd))).unwrap(),
            Some(vec![odd.to_string(), "x".to_string()])
        );
        let no_claim = claims(&[("sub", "alice"), ("tenant_id", "acme")]);
        assert_eq!(
            Principal::from_claims(&no_claim, None, "tenant_id")
                .unwrap()
                .parents,
            None
        );
        let eleven: Vec<String> = (0..=MAX_PERMITTED_PARENTS)
            .map(|i| format!("p{i}"))
            .collect();
        for bad in [
            "",
            "[]",
            " ",
            "[\"a\",\"b\"]",
            "a,b",
            "[a [b]]",
            "100%",
            "%zz",
            "%FF",
            "%00",
            &"x".repeat(257),
            &format!("[{}]", eleven.join(" ")),
        ] {
            let err = limited(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_token_claim", "{bad:?}");
            assert_eq!(err.status(), 403);
        }
    }

    #[test]
    fn a_limited_token_sees_and_fills_only_its_parents() {
        let mut p = principal("files:write", PrincipalKind::User);
        assert!(p.may_see_parent(None) && p.may_see_parent(Some("any")));
        p.parents = Some(vec!["case-1".into(), "case-3".into()]);
        assert!(p.may_see_parent(Some("case-1")) && p.may_see_parent(Some("case-3")));
        assert!(!p.may_see_parent(Some("case-2")) && !p.may_see_parent(None));
        assert!(p.may_put_into(Some("case-3")).is_ok());
        assert_eq!(
            p.may_put_into(None).unwrap_err().code(),
            "parent_not_permitted"
        );
    }
}
