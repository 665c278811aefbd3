//! What every handler can reach.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hookmq_broker::BrokerHandle;

use crate::store::Store;
use hookmq_webhooks::WebhookEngine;

use crate::{
    api_keys::ApiKeys, auth::Tokens, default_password::DefaultPasswords, throttle::LoginThrottle,
};

/// Shared by all handlers; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) engine: WebhookEngine,
    pub(crate) store: Arc<Store>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) token_ttl: Duration,
    /// API keys, mirrored from the store so checking one costs no disk access.
    pub(crate) api_keys: Arc<ApiKeys>,
    /// SHA-256 of `[dashboard] default_password`: login compares against it to say that the
    /// password still has to be changed (the password itself is not kept).
    pub(crate) default_password_digest: [u8; 32],
    /// Users still on the well-known password: while there is one, only loopback gets in.
    pub(crate) default_passwords: Arc<DefaultPasswords>,
    /// Failed log-ins by user, API key and source address.
    pub(crate) throttle: Arc<LoginThrottle>,
    /// Users and API keys shared with the cluster, once [`AppState::share`] joined it.
    pub(crate) sharing: Arc<std::sync::OnceLock<crate::shared::Sharing>>,
    /// Held by a change of EMQX-style objects from loading the catalog to committing it
    /// (async: held across the store and the engine; changes are rare).
    pub(crate) emqx_writes: Arc<tokio::sync::Mutex<()>>,
    /// The cluster, when this node is part of one (`/nodes`, `/cluster`).
    pub(crate) cluster: Option<hookmq_cluster::ClusterHandle>,
    /// When the API started (for `/nodes`): wall clock in ms, and a monotonic instant.
    pub(crate) started_at_ms: u64,
    pub(crate) started: Instant,
}

impl AppState {
    /// The broker behind the engine.
    pub(crate) fn broker(&self) -> &BrokerHandle {
        self.engine.broker()
    }
}
