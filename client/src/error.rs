//! The client's one error type. An API refusal keeps what the problem+json said (status, stable
//! `code`, human `detail`), so callers branch on the code and show the detail.

use api_types::Problem;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error (RFC 9457 problem+json, or the gateway's own 401/404).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// No answer: connection refused or reset, DNS, timeout (after the retries).
    #[error("cannot reach {url}: {message}")]
    Network { url: String, message: String },
    /// S3 refused a presigned request (after the retries).
    #[error("the storage answered {status}: {message}")]
    Storage { status: u16, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An answer that does not have the shape the API documents.
    #[error("unexpected answer from {what}: {message}")]
    Protocol { what: String, message: String },
    /// Something about the local side: a file changed while it was uploaded, a checksum mismatch.
    #[error("{0}")]
    Local(String),
}

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    pub status: u16,
    /// The problem's stable `code` (`not_found`, `name_conflict`, ...); for the gateway's own
    /// answers, which are not problem+json, `unauthenticated` (401) or `route_not_found` (404).
    pub code: String,
    pub detail: String,
    /// The whole problem, extension members included, when the answer was problem+json.
    pub problem: Option<Box<Problem>>,
}

impl ApiError {
    /// Reads an error answer's body: problem+json when it is one, otherwise the best we can say.
    pub fn from_body(status: u16, body: &[u8]) -> ApiError {
        if let Ok(problem) = serde_json::from_slice::<Problem>(body) {
            return ApiError {
                status,
                code: problem.code.clone(),
                detail: problem.detail.clone(),
                problem: Some(Box::new(problem)),
            };
        }
        // The gateway answers `{"message": "Unauthorized"}` itself, as API Gateway does.
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            });
        let code = match status {
            401 => "unauthenticated",
            403 => "forbidden",
            404 => "route_not_found",
            413 => "payload_too_large",
            429 => "too_many_requests",
            s if s >= 500 => "server_error",
            _ => "http_error",
        };
        let detail = match (status, message) {
            (401, _) => "the token is missing, invalid or expired".to_string(),
            (_, Some(message)) => message,
            (_, None) => format!("the API answered HTTP {status}"),
        };
        ApiError {
            status,
            code: code.to_string(),
            detail,
            problem: None,
        }
    }
}

impl Error {
    /// The API error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn network(url: &str, err: &reqwest::Error) -> Error {
        Error::Network {
            url: strip_query(url),
            message: chain(err),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A presigned URL's query string is a credential: never print it.
pub(crate) fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// An error and its causes on one line (reqwest's own message says only "error sending request").
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    // reqwest repeats the (presigned) URL in its message.
    match out.find("for url (") {
        Some(start) => {
            let end = out[start..].find(')').map_or(out.len(), |e| start + e + 1);
            format!("{}{}", out[..start].trim_end(), &out[end..])
        }
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_keeps_code_and_detail() {
        let body = br#"{"type":"/problems/not_found","title":"Not found","status":404,"detail":"file not found","code":"not_found"}"#;
        let e = ApiError::from_body(404, body);
        assert_eq!(
            (e.code.as_str(), e.detail.as_str()),
            ("not_found", "file not found")
        );
    }

    #[test]
    fn the_gateways_own_401_is_unauthenticated() {
        let e = ApiError::from_body(401, br#"{"message":"Unauthorized"}"#);
        assert_eq!(e.code, "unauthenticated");
    }
}
