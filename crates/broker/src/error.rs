//! The broker layer's errors: what can stop it from starting.

use std::{io, net::SocketAddr};

use crate::{auth::AuthError, config::ConfigError};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not bind its address.
    #[error("listeners.{listener}.bind: cannot listen on {address}: {source}")]
    Bind {
        /// Listener name (`tcp`, `ws`, `tls`, `wss`).
        listener: String,
        /// The address.
        address: SocketAddr,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A TLS listener's certificate or key is unusable.
    #[error("listeners.{listener}: {reason}")]
    Tls {
        /// Listener name.
        listener: String,
        /// What is wrong.
        reason: String,
    },
    /// The password or ACL file is unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The journal of retained messages and sessions cannot be opened (`node.data_dir`).
    #[error("persistence (node.data_dir): {0}")]
    Persistence(#[from] hookmq_journal::JournalError),
}
