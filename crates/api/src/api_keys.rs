//! `/api_key`: keys for scripts, used as HTTP Basic credentials `api_key:api_secret`.
//!
//! The secret is 32 random bytes (64 hex digits), shown once when the key is created. The
//! store keeps only its SHA-256: the secret is random and long, so a fast hash is as safe as
//! a slow one here (nothing to brute-force), and checking a key on every request costs a
//! microsecond instead of argon2's tens of milliseconds. The digests are compared in constant
//! time. Keys are kept in memory too (loaded at start, changed with the store), so checking
//! one never touches the disk.

use std::{collections::HashMap, fmt::Write as _};

use axum::{Json, extract::State, http::StatusCode};
use hookmq_broker::message::now_ms;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{JsonBody, PathParams},
    state::AppState,
    store::{Store, StoreError, Table},
};

/// `/api_key` and `/api_key/{name}`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
}

/// A key as stored (by key id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    name: String,
    description: String,
    api_key: String,
    /// Hex SHA-256 of the secret.
    secret_sha256: String,
    enable: bool,
    created_at: u64,
    expired_at: Option<u64>,
    created_by: String,
}

/// A key as listings show it (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    /// Unique name.
    name: String,
    /// A note for people.
    description: String,
    /// The key id: the user name of HTTP Basic credentials.
    api_key: String,
    /// Whether it is accepted.
    enable: bool,
    /// When it was created, ms since the epoch.
    created_at: u64,
    /// When it stops being accepted, ms since the epoch; none: never.
    expired_at: Option<u64>,
    /// Who created it.
    created_by: String,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(record: &ApiKeyRecord) -> Self {
        Self {
            name: record.name.clone(),
            description: record.description.clone(),
            api_key: record.api_key.clone(),
            enable: record.enable,
            created_at: record.created_at,
            expired_at: record.expired_at,
            created_by: record.created_by.clone(),
        }
    }
}

/// The answer to `POST /api_key`: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    /// The key.
    #[serde(flatten)]
    key: ApiKeyView,
    /// The secret: the password of HTTP Basic credentials. Shown this once; only its hash
    /// is kept.
    api_secret: String,
}

/// `POST /api_key` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiKey {
    /// Unique name: letters, digits, `-` and `_`, starting with a letter or digit.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")]
    name: String,
    /// A note for people (at most 4096 characters).
    #[serde(default)]
    #[schema(max_length = 4096)]
    description: String,
    /// Whether it is accepted (default true).
    #[serde(default = "yes")]
    enable: bool,
    /// When it stops being accepted, ms since the epoch (in the future, at most the end of
    /// year 9999); none: never.
    #[serde(default)]
    #[schema(maximum = 253_402_300_799_999_u64)]
    expired_at: Option<u64>,
}

/// The latest `expired_at` accepted: 9999-12-31T23:59:59.999Z.
const LATEST_EXPIRY_MS: u64 = 253_402_300_799_999;

const fn yes() -> bool {
    true
}

/// The API keys, by key id.
#[derive(Debug, Default)]
pub(crate) struct ApiKeys {
    /// Read on every request authenticated by a key; written only when keys change.
    by_key: RwLock<HashMap<String, ApiKeyRecord>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

fn secret_digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

impl ApiKeys {
    /// Loads the keys saved in `store`.
    ///
    /// # Errors
    /// The store cannot be read.
    pub(crate) fn load(store: &Store) -> Result<Self, StoreError> {
        let saved: Vec<(String, ApiKeyRecord)> = store.list(Table::ApiKeys)?;
        Ok(Self {
            by_key: RwLock::new(saved.into_iter().collect()),
        })
    }

    /// The name of the key `api_key` if `secret` is its secret and it is enabled and not
    /// expired.
    pub(crate) fn verify(&self, api_key: &str, secret: &str) -> Option<String> {
        let digest = secret_digest(secret);
        let keys = self.by_key.read();
        let record = keys.get(api_key)?;
        let matches = bool::from(digest.as_bytes().ct_eq(record.secret_sha256.as_bytes()));
        let live = record.enable && record.expired_at.is_none_or(|at| at > now_ms());
        (matches && live).then(|| record.name.clone())
    }

