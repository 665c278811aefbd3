//! The well-known default password: while a dashboard user still has it, the API and the
//! dashboard answer only requests from loopback addresses, so a node reachable from a network
//! is never administered with `admin`/`public` from elsewhere. The local walkthrough
//! (a browser on the same machine) works unchanged.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hookmq_broker::auth::verify_hash;
use parking_lot::Mutex;

use crate::{
    error::ApiError,
    state::AppState,
    store::{Store, Table},
    users::UserRecord,
};

/// The password of the embedded configuration, known to everyone who read the manual.
pub(crate) const WELL_KNOWN: &str = "public";

/// The dashboard users whose password is still [`WELL_KNOWN`].
#[derive(Debug, Default)]
pub(crate) struct DefaultPasswords {
    /// Read on every request, written when a password changes; never held across `.await`.
    users: Mutex<BTreeSet<String>>,
}

impl DefaultPasswords {
    /// Checks every stored user's hash against [`WELL_KNOWN`] (one argon2 run each, at start).
    ///
    /// # Errors
    /// A store failure, as text.
    pub(crate) fn find(store: &Store) -> Result<Self, String> {
        let users: Vec<(String, UserRecord)> =
            store.list(Table::Users).map_err(|e| e.to_string())?;
        let users = users
            .into_iter()
            .filter(|(_, user)| verify_hash(&user.password_hash, WELL_KNOWN.as_bytes()))
            .map(|(name, _)| name)
            .collect();
        Ok(Self {
            users: Mutex::new(users),
        })
    }

    /// `username` has a new password (never the well-known one: it is too short).
    pub(crate) fn changed(&self, username: &str) {
        self.users.lock().remove(username);
    }

    /// A user who still has the well-known password, if any.
    fn any(&self) -> Option<String> {
        self.users.lock().first().cloned()
    }
}

/// Whether `ip` is this machine's loopback, IPv4-mapped forms included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Middleware: 403 for requests from other addresses while a user has the default password.
pub(crate) async fn loopback_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(user) = state.default_passwords.any() else {
        return next.run(request).await;
    };
    // Served without the peer address (not through `Api::serve`): treated as remote.
    let local = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| is_loopback(peer.ip()));
    if local {
        return next.run(request).await;
    }
    ApiError::forbidden(format!(
        "dashboard user {user} still has the default password, so the API and dashboard \
         answer only on this machine's loopback address: log in from the machine itself \
         (http://127.0.0.1:<port>) and change it, or stop hookmq and run \
         `hookmq user passwd {user}`, or set HOOKMQ_DASHBOARD__DEFAULT_PASSWORD before the \
         first start"
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_8_and_1_in_either_family() {
        for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(local.parse().expect("ip")), "{local}");
        }
        for remote in ["192.0.2.2", "0.0.0.0", "::", "::ffff:192.0.2.2", "fe80::1"] {
            assert!(!is_loopback(remote.parse().expect("ip")), "{remote}");
        }
    }
}
