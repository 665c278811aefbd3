//! Login tokens and the guard every authenticated endpoint takes ([`Authenticated`]): either
//! `Authorization: Bearer <token>` from `POST /login`, or HTTP Basic `api_key:api_secret`
//! with an API key (see `api_keys`).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{ConnectInfo, FromRequestParts, State},
    http::{Extensions, StatusCode, request::Parts},
};
use base64::Engine as _;
use hookmq_broker::auth::verify_hash;

use crate::store::Table;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    audit::AuditSlot,
    error::{ApiError, ErrorBody},
    json::JsonBody,
    state::AppState,
    throttle::Subject,
    users::UserRecord,
};

/// `/login` and `/logout`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
}

/// Login tokens in memory (a restart logs everyone out).
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// token → (user, expiry). Short critical sections: insert, look up, prune; never across
    /// `.await`.
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
        // A huge configured TTL must not overflow the clock.
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        live.insert(token.clone(), (username.to_owned(), expires));
        token
    }

    fn user(&self, token: &str) -> Option<String> {
        let live = self.live.lock();
        live.get(token)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(user, _)| user.clone())
    }

    /// Ends one login.
    fn revoke(&self, token: &str) {
        self.live.lock().remove(token);
    }

    /// Ends every session of `username` but `keep` (after a password change).
    pub(crate) fn revoke_user(&self, username: &str, keep: Option<&str>) {
        self.live
            .lock()
            .retain(|token, (user, _)| user != username || Some(token.as_str()) == keep);
    }
}

/// SHA-256 of a password, to compare with the default one without keeping it.
pub(crate) fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

/// Longest user name or API key id looked at (longer ones are refused before anything is
/// kept or logged about them).
const MAX_NAME_LEN: usize = 256;
/// Longest password looked at.
const MAX_SECRET_LEN: usize = 1024;

/// `POST /login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// Dashboard user name (default `admin`).
    #[schema(max_length = 256)]
    username: String,
    /// Its password (default `public`).
    #[schema(max_length = 1024)]
    password: String,
}

/// `POST /login` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoginAnswer {
    /// Send it as `Authorization: Bearer <token>`; valid for `[dashboard] token_ttl`.
    token: String,
    /// Who logged in.
    username: String,
    /// Whether the user still has the configured default password and should change it
    /// (`POST /users/{username}/change_pwd`).
    must_change_password: bool,
}

/// A hash of a password nobody has, spent on log-ins of unknown users; made on first use.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        hookmq_broker::auth::hash_password(b"hookmq: no such dashboard user").unwrap_or_default()
    })
}

/// Logs in with a dashboard user's name and password.
#[utoipa::path(post, path = "/login", tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "A bearer token", body = LoginAnswer),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Wrong user name or password (code BAD_USERNAME_OR_PWD)", body = ErrorBody),
        (status = 429, description = "Too many failed log-ins for this user or from this address (code TOO_MANY_ATTEMPTS); `Retry-After` says when to try again", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Json<LoginAnswer>, ApiError> {
    // Bounded before anything is kept or logged about them.
    if login.username.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::bad_field(
            "username",
            format!("at most {MAX_NAME_LEN} characters"),
        ));
    }
    if login.password.chars().count() > MAX_SECRET_LEN {
        return Err(ApiError::bad_field(
            "password",
            format!("at most {MAX_SECRET_LEN} characters"),
        ));
    }
    let subjects = Subject::of(Subject::User(login.username.clone()), peer.ip());
    let attempt = state
        .throttle
        .begin(subjects)
        .map_err(ApiError::too_many_attempts)?;
    let store = Arc::clone(&state.store);
    let username = login.username.clone();
    let password = login.password;
    // Hash checks take tens of ms: off the async threads.
    let (verified, password) = tokio::task::spawn_blocking(move || {
        let record: Option<UserRecord> = store.get(Table::Users, &username).ok().flatten();
        // An unknown user costs the same hash check, so timing does not tell which names exist.
        let verified = match record {
            Some(r) => verify_hash(&r.password_hash, password.as_bytes()),
            None => {
                let _ = verify_hash(unknown_user_hash(), password.as_bytes());
                false
            }
        };
        (verified, password)
    })
    .await
    .map_err(ApiError::internal)?;
    if !verified {
        let locked = attempt.failed();
        tracing::warn!(
            source = %peer.ip(),
            username = login.username,
            locked_for_s = locked.map(|d| d.as_secs()),
            "dashboard login failed"
        );
        return Err(ApiError {
            code: "BAD_USERNAME_OR_PWD",
            ..ApiError::unauthorized("bad user name or password")
        });
    }
    // The stored hash just verified `password`, so it verifies the default password exactly
    // when `password` is the default: comparing digests answers without a second argon2 run.
    let must_change_password = bool::from(digest(&password).ct_eq(&state.default_password_digest));
    attempt.succeeded();
    tracing::info!(target: "hookmq::audit", who = %login.username, from = %peer.ip(), "dashboard login");
    let token = state.tokens.issue(&login.username, state.token_ttl);
    Ok(Json(LoginAnswer {
        token,
        username: login.username,
        must_change_password,
    }))
}

