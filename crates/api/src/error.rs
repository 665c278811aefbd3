//! API errors: `{"code", "message"}` (plus `field` for bad input), never a bare 500.
//!
//! Handlers answer with [`ApiError`]; [`json_errors`] turns the few answers axum makes itself
//! (no such endpoint, method not allowed, body too large) into the same shape.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use hookmq_webhooks::{EngineError, SpecError};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `BAD_REQUEST`, `NOT_FOUND`.
    pub code: &'static str,
    /// What happened, for people.
    pub message: String,
    /// The field at fault, for bad input.
    pub field: Option<String>,
    /// Seconds to wait before trying again (429), sent as `Retry-After`.
    pub retry_after: Option<u64>,
    /// More keys of the body (EMQX's `rules` when an action still has some).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An error answer's body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable code: `BAD_REQUEST`, `UNAUTHORIZED`, `NOT_FOUND`, `ALREADY_EXISTS`, ...
    code: &'static str,
    /// What happened, for people.
    message: String,
    /// The field at fault (bad input only), e.g. `url`, `headers.x-token`, `events[1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// More keys for some errors (`rules`: the rules that still use an action).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// 400 about `field`.
    pub fn bad_field(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_REQUEST",
            message: format!("{field}: {reason}"),
            field: Some(field),
            retry_after: None,
            extra: None,
        }
    }

    /// 400 without a field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_REQUEST",
            message: message.into(),
            field: None,
            retry_after: None,
            extra: None,
        }
    }

    /// 400 `ALREADY_EXISTS` (EMQX's answer to a connector or action name that is taken).
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self {
            code: "ALREADY_EXISTS",
            ..Self::bad_request(message)
        }
    }

    /// This error with one more key in its body.
    #[must_use]
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.to_owned(), value);
        self
    }

    /// 404.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: format!("{what} not found"),
            field: None,
            retry_after: None,
            extra: None,
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            message: message.into(),
            field: None,
            retry_after: None,
            extra: None,
        }
    }

    /// 409 about `field`.
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "ALREADY_EXISTS",
            message: message.into(),
            field: Some(field.into()),
            retry_after: None,
            extra: None,
        }
    }

    /// 429 after too many failed log-ins: try again in `wait` (rounded up to seconds).
    pub fn too_many_attempts(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "TOO_MANY_ATTEMPTS",
            message: format!("too many failed log-ins: try again in {seconds} s"),
            field: None,
            retry_after: Some(seconds),
            extra: None,
        }
    }

    /// 413: a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "PAYLOAD_TOO_LARGE",
            message: format!("body too large: at most {limit} bytes"),
            field: None,
            retry_after: None,
            extra: None,
        }
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: message.into(),
            field: None,
            retry_after: None,
            extra: None,
        }
    }

    /// 503 `CLUSTER_UNAVAILABLE`: a clustered node cannot reach the cluster, which takes
    /// every change of shared state first.
    #[must_use]
    pub fn cluster_unavailable(message: String) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "CLUSTER_UNAVAILABLE",
            message,
            field: None,
            retry_after: Some(1),
            extra: None,
        }
    }

    /// 500 for a failure of ours, logged; the answer says little.
    #[must_use]
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "API request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_ERROR",
            message: "internal error; see the server log".into(),
            field: None,
            retry_after: None,
            extra: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            field: self.field,
            extra: self.extra,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<SpecError> for ApiError {
    fn from(error: SpecError) -> Self {
        Self::bad_field(error.field, error.reason)
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid(spec) => spec.into(),
            EngineError::NotFound(name) => Self::not_found(format!("webhook {name}")),
            EngineError::AlreadyExists(name) => Self {
                status: StatusCode::CONFLICT,
                code: "ALREADY_EXISTS",
                message: format!("a webhook named {name} exists already"),
                field: Some("name".into()),
                retry_after: None,
                extra: None,
            },
            EngineError::Storage(reason) => Self::internal(reason),
            EngineError::Unavailable(reason) => Self::cluster_unavailable(reason),
        }
    }
}

/// The answer for paths under `/api/v5` that match no endpoint.
pub(crate) async fn no_such_endpoint(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "NOT_FOUND",
        message: format!("no such endpoint: {}", uri.path()),
        field: None,
        retry_after: None,
        extra: None,
    }
}

/// The prefix of [`no_such_endpoint`]'s message (tests tell it from a missing resource).
pub const NO_SUCH_ENDPOINT: &str = "no such endpoint";

/// Rewrites error answers that are not JSON (axum's own: method not allowed, body too large,
/// unsupported media type) as `{"code","message"}`, keeping their status and `Allow` header.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let (code, fallback) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("METHOD_NOT_ALLOWED", "method not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("BAD_REQUEST", "unsupported content type"),
        s if s.is_server_error() => ("INTERNAL_ERROR", "internal error; see the server log"),
        _ => ("BAD_REQUEST", "bad request"),
    };
    let message = if text.is_empty() || status.is_server_error() {
        fallback.to_owned()
    } else {
        text
    };
    let mut answer = ApiError {
        status,
        code,
        message,
        field: None,
        retry_after: None,
        extra: None,
    }
    .into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}
