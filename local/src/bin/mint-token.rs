//! Prints an HS256 bearer token that the local stack's gateway accepts, so the API can be called with
//! curl without an identity provider: `curl -H "authorization: Bearer $(cargo run -q -p local-stack
//! --bin mint-token -- --tenant acme --sub alice)" ...`.
//!
//! Secret, issuer and audience come from the same environment variables (and defaults) the stack
//! reads, see `local_stack::authorizer::JwtAuthorizerConfig::local_from_env`.

use std::process::ExitCode;

use local_stack::authorizer::{JwtAuthorizerConfig, mint_hs256};
use serde_json::{Map, Value, json};
use shared::principal::{PARENTS_CLAIM, encode_parent};

const TENANT_CLAIM_ENV: &str = "FILES_TENANT_CLAIM";
const DEFAULT_TENANT_CLAIM: &str = "tenant_id";
const DEFAULT_TTL_SECONDS: u64 = 3600;

const USAGE: &str = "\
usage: mint-token --tenant <id> --sub <subject> [--scope \"files:read files:write\"] [--ttl <seconds>]
                  [--name <name>] [--email <email>] [--parent <parent> ...] [--claim k=v ...]

Prints an HS256 JWT for the local Files API stack.
  --tenant   tenant id, put in the claim named by FILES_TENANT_CLAIM (default tenant_id)
  --sub      subject (user id)
  --scope    space-separated scopes, put in the `scope` claim
  --ttl      lifetime in seconds (default 3600)
  --name, --email  the OIDC name and email claims (recorded in created_by / updated_by)
  --parent   limit the token to this parent (repeat for more, at most 10): puts the
             files_parents claim, a JSON array of percent-encoded parents
  --claim    extra claim; the value is parsed as JSON when it is valid JSON
             (--claim admin=true, --claim groups='[\"a\",\"b\"]'), else kept as a string

Environment: FILES_JWT_SECRET, FILES_JWT_ISSUER, FILES_JWT_AUDIENCE (comma-separated), FILES_TENANT_CLAIM.";

#[derive(Debug)]
struct TokenRequest {
    tenant: String,
    subject: String,
    scope: Option<String>,
    ttl_seconds: u64,
    extra_claims: Vec<(String, Value)>,
    parents: Vec<String>,
}

enum Command {
    Mint(TokenRequest),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut tenant = None;
    let mut subject = None;
    let mut scope = None;
    let mut ttl_seconds = DEFAULT_TTL_SECONDS;
    let mut extra_claims = Vec::new();
    let mut parents = Vec::new();

    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help);
        }
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tenant" => tenant = Some(value()?),
            "--sub" => subject = Some(value()?),
            "--scope" => scope = Some(value()?),
            "--name" => extra_claims.push(("name".to_owned(), Value::String(value()?))),
            "--email" => extra_claims.push(("email".to_owned(), Value::String(value()?))),
            "--parent" => parents.push(value()?),
            "--ttl" => {
                let text = value()?;
                ttl_seconds = text
                    .parse()
                    .map_err(|_| format!("--ttl {text:?} is not a number of seconds"))?;
            }
            "--claim" => {
                let pair = value()?;
                let (name, raw_value) =
                    pair.split_once('=')
                        .filter(|(name, _)| !name.is_empty())
                        .ok_or_else(|| format!("--claim {pair:?} is not name=value"))?;
                let claim_value = serde_json::from_str(raw_value)
                    .unwrap_or_else(|_| Value::String(raw_value.to_owned()));
                extra_claims.push((name.to_owned(), claim_value));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    let tenant = tenant
        .filter(|t| !t.is_empty())
        .ok_or("--tenant is required")?;
    let subject = subject
        .filter(|s| !s.is_empty())
        .ok_or("--sub is required")?;
    Ok(Command::Mint(TokenRequest {
        tenant,
        subject,
        scope,
        ttl_seconds,
        extra_claims,
        parents,
    }))
}

fn main() -> ExitCode {
    let request = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Mint(request)) => request,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("mint-token: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let config = JwtAuthorizerConfig::local_from_env();
    let Some(secret) = config.hs256_secret else {
        eprintln!("mint-token: no HS256 secret configured");
        return ExitCode::FAILURE;
    };
    let tenant_claim = std::env::var(TENANT_CLAIM_ENV)
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TENANT_CLAIM.to_owned());
    let audience = match config.audiences.as_slice() {
        [single] => json!(single),
        several => json!(several),
    };
    let now = jsonwebtoken::get_current_timestamp();

    let mut claims = Map::new();
    claims.insert("iss".into(), json!(config.issuer));
    claims.insert("aud".into(), audience);
    claims.insert("sub".into(), json!(request.subject));
    claims.insert(tenant_claim, json!(request.tenant));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(request.ttl_seconds)));
    claims.insert("jti".into(), json!(uuid::Uuid::now_v7().to_string()));
    if let Some(scope) = request.scope {
        claims.insert("scope".into(), json!(scope));
    }
    if !request.parents.is_empty() {
        // A JSON array, as a product would mint it; API Gateway hands it to the functions as
        // "[a b]", which is why each parent is percent-encoded (shared::principal).
        let encoded: Vec<String> = request.parents.iter().map(|p| encode_parent(p)).collect();
        claims.insert(PARENTS_CLAIM.into(), json!(encoded));
    }
    for (name, value) in request.extra_claims {
        claims.insert(name, value);
    }

    println!("{}", mint_hs256(&secret, &Value::Object(claims)));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_all_flags() {
        let Ok(Command::Mint(request)) = parse_args(args(&[
            "--tenant",
            "acme",
            "--sub",
            "alice",
            "--scope",
            "files:read",
            "--ttl",
            "60",
            "--claim",
            "admin=true",
            "--claim",
            "team=blue",
            "--parent",
            "case 1",
            "--parent",
            "case-2",
            "--name",
            "Alice",
        ])) else {
            panic!("should parse");
        };
        assert_eq!(request.tenant, "acme");
        assert_eq!(request.subject, "alice");
        assert_eq!(request.scope.as_deref(), Some("files:read"));
        assert_eq!(request.ttl_seconds, 60);
        assert_eq!(
            request.extra_claims,
            vec![
                ("admin".to_owned(), json!(true)),
                ("team".to_owned(), json!("blue")),
                ("name".to_owned(), json!("Alice")),
            ]
        );
        assert_eq!(request.parents, vec!["case 1", "case-2"]);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_args(args(&["--sub", "alice"])).is_err());
        assert!(parse_args(args(&["--tenant", "acme"])).is_err());
        assert!(parse_args(args(&["--tenant", "acme", "--sub", "a", "--ttl", "soon"])).is_err());
        assert!(
            parse_args(args(&[
                "--tenant", "acme", "--sub", "a", "--claim", "novalue"
            ]))
            .is_err()
        );
        assert!(parse_args(args(&["--tenant"])).is_err());
        assert!(parse_args(args(&["--bogus"])).is_err());
        assert!(matches!(parse_args(args(&["--help"])), Ok(Command::Help)));
    }
}
