//! CORS as the HTTP API answers it, from the template's `CorsConfiguration` (read like the routes).
//!
//! What AWS documents for HTTP APIs ("Configure CORS for HTTP APIs", API Gateway developer guide):
//! - with a CORS configuration, API Gateway answers preflight `OPTIONS` requests itself, even where no
//!   `OPTIONS` route exists, and so before any authorizer: a preflight needs no JWT;
//! - a preflight is an `OPTIONS` with both `Origin` and `Access-Control-Request-Method`; any other
//!   request gets CORS headers only if it carries `Origin`;
//! - to an integration's response it adds the configured headers, and ignores CORS headers the
//!   integration returned itself;
//! - `AllowOrigins` takes exact origins, `*` (any), or a scheme wildcard such as `https://*`;
//!   `AllowMethods` and `AllowHeaders` take `*` too; header names compare case-insensitively.
//!
//! What is not spelled out there, and is done here the way the CORS protocol (Fetch standard) reads
//! it: a preflight that asks for an origin, method or header the configuration does not allow is
//! answered 204 without any `Access-Control-*` header, so the browser refuses the real request
//! (API Gateway does not turn it into a 403 or pass it to a route). An allowed preflight is 204 with
//! `Access-Control-Allow-Origin` (the request's origin, or `*` when any origin is allowed),
//! `-Allow-Methods`, `-Allow-Headers` and `-Max-Age`.

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method};
use serde_norway::Value;
use std::collections::HashMap;

/// The HTTP API's `CorsConfiguration`, with parameters resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsConfig {
    pub allow_origins: Vec<String>,
    /// Upper-cased; `*` for any.
    pub allow_methods: Vec<String>,
    /// Lower-cased; `*` for any.
    pub allow_headers: Vec<String>,
    /// Lower-cased.
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

/// Why a `CorsConfiguration` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("CorsConfiguration of {api}: {problem}")]
pub struct CorsConfigError {
    pub api: String,
    pub problem: String,
}

impl CorsConfig {
    /// Reads `Properties.CorsConfiguration` of an `AWS::Serverless::HttpApi` resource. `!Ref` to a
    /// template parameter takes `parameters[name]`, else the parameter's `Default` (what `sam deploy`
    /// does without an override). `None` when the API has no CORS configuration.
    pub fn from_template(
        document: &Value,
        api_logical_id: &str,
        parameters: &HashMap<String, String>,
    ) -> Result<Option<CorsConfig>, CorsConfigError> {
        let fail = |problem: String| CorsConfigError {
            api: api_logical_id.to_string(),
            problem,
        };
        let Some(cors) = document
            .get("Resources")
            .and_then(|r| r.get(api_logical_id))
            .and_then(|api| api.get("Properties"))
            .and_then(|p| p.get("CorsConfiguration"))
        else {
            return Ok(None);
        };
        let resolve = |value: &Value| -> Result<String, CorsConfigError> {
            match value {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Tagged(tagged) if tagged.tag == "Ref" => {
                    let name = tagged
                        .value
                        .as_str()
                        .ok_or_else(|| fail("!Ref must name a parameter".into()))?;
                    if let Some(value) = parameters.get(name) {
                        return Ok(value.clone());
                    }
                    document
                        .get("Parameters")
                        .and_then(|p| p.get(name))
                        .and_then(|p| p.get("Default"))
                        .and_then(|d| match d {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .ok_or_else(|| fail(format!("parameter {name} has no value or default")))
                }
                other => Err(fail(format!("cannot resolve {other:?} locally"))),
            }
        };
        let list = |key: &str| -> Result<Vec<String>, CorsConfigError> {
            match cors.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Sequence(items)) => items.iter().map(resolve).collect(),
                Some(other) => Err(fail(format!("{key} must be a list, not {other:?}"))),
            }
        };
        Ok(Some(CorsConfig {
            allow_origins: list("AllowOrigins")?,
            allow_methods: list("AllowMethods")?
                .into_iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            allow_headers: list("AllowHeaders")?
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose_headers: list("ExposeHeaders")?
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_age: cors
                .get("MaxAge")
                .map(|v| {
                    resolve(v)?
                        .parse()
                        .map_err(|e| fail(format!("MaxAge: {e}")))
                })
                .transpose()?,
            allow_credentials: cors
                .get("AllowCredentials")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }))
    }

    fn allows_any_origin(&self) -> bool {
        self.allow_origins.iter().any(|o| o == "*")
    }