    /// A key as the cluster has it now.
    pub(crate) fn remember(&self, api_key: &str, record: ApiKeyRecord) {
        self.by_key.write().insert(api_key.to_owned(), record);
    }

    /// A key the cluster deleted.
    pub(crate) fn forget(&self, api_key: &str) {
        self.by_key.write().remove(api_key);
    }

    fn by_name(&self, name: &str) -> Option<ApiKeyRecord> {
        self.by_key
            .read()
            .values()
            .find(|r| r.name == name)
            .cloned()
    }
}

/// Lists the API keys (never their secrets).
#[utoipa::path(get, path = "/api_key", tag = "api keys",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The keys, by name", body = Vec<ApiKeyView>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(_: Authenticated, State(state): State<AppState>) -> Json<Vec<ApiKeyView>> {
    let mut keys: Vec<ApiKeyView> = state
        .api_keys
        .by_key
        .read()
        .values()
        .map(ApiKeyView::from)
        .collect();
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Json(keys)
}

/// Creates an API key; the answer holds its secret, shown this once.
#[utoipa::path(post, path = "/api_key", tag = "api keys",
    request_body = NewApiKey,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedApiKey),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 503, description = "A clustered node cannot reach the cluster, which takes every change first", body = ErrorBody),
    ))]
async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    if !hookmq_webhooks::spec::valid_name(&new.name) {
        return Err(ApiError::bad_field(
            "name",
            "use letters, digits, - and _, starting with a letter or digit (at most 128)",
        ));
    }
    if new.description.chars().count() > 4096 {
        return Err(ApiError::bad_field(
            "description",
            "at most 4096 characters",
        ));
    }
    let now = now_ms();
    if new.expired_at.is_some_and(|at| at <= now) {
        return Err(ApiError::bad_field(
            "expired_at",
            "must be in the future (ms since the epoch)",
        ));
    }
    if new.expired_at.is_some_and(|at| at > LATEST_EXPIRY_MS) {
        return Err(ApiError::bad_field(
            "expired_at",
            format!("at most {LATEST_EXPIRY_MS} (the end of year 9999)"),
        ));
    }
    let secret = hex(&rand::random::<[u8; 32]>());
    let record = ApiKeyRecord {
        name: new.name,
        description: new.description,
        api_key: hex(&rand::random::<[u8; 8]>()),
        secret_sha256: secret_digest(&secret),
        enable: new.enable,
        created_at: now,
        expired_at: new.expired_at,
        created_by: auth.principal,
    };
    {
        // Reserve the name under the lock, so two creations cannot both take it.
        let mut keys = state.api_keys.by_key.write();
        if keys.values().any(|r| r.name == record.name) {
            return Err(ApiError::conflict(
                "name",
                format!("an API key named {} exists already", record.name),
            ));
        }
        keys.insert(record.api_key.clone(), record.clone());
    }
    if let Err(error) = state
        .save(Table::ApiKeys, &record.api_key, record.clone())
        .await
    {
        state.api_keys.by_key.write().remove(&record.api_key);
        return Err(error);
    }
    tracing::info!(
        name = record.name,
        by = record.created_by,
        "API key created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: ApiKeyView::from(&record),
            api_secret: secret,
        }),
    ))
}

/// One API key (never its secret).
#[utoipa::path(get, path = "/api_key/{name}", tag = "api keys",
    params(("name" = String, Path, description = "The key's name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The key", body = ApiKeyView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
async fn show(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    state
        .api_keys
        .by_name(&name)
        .map(|r| Json(ApiKeyView::from(&r)))
        .ok_or_else(|| ApiError::not_found(format!("API key {name}")))
}

/// Deletes an API key: it stops working at once.
#[utoipa::path(delete, path = "/api_key/{name}", tag = "api keys",
    params(("name" = String, Path, description = "The key's name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 503, description = "A clustered node cannot reach the cluster, which takes every change first", body = ErrorBody),
    ))]
async fn remove(
    auth: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let record = state
        .api_keys
        .by_name(&name)
        .ok_or_else(|| ApiError::not_found(format!("API key {name}")))?;
    state.remove(Table::ApiKeys, &record.api_key).await?;
    state.api_keys.by_key.write().remove(&record.api_key);
    tracing::info!(name, by = auth.principal, "API key deleted");
    Ok(StatusCode::NO_CONTENT)
}
