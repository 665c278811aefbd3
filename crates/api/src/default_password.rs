//! The well-known default password: while a dashboard user still has it, the API and the
//! dashboard answer only requests from loopback addresses, so a node reachable from a network
//! is never administered with `admin`/`public` from elsewhere. The local walkthrough
//! (a browser on the same machine) works unchanged.

use std::{collections::BTreeSet, net::SocketAddr};

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
    throttle::is_loopback,
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

    /// Whether `username` has the well-known password now (a change from the cluster).
    pub(crate) fn set(&self, username: &str, default: bool) {
        let mut users = self.users.lock();
        if default {
            users.insert(username.to_owned());
        } else {
            users.remove(username);
        }
    }

    /// A user who still has the well-known password, if any.
    fn any(&self) -> Option<String> {
        self.users.lock().first().cloned()
    }
}

/// Whether a `Host` header names this machine's loopback: `localhost`, `127.x.x.x` or
/// `[::1]`, with or without a port.
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(is_loopback)
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
    // A loopback peer that names another host is a browser led there by a web page whose
    // name now resolves to 127.0.0.1 (DNS rebinding): not the local administrator.
    let named_local = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(is_local_host);
    if local && named_local {
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

    #[test]
    fn a_local_host_header_names_loopback() {
        for local in [
            "localhost",
            "LOCALHOST:18083",
            "127.0.0.1:18083",
            "[::1]:18083",
            "[::1]",
        ] {
            assert!(is_local_host(local), "{local}");
        }
        for other in [
            "evil.example",
            "evil.example:18083",
            "192.0.2.2:18083",
            "localhost.evil",
        ] {
            assert!(!is_local_host(other), "{other}");
        }
    }
}