    /// Whether `origin` is allowed: listed exactly (case-insensitively), `*`, or a `scheme://*` prefix.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|allowed| {
            allowed == "*"
                || allowed.eq_ignore_ascii_case(origin)
                || allowed.strip_suffix('*').is_some_and(|prefix| {
                    origin
                        .to_ascii_lowercase()
                        .starts_with(&prefix.to_ascii_lowercase())
                })
        })
    }

    fn allows_method(&self, method: &str) -> bool {
        self.allow_methods
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(method))
    }

    fn allows_header(&self, name: &str) -> bool {
        self.allow_headers
            .iter()
            .any(|h| h == "*" || h.eq_ignore_ascii_case(name))
    }

    /// The value of `Access-Control-Allow-Origin` for a request from `origin`.
    fn allow_origin_value(&self, origin: &str) -> Option<HeaderValue> {
        // `*` cannot be combined with credentials: then the origin itself is named.
        if self.allows_any_origin() && !self.allow_credentials {
            Some(HeaderValue::from_static("*"))
        } else {
            HeaderValue::from_str(origin).ok()
        }
    }

    /// True when the request is a CORS preflight (which API Gateway answers itself).
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The headers of the answer to a preflight: empty when the origin, the method or one of the
    /// headers asked for is not allowed.
    pub fn preflight_headers(&self, request: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        let text = |name: HeaderName| {
            request
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        let origin = text(header::ORIGIN);
        let method = text(header::ACCESS_CONTROL_REQUEST_METHOD);
        let asked_headers: Vec<String> = request
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !self.allows_origin(&origin)
            || !self.allows_method(&method)
            || !asked_headers.iter().all(|h| self.allows_header(h))
        {
            return out;
        }
        let Some(allow_origin) = self.allow_origin_value(&origin) else {
            return out;
        };
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        let methods = if self.allow_methods.iter().any(|m| m == "*") {
            method.to_ascii_uppercase()
        } else {
            self.allow_methods.join(",")
        };
        if let Ok(v) = HeaderValue::from_str(&methods) {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        let headers = if self.allow_headers.iter().any(|h| h == "*") {
            asked_headers.join(",")
        } else {
            self.allow_headers.join(",")
        };
        if !headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&headers)
        {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(max_age) = self.max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age));
        }
        if self.allow_credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        out
    }

    /// Puts the CORS headers on an actual (non-preflight) response, replacing any the function set:
    /// API Gateway ignores an integration's own CORS headers.
    pub fn apply_to_response(&self, request: &HeaderMap, response: &mut HeaderMap) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ] {
            response.remove(name);
        }
        let Some(origin) = request.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return;
        };
        if !self.allows_origin(origin) {
            return;
        }
        let Some(allow_origin) = self.allow_origin_value(origin) else {
            return;
        };
        if allow_origin != "*" {
            response.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if !self.expose_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.expose_headers.join(","))
        {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        if self.allow_credentials {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["authorization".into(), "content-type".into()],
            expose_headers: vec!["etag".into()],
            max_age: Some(600),
            allow_credentials: false,
        }
    }

    #[test]
    fn origins_match_exactly_by_wildcard_or_by_scheme_prefix() {
        let exact = config(&["https://app.example.com"]);
        assert!(exact.allows_origin("https://app.example.com"));
        assert!(exact.allows_origin("HTTPS://APP.example.com"));
        assert!(!exact.allows_origin("https://app.example.com.evil.test"));
        assert!(!exact.allows_origin("http://app.example.com"));
        assert!(config(&["*"]).allows_origin("http://anything:1234"));
        let https = config(&["https://*"]);
        assert!(https.allows_origin("https://a.test"));
        assert!(!https.allows_origin("http://a.test"));
    }

    #[test]
    fn a_preflight_asking_for_more_than_allowed_gets_no_cors_headers() {
        let cors = config(&["https://app.example.com"]);
        let ask = |origin: &str, method: &str, headers: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, origin.parse().unwrap());
            h.insert(
                header::ACCESS_CONTROL_REQUEST_METHOD,
                method.parse().unwrap(),
            );
            if !headers.is_empty() {
                h.insert(
                    header::ACCESS_CONTROL_REQUEST_HEADERS,
                    headers.parse().unwrap(),
                );
            }
            cors.preflight_headers(&h)
        };
        let ok = ask(
            "https://app.example.com",
            "POST",
            "Authorization, Content-Type",
        );
        assert_eq!(
            ok[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(ok[header::ACCESS_CONTROL_ALLOW_METHODS], "GET,POST");
        assert_eq!(
            ok[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization,content-type"
        );
        assert_eq!(ok[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert!(ask("https://other.example.com", "POST", "").is_empty());
        assert!(ask("https://app.example.com", "DELETE", "").is_empty());
        assert!(ask("https://app.example.com", "GET", "x-custom").is_empty());
    }
}
