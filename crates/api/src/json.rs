//! Extractors whose errors name the field: a JSON body ([`JsonBody`]), query parameters
//! ([`QueryParams`]) and path parameters ([`PathParams`]), all answering
//! `{"code":"BAD_REQUEST","field":"url",...}`.
//!
//! Messages about secret fields (passwords, secrets, `authorization` headers) never repeat
//! the value sent.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request, rejection::PathRejection},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted (larger: 413).
const BODY_LIMIT: usize = 1024 * 1024;

/// Fields whose values are secrets (compared with the last part of the field's path).
const SECRET_FIELDS: [&str; 7] = [
    "password",
    "old_pwd",
    "new_pwd",
    "api_secret",
    "signing_secret",
    "authorization",
    "proxy-authorization",
];

fn is_secret(field: &str) -> bool {
    let last = field.rsplit('.').next().unwrap_or(field);
    SECRET_FIELDS.iter().any(|s| last.eq_ignore_ascii_case(s))
}

/// `unknown field `x`` / `missing field `x`` → `x`.
fn field_in(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map_or_else(|| "body".to_owned(), str::to_owned)
}

/// A 400 for a deserialization error at `path` (`.` when serde names the field in the
/// message instead).
fn named_error(path: &str, message: &str) -> ApiError {
    let field = if path == "." {
        field_in(message)
    } else {
        path.to_owned()
    };
    if is_secret(&field) {
        ApiError::bad_field(field, "invalid value (not shown)")
    } else {
        ApiError::bad_field(field, message)
    }
}

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
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(BODY_LIMIT)
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })?;
        if bytes.len() > BODY_LIMIT {
            return Err(ApiError::too_large(BODY_LIMIT));
        }
        from_slice(&bytes).map(Self)
    }
}

/// Decodes a JSON body, naming the field on error. Trailing characters after the document
/// are an error too.
///
/// # Errors
/// A 400 [`ApiError`].
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    integral_numbers(&mut document);
    from_value(document)
}

/// Turns numbers written with a fraction of zero (`8.0`) into integers: JSON Schema counts
/// them as integers, and so does the API.
fn integral_numbers(value: &mut serde_json::Value) {
    use serde_json::{Number, Value};
    match value {
        Value::Number(number) => {
            if let Some(float) = number
                .as_f64()
                .filter(|f| number.is_f64() && f.fract() == 0.0)
            {
                // Exactly representable bounds: 2^64 and -2^63.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let integer = if (0.0..18_446_744_073_709_551_616.0).contains(&float) {
                    Some(Number::from(float as u64))
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&float) {
                    Some(Number::from(float as i64))
                } else {
                    None
                };
                if let Some(integer) = integer {
                    *number = integer;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Decodes an already-parsed JSON value, naming the field on error.
///
/// # Errors
/// A 400 [`ApiError`] naming the field.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        named_error(&path, &error.into_inner().to_string())
    })
}

/// Query parameters (`?page=2&limit=10`) into a flat struct; unknown parameters are errors
/// when the struct denies unknown fields.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|error| {
                let path = error.path().to_string();
                named_error(&path, &error.into_inner().to_string())
            })
    }
}

/// Path parameters (`/webhooks/{name}`), naming the parameter on error.
#[derive(Debug)]
pub(crate) struct PathParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                let message = error.body_text();
                Err(match error.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => {
                        ApiError::bad_field(key.clone(), message)
                    }
                    _ => ApiError::bad_request(message),
                })
            }
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}
