//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use hookmq_broker::store::Store;
use hookmq_webhooks::WebhookEngine;

use crate::auth::Tokens;

/// Shared by all handlers; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) engine: WebhookEngine,
    pub(crate) store: Arc<Store>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) token_ttl: Duration,
}
