//! Exit codes a script can rely on, and the one-line messages that go with them.
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | success |
//! | 1 | a local failure (a file cannot be read, a checksum mismatch, a timeout) |
//! | 2 | usage: bad arguments, flags or config file |
//! | 3 | not found (HTTP 404): no such file, upload or revision |
//! | 4 | conflict (HTTP 409/412): the name is taken, the file is not ready, it changed |
//! | 5 | not allowed (HTTP 401/403): no token, an invalid or expired one, or a missing scope |
//! | 6 | any other refusal or failure of the API (4xx/5xx), after the retries |
//! | 7 | network: the API or the storage could not be reached, after the retries |
//! | 8 | the file was rejected (its content did not match what was declared) |
//!
//! When several files fail, the exit code is the first failure's.

use files_client::Error;

pub const OK: u8 = 0;
pub const LOCAL: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const CONFLICT: u8 = 4;
pub const AUTH: u8 = 5;
pub const API: u8 = 6;
pub const NETWORK: u8 = 7;
pub const REJECTED: u8 = 8;

/// A failed command: what to print, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }

    pub fn local(message: impl Into<String>) -> Failure {
        Failure {
            code: LOCAL,
            message: message.into(),
        }
    }

    pub fn rejected(message: impl Into<String>) -> Failure {
        Failure {
            code: REJECTED,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match &e {
            Error::Api(api) => Failure {
                code: match api.status {
                    404 => NOT_FOUND,
                    409 | 412 => CONFLICT,
                    401 | 403 => AUTH,
                    _ => API,
                },
                // The API's own words, and its code for whoever searches the docs.
                message: format!("{} ({} {})", api.detail, api.status, api.code),
            },
            Error::Network { .. } => Failure {
                code: NETWORK,
                message: e.to_string(),
            },
            Error::Storage { status, .. } if *status >= 500 => Failure {
                code: NETWORK,
                message: e.to_string(),
            },
            Error::Storage { .. } | Error::Protocol { .. } => Failure {
                code: API,
                message: e.to_string(),
            },
            Error::Io { .. } | Error::Local(_) => Failure {
                code: LOCAL,
                message: e.to_string(),
            },
        }
    }
}
