//! The `[dashboard]` section: where the API and dashboard listen, and the first user.

use std::{net::SocketAddr, time::Duration};

use hookmq_broker::duration;
use serde::{Deserialize, Serialize};

/// Dashboard and API settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Whether to serve the API and dashboard.
    pub enable: bool,
    /// Address and port.
    pub bind: SocketAddr,
    /// User created at first start when no user exists.
    pub default_username: String,
    /// That user's password (stored hashed; change it after the first login).
    pub default_password: String,
    /// How long a login token stays valid.
    #[serde(with = "duration")]
    pub token_ttl: Duration,
    /// Failed log-ins (dashboard password or API key secret) a user, key or source address
    /// may have before it is locked out: its attempts get 429 with `Retry-After` until the
    /// lock-out ends. 0 turns throttling off.
    pub unsuccessful_login_max_attempts: u32,
    /// The first lock-out; each further failure doubles it, up to 64 times this.
    #[serde(with = "duration")]
    pub unsuccessful_login_lock_duration: Duration,
    /// Failures are forgotten this long after the last one, or after the end of its
    /// lock-out.
    #[serde(with = "duration")]
    pub unsuccessful_login_interval: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enable: true,
            bind: SocketAddr::from(([0, 0, 0, 0], 18083)),
            default_username: "admin".into(),
            default_password: "public".into(),
            token_ttl: Duration::from_secs(3600),
            unsuccessful_login_max_attempts: 5,
            unsuccessful_login_lock_duration: Duration::from_secs(10),
            unsuccessful_login_interval: Duration::from_secs(300),
        }
    }
}
