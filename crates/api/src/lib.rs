//! # hookmq-api
//!
//! The management HTTP API under `/api/v5` and the dashboard, served by axum on the
//! dashboard listener.
//!
//! ## Layout
//! - [`config`]: the `[dashboard]` section.
//! - `auth`: login tokens and the guard (bearer token or API key); `users`: dashboard users
//!   (stored hashed), change password; `api_keys`: keys for scripts; `throttle`: lock-outs
//!   after failed log-ins; `default_password`: loopback only while the well-known password
//!   is in use; `audit`: a log line for every management change.
//! - one file per resource, each exposing `router()`: `webhooks`, `events`, `clients`,
//!   `subscriptions`, `alarms`, `stats` (stats, metrics, nodes), `prometheus`, `openapi`.
//! - `emqx`: EMQX's `/connectors`, `/actions` and `/rules`, mapped onto webhooks.
//! - `error` / `json` / `paging`: `{"code","message","field"}` errors, extractors that name
//!   the field at fault, paged listings.
//! - `state`: what handlers share.
//!
//! Every route goes through utoipa-axum's `OpenApiRouter`, so `GET /api/v5/openapi.json`
//! documents exactly the routes that exist. The API reaches the broker only through the
//! webhook engine and its `BrokerHandle`.

mod alarms;
mod api_keys;
mod audit;
mod auth;
mod clients;
mod cluster_list;
pub mod config;
mod dashboard;
mod dead_letters;
mod default_password;
mod emqx;
mod error;
mod events;
mod json;
mod openapi;
mod paging;
mod prometheus;
mod shared;
mod state;
mod stats;
pub mod store;
mod subscriptions;
mod throttle;
mod users;
mod webhooks;

use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::Router;
use hookmq_webhooks::WebhookEngine;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use config::DashboardConfig;
pub use error::{ApiError, NO_SUCH_ENDPOINT};
pub use state::AppState;
pub use store::Store;
pub use users::set_password;
pub use webhooks::{REDACTED, migrate_saved_webhooks, redact};

/// Where the API is mounted.
pub const BASE_PATH: &str = "/api/v5";

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// The listener could not bind.
    #[error("dashboard.bind: cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The default user could not be created.
    #[error("dashboard users: {0}")]
    Users(String),
    /// The API keys could not be loaded.
    #[error("API keys: {0}")]
    ApiKeys(String),
    /// The cluster's users and API keys could not be joined.
    #[error("cluster: users and API keys: {0}")]
    Cluster(String),
}

/// Every endpoint under `/api/v5`, with its documentation.
fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(api_keys::router())
        .merge(webhooks::router())
        .merge(dead_letters::router())
        .merge(emqx::router())
        .merge(events::router())
        .merge(clients::router())
        .merge(subscriptions::router())
        .merge(stats::router())
        .merge(alarms::router())
        .merge(prometheus::router())
        .merge(openapi::router())
}

/// The OpenAPI document of every endpoint (paths include `/api/v5`).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = OpenApiRouter::<AppState>::with_openapi(openapi::ApiDoc::openapi())
        .nest(BASE_PATH, endpoints())
        .into_openapi();
    openapi::unique_operation_ids(&mut document);
    document
}

/// The API's routes (and the dashboard's) with their state.
pub fn router(state: AppState) -> Router {
    let (api, _) = endpoints().split_for_parts();
    let api = api
        .fallback(error::no_such_endpoint)
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(audit::audit));
    Router::new()
        .nest(BASE_PATH, api)
        .merge(dashboard::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            default_password::loopback_only,
        ))
        .with_state(state)
}

/// A bound API listener.
#[derive(Debug)]
pub struct Api {
    listener: TcpListener,
    state: AppState,
}

impl Api {
    /// Prepares the state (creating the default user if needed, loading the API keys) and
    /// binds the listener.
    ///
    /// # Errors
    /// [`ApiStartError`] naming the problem.
    pub async fn bind(
        config: &DashboardConfig,
        engine: WebhookEngine,
        store: Arc<Store>,
    ) -> Result<Self, ApiStartError> {
        let (user, password, users) = (
            config.default_username.clone(),
            config.default_password.clone(),
            Arc::clone(&store),
        );
        tokio::task::spawn_blocking(move || users::ensure_default_user(&users, &user, &password))
            .await
            .map_err(|e| ApiStartError::Users(e.to_string()))?
            .map_err(ApiStartError::Users)?;
        let users = Arc::clone(&store);
        let default_passwords =
            tokio::task::spawn_blocking(move || default_password::DefaultPasswords::find(&users))
                .await
                .map_err(|e| ApiStartError::Users(e.to_string()))?
                .map_err(ApiStartError::Users)?;
        let keys = Arc::clone(&store);
        let api_keys = tokio::task::spawn_blocking(move || api_keys::ApiKeys::load(&keys))
            .await
            .map_err(|e| ApiStartError::ApiKeys(e.to_string()))?
            .map_err(|e| ApiStartError::ApiKeys(e.to_string()))?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| ApiStartError::Bind {
                    address: config.bind,
                    source,
                })?;
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let state = AppState {
            engine,
            store,
            tokens: Arc::default(),
            token_ttl: config.token_ttl,
            api_keys: Arc::new(api_keys),
            default_password_digest: auth::digest(&config.default_password),
            default_passwords: Arc::new(default_passwords),
            cluster: None,
            sharing: Arc::default(),
            emqx_writes: Arc::default(),
            throttle: Arc::new(throttle::LoginThrottle::new(throttle::Policy {
                max_attempts: config.unsuccessful_login_max_attempts,
                lock: config.unsuccessful_login_lock_duration,
                forget_after: config.unsuccessful_login_interval,
            })),
            started_at_ms,
            started: Instant::now(),
        };
        Ok(Self { listener, state })
    }

    /// Answers `/nodes` and `/cluster` for the whole cluster, and shares users and API
    /// keys with it (waiting, at most 10 s, until the cluster's are stored here).
    ///
    /// # Errors
    /// [`ApiStartError::Cluster`] when the cluster's shared maps cannot be opened.
    pub async fn with_cluster(
        mut self,
        cluster: hookmq_cluster::ClusterHandle,
    ) -> Result<Self, ApiStartError> {
        self.state
            .share(&cluster)
            .await
            .map_err(ApiStartError::Cluster)?;
        clients::answer_for_cluster(&self.state, &cluster)
            .await
            .map_err(|e| ApiStartError::Cluster(e.to_string()))?;
        subscriptions::answer_for_cluster(&self.state, &cluster)
            .await
            .map_err(|e| ApiStartError::Cluster(e.to_string()))?;
        alarms::answer_for_cluster(&self.state, &cluster)
            .await
            .map_err(|e| ApiStartError::Cluster(e.to_string()))?;
        self.state.cluster = Some(cluster);
        Ok(self)
    }

    /// Where it listens.
    ///
    /// # Errors
    /// Only if the socket has no address.
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves.
    ///
    /// # Errors
    /// An I/O error of the listener.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // The peer address feeds login throttling and the default-password rule.
        let service = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
