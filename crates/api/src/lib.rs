//! # hookmq-api
//!
//! The management HTTP API under `/api/v5` (and, later, the dashboard), served by axum on the
//! dashboard listener.
//!
//! ## Layout
//! - [`config`]: the `[dashboard]` section.
//! - `auth`: users (stored hashed), login tokens, the bearer guard.
//! - `webhooks`: one file per resource, each exposing `router()`.
//! - `error` / `json`: `{"code","message","field"}` errors and a JSON extractor that names
//!   the field at fault.
//! - `state`: what handlers share.
//!
//! The API reaches the broker only through the webhook engine and its `BrokerHandle`.

mod auth;
mod dashboard;
pub mod config;
mod error;
mod json;
mod state;
mod webhooks;

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{Router, routing::post};
use hookmq_broker::store::Store;
use hookmq_webhooks::WebhookEngine;
use tokio::net::TcpListener;

pub use config::DashboardConfig;
pub use error::ApiError;
pub use state::AppState;
pub use webhooks::{REDACTED, redact, restore};

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
}

/// The API's routes with their state.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/login", post(auth::login))
        .merge(webhooks::router());
    Router::new().nest("/api/v5", api).merge(dashboard::router()).with_state(state)
}

/// A bound API listener.
#[derive(Debug)]
pub struct Api {
    listener: TcpListener,
    state: AppState,
}

impl Api {
    /// Prepares the state (creating the default user if needed) and binds the listener.
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
        tokio::task::spawn_blocking(move || auth::ensure_default_user(&users, &user, &password))
            .await
            .map_err(|e| ApiStartError::Users(e.to_string()))?
            .map_err(ApiStartError::Users)?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| ApiStartError::Bind {
                    address: config.bind,
                    source,
                })?;
        let state = AppState {
            engine,
            store,
            tokens: Arc::default(),
            token_ttl: config.token_ttl,
        };
        Ok(Self { listener, state })
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
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
    }
}
