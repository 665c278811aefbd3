//! Dashboard users, stored argon2id-hashed in the store: the default user and
//! `POST /users/{username}/change_pwd`.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode};
use hookmq_broker::auth::{hash_password, verify_hash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{JsonBody, PathParams},
    state::AppState,
    store::{Store, Table},
};

/// Shortest new password accepted.
pub(crate) const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
const MAX_PASSWORD_LEN: usize = 256;

/// `/users/...`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_password))
}

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
        save_user(store, username, password)?;
        tracing::info!(
            username,
            "created the default dashboard user; change its password"
        );
    }
    Ok(())
}

/// Whether `password` may be a dashboard password: 8 to 256 characters.
fn check_new_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        return Err(format!("use at least {MIN_PASSWORD_LEN} characters"));
    }
    if length > MAX_PASSWORD_LEN {
        return Err(format!("use at most {MAX_PASSWORD_LEN} characters"));
    }
    Ok(())
}

/// Sets a dashboard user's password in `store`, creating the user if needed: for
/// `hookmq user passwd` while hookmq is stopped (or before its first start, so the default
/// user is never created).
///
/// # Errors
/// An unusable password (8 to 256 characters) or a store failure, as text.
pub fn set_password(store: &Store, username: &str, password: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("the user name must not be empty".into());
    }
    check_new_password(password).map_err(|reason| format!("password: {reason}"))?;
    save_user(store, username, password)
}

/// Stores `username` with `password` hashed (argon2id), replacing what was there.
fn save_user(store: &Store, username: &str, password: &str) -> Result<(), String> {
    let record = user_record(username, password)?;
    store
        .put(Table::Users, username, &record)
        .map_err(|e| e.to_string())
}

/// `username` with `password` hashed (argon2id).
fn user_record(username: &str, password: &str) -> Result<UserRecord, String> {
    let password_hash = hash_password(password.as_bytes()).map_err(|e| e.to_string())?;
    Ok(UserRecord {
        username: username.to_owned(),
        password_hash,
    })
}

/// `POST /users/{username}/change_pwd` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    /// The current password.
    #[schema(max_length = 256)]
    old_pwd: String,
    /// The new one: 8 to 256 characters, different from the old one.
    #[schema(min_length = 8, max_length = 256)]
    new_pwd: String,
}

/// Why a change failed, decided off the async threads.
enum Outcome {
    Changed(UserRecord),
    NoUser,
    WrongOld,
    Failed(String),
}

/// Changes a dashboard user's password. The user's other login tokens end; the one used for
/// this request stays valid.
#[utoipa::path(post, path = "/users/{username}/change_pwd", tag = "users",
    params(("username" = String, Path, description = "Dashboard user name")),
    request_body = ChangePassword,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Wrong old password (field old_pwd) or unusable new one (field new_pwd)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "A clustered node cannot reach the cluster, which takes every change first", body = ErrorBody),
    ))]
pub(crate) async fn change_password(
    auth: Authenticated,
    State(state): State<AppState>,
    PathParams(username): PathParams<String>,
    JsonBody(body): JsonBody<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    check_new_password(&body.new_pwd).map_err(|reason| ApiError::bad_field("new_pwd", reason))?;
    if body.old_pwd.len() > 4 * MAX_PASSWORD_LEN {
        return Err(ApiError::bad_field("old_pwd", "wrong password"));
    }
    if body.new_pwd == body.old_pwd {
        return Err(ApiError::bad_field(
            "new_pwd",
            "must differ from the old password",
        ));
    }
    let store = Arc::clone(&state.store);
    let name = username.clone();
    // Two argon2 runs (verify, hash) and a commit: off the async threads.
    let outcome = tokio::task::spawn_blocking(move || {
        let record: UserRecord = match store.get(Table::Users, &name) {
            Ok(Some(record)) => record,
            Ok(None) => return Outcome::NoUser,
            Err(error) => return Outcome::Failed(error.to_string()),
        };
        if !verify_hash(&record.password_hash, body.old_pwd.as_bytes()) {
            return Outcome::WrongOld;
        }
        match user_record(&name, &body.new_pwd) {
            Ok(record) => Outcome::Changed(record),
            Err(error) => Outcome::Failed(error),
        }
    })
    .await
    .map_err(ApiError::internal)?;
    match outcome {
        Outcome::Changed(record) => {
            state.save(Table::Users, &username, record).await?;
            state.tokens.revoke_user(&username, auth.token.as_deref());
            state.default_passwords.changed(&username);
            tracing::info!(username, by = auth.principal, "dashboard password changed");
            Ok(StatusCode::NO_CONTENT)
        }
        Outcome::NoUser => Err(ApiError::not_found(format!("user {username}"))),
        Outcome::WrongOld => Err(ApiError::bad_field("old_pwd", "wrong password")),
        Outcome::Failed(error) => Err(ApiError::internal(error)),
    }
}
