//! The audit log: one line for every management change (any request but GET and HEAD) that
//! named a principal: who (dashboard user or `api_key:<name>`), from where (the peer
//! address), what (method and path) and how it ended (status). Request bodies are never
//! logged, so no secret is.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, OriginalUri, Request},
    http::Method,
    middleware::Next,
    response::Response,
};
use parking_lot::Mutex;

/// Where the guard ([`crate::auth::Authenticated`]) leaves the principal it found, for the
/// line written once the answer is known.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditSlot(Arc<Mutex<Option<String>>>);

impl AuditSlot {
    /// Records who made the request.
    pub(crate) fn set(&self, principal: &str) {
        *self.0.lock() = Some(principal.to_owned());
    }
}

/// Middleware: the audit line of a change.
pub(crate) async fn audit(mut request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    // Under `nest`, the URI has lost the `/api/v5` prefix; the original has it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |OriginalUri(uri)| uri.path())
        .to_owned();
    let from = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string());
    let response = next.run(request).await;
    let who = slot.0.lock().take();
    if let Some(who) = who {
        tracing::info!(
            target: "hookmq::audit",
            who = %who,
            from = %from.as_deref().unwrap_or("-"),
            what = %format_args!("{method} {path}"),
            status = response.status().as_u16(),
            "management change"
        );
    }
    response
}
