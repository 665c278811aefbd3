//! A JSON body extractor whose errors name the field: `{"code":"BAD_REQUEST","field":"url",...}`.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted.
const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON request body.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::bad_request(
                "send a JSON body with content-type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if bytes.len() > BODY_LIMIT {
            return Err(ApiError::bad_request("body too large"));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(Self(value)),
            Err(error) => {
                let path = error.path().to_string();
                let inner = error.into_inner();
                // serde names missing and unknown fields in the message itself.
                let field = if path == "." {
                    field_in(&inner.to_string())
                } else {
                    path
                };
                Err(ApiError::bad_field(field, inner))
            }
        }
    }
}

/// `unknown field `x`` / `missing field `x`` → `x`.
fn field_in(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map_or_else(|| "body".to_owned(), str::to_owned)
}

/// Decodes an already-parsed JSON value, naming the field on error.
///
/// # Errors
/// A 400 [`ApiError`] naming the field.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let field = if path == "." {
            field_in(&inner.to_string())
        } else {
            path
        };
        ApiError::bad_field(field, inner)
    })
}
