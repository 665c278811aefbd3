//! API errors: `{"code", "message"}` (plus `field` for bad input), never a bare 500.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use hookmq_webhooks::{EngineError, SpecError};
use serde::Serialize;

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
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
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
        }
    }

    /// 400 without a field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_REQUEST",
            message: message.into(),
            field: None,
        }
    }

    /// 404.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: format!("{what} not found"),
            field: None,
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            message: message.into(),
            field: None,
        }
    }

    /// 500 for a failure of ours, logged; the answer says little.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "API request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_ERROR",
            message: "internal error; see the server log".into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
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
            },
        }
    }
}
