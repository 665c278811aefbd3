//! Authentication (a password file of argon2id hashes) and authorization (an ACL file of
//! first-match rules).
//!
//! - [`password`]: load, verify, add and remove users.
//! - [`acl`]: parse rules, substitute `${username}` / `${clientid}`, decide publish and
//!   subscribe.

pub mod acl;
pub mod password;

use std::path::PathBuf;

pub use acl::{Acl, Action, ClientIdentity, Permission};
pub use password::{PasswordFile, add_user, hash_password, remove_user};

/// Why a password or ACL file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A line of the password file is not `username:hash`.
    #[error("{path}:{line}: {reason}")]
    PasswordLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A user name that cannot be stored.
    #[error("invalid user name {0:?}: it must be non-empty, without ':' or whitespace")]
    InvalidUsername(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The ACL file is not valid.
    #[error("{origin}: {reason}")]
    Acl {
        /// The file (or other origin) of the rules.
        origin: String,
        /// What is wrong, naming the rule and field.
        reason: String,
    },
}