/// Ends the login whose token the request carries (a request authenticated with an API
/// key ends nothing). A body, such as EMQX's `{"username": ...}`, is ignored.
#[utoipa::path(post, path = "/logout", tag = "auth",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Logged out: the token no longer works"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
pub(crate) async fn logout(auth: Authenticated, State(state): State<AppState>) -> StatusCode {
    if let Some(token) = &auth.token {
        state.tokens.revoke(token);
    }
    StatusCode::NO_CONTENT
}

/// Proof that a request carries valid credentials; add it to a handler's arguments (first,
/// so a request without credentials is a 401 before anything else is looked at).
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The dashboard user, or `api_key:<name>` for an API key.
    pub(crate) principal: String,
    /// The login token used, if any.
    pub(crate) token: Option<String>,
}

const HOW: &str = "log in (POST /api/v5/login) and send Authorization: Bearer <token>, \
                   or send HTTP Basic credentials of an API key";

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let found = Self::check(parts, state);
        if let (Ok(found), Some(slot)) = (&found, parts.extensions.get::<AuditSlot>()) {
            slot.set(&found.principal);
        }
        found
    }
}

impl Authenticated {
    /// The credentials of a request, checked.
    fn check(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized(HOW))?
            .to_str()
            .map_err(|_| ApiError::unauthorized(HOW))?;
        let (scheme, credentials) = header
            .trim()
            .split_once(' ')
            .ok_or_else(|| ApiError::unauthorized(HOW))?;
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            state
                .tokens
                .user(credentials)
                .map(|principal| Self {
                    principal,
                    token: Some(credentials.to_owned()),
                })
                .ok_or_else(|| ApiError::unauthorized("token unknown or expired: log in again"))
        } else if scheme.eq_ignore_ascii_case("basic") {
            let bad =
                || ApiError::unauthorized("API key unknown, disabled or expired, or wrong secret");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (key, secret) = text.split_once(':').ok_or_else(bad)?;
            if key.len() > MAX_NAME_LEN {
                return Err(bad());
            }
            let source = peer_ip(&parts.extensions);
            let subjects = Subject::of(Subject::ApiKey(key.to_owned()), source);
            state
                .throttle
                .check(&subjects)
                .map_err(ApiError::too_many_attempts)?;
            let Some(name) = state.api_keys.verify(key, secret) else {
                let locked = state.throttle.failed(&subjects);
                tracing::warn!(
                    %source,
                    api_key = key,
                    locked_for_s = locked.map(|d| d.as_secs()),
                    "API key refused"
                );
                return Err(bad());
            };
            state.throttle.succeeded(&subjects);
            Ok(Self {
                principal: format!("api_key:{name}"),
                token: None,
            })
        } else {
            Err(ApiError::unauthorized(HOW))
        }
    }
}

/// The address a request came from; unspecified when served without it (not through
/// `Api::serve`), so every such request shares one throttling record.
fn peer_ip(extensions: &Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| {
            peer.ip()
        })
}
