//! The dashboard: static assets embedded in the binary, served at `/`. (Being written.)

use axum::Router;

use crate::state::AppState;

/// The dashboard's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
