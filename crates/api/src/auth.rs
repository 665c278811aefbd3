//! Dashboard users (stored hashed), login tokens and the bearer-token guard.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::request::Parts,
};
use hookmq_broker::{
    auth::{hash_password, verify_hash},
    store::{Store, Table},
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{error::ApiError, json::JsonBody, state::AppState};

/// A stored dashboard user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub(crate) username: String,
    /// argon2id PHC string.
    pub(crate) password_hash: String,
}

/// Creates the default user when there is none.
///
/// # Errors
/// A store or hashing failure, as text.
pub(crate) fn ensure_default_user(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<(), String> {
    let users: Vec<(String, UserRecord)> = store.list(Table::Users).map_err(|e| e.to_string())?;
    if users.is_empty() {
        let password_hash = hash_password(password.as_bytes()).map_err(|e| e.to_string())?;
        let record = UserRecord {
            username: username.to_owned(),
            password_hash,
        };
        store
            .put(Table::Users, username, &record)
            .map_err(|e| e.to_string())?;
        tracing::info!(
            username,
            "created the default dashboard user; change its password"
        );
    }
    Ok(())
}

/// Login tokens in memory (a restart logs everyone out).
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// Short critical sections: insert, look up, prune; never across `.await`.
    live: Mutex<HashMap<String, (String, Instant)>>,
}

impl Tokens {
    fn issue(&self, username: &str, ttl: Duration) -> String {
        let token: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let mut live = self.live.lock();
        let now = Instant::now();
        live.retain(|_, (_, expires)| *expires > now);
        live.insert(token.clone(), (username.to_owned(), now + ttl));
        token
    }

    fn user(&self, token: &str) -> Option<String> {
        let live = self.live.lock();
        live.get(token)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(user, _)| user.clone())
    }
}

/// `POST /login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
    password: String,
}

/// `POST /login` answer.
#[derive(Debug, Serialize)]
pub(crate) struct LoginAnswer {
    token: String,
    username: String,
}

/// `POST /api/v5/login`.
pub(crate) async fn login(
    State(state): State<AppState>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let store = Arc::clone(&state.store);
    let username = login.username.clone();
    // Hash checks take tens of ms: off the async threads.
    let verified = tokio::task::spawn_blocking(move || {
        let record: Option<UserRecord> = store.get(Table::Users, &username).ok().flatten();
        record.is_some_and(|r| verify_hash(&r.password_hash, login.password.as_bytes()))
    })
    .await
    .map_err(ApiError::internal)?;
    if !verified {
        return Err(ApiError {
            code: "BAD_USERNAME_OR_PWD",
            ..ApiError::unauthorized("bad user name or password")
        });
    }
    let token = state.tokens.issue(&login.username, state.token_ttl);
    Ok(Json(LoginAnswer {
        token,
        username: login.username,
    }))
}

/// Proof that a request carries a valid token; add it to a handler's arguments.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// Who.
    #[allow(dead_code)] // read by later endpoints (audit, change password)
    pub(crate) username: String,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "log in: POST /api/v5/login, then send Authorization: Bearer <token>",
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
        state
            .tokens
            .user(token.trim())
            .map(|username| Self { username })
            .ok_or_else(|| ApiError::unauthorized("token unknown or expired: log in again"))
    }
}
