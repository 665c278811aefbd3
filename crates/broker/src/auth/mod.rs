//! Authentication and authorization from files.
//!
//! - **Authentication**: a password file of `username:argon2id-PHC-hash` lines, see
//!   [`PasswordFile`]. [`hash_password`], [`add_user`] and [`remove_user`] maintain it (the
//!   `hookmq user` command uses them). Checking a password costs tens of milliseconds of CPU
//!   and about 19 MiB of memory by design (argon2's default parameters), so the broker calls
//!   [`PasswordFile::verify`] on a blocking thread, never on the threads that serve sockets.
//! - **Authorization**: a TOML file of first-match rules, see [`Acl`]. [`Acl::check`] answers
//!   with the first matching rule's [`Permission`], or `None` when no rule matches and the
//!   broker's configured default applies (reported as `authz_source = "default"`; a rule's
//!   answer is reported as `"file"`, and an answer from a connection's cache as `"cache"`).
//!
//! Every error is an [`AuthError`] naming the file, and the line, rule or field at fault.

mod acl;
mod password;

use std::path::PathBuf;

pub use acl::{Acl, Action, ClientIdentity, Permission};
pub use password::{PasswordFile, add_user, hash_password, remove_user, verify_hash};

/// Why a password or ACL file cannot be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read or written.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done, e.g. `read the file`.
        action: &'static str,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A line of the password file is not `username:hash` with a valid user name and a
    /// readable argon2 PHC hash.
    #[error("{path}:{line}: {reason}")]
    PasswordLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A user name that cannot be stored in a password file.
    #[error("{path}: invalid user name {username:?}: {reason}")]
    InvalidUsername {
        /// The password file it was meant for.
        path: PathBuf,
        /// The rejected name.
        username: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// argon2 refused to hash a password (it does not for ordinary input).
    #[error("cannot hash the password: {reason}")]
    Hash {
        /// argon2's reason.
        reason: String,
    },
    /// The ACL file is not valid TOML or its top level is not `[[rules]]` tables.
    #[error("{origin}: {reason}")]
    AclSyntax {
        /// The file (or other origin) of the rules.
        origin: String,
        /// What is wrong; the TOML parser's message names the line and column.
        reason: String,
    },
    /// A rule of the ACL file is invalid.
    #[error("{origin}:{line}: rule {rule}: `{field}`: {reason}")]
    AclRule {
        /// The file (or other origin) of the rules.
        origin: String,
        /// The 1-based line of the field, or of the rule's start for a missing field.
        line: usize,
        /// The 1-based index of the rule in the file.
        rule: usize,
        /// The field at fault, e.g. `ipaddr` or `topics[2]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}
