//! The password file: one `username:argon2id-PHC-hash` per line, `#` comments.
//!
//! Verifying costs tens of milliseconds by design (argon2's defaults); the broker does it off
//! the threads that serve sockets.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use super::AuthError;

/// Users and their password hashes.
#[derive(Debug, Default)]
pub struct PasswordFile {
    /// Hashes in PHC string form, by user name.
    users: HashMap<String, String>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn valid_username(username: &str) -> bool {
    !username.is_empty() && !username.contains(':') && !username.contains(char::is_whitespace)
}

/// A parsed line: `None` for blanks and comments.
fn parse_line(
    path: &Path,
    number: usize,
    line: &str,
) -> Result<Option<(String, String)>, AuthError> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let bad = |reason: &str| AuthError::PasswordLine {
        path: path.to_path_buf(),
        line: number,
        reason: reason.to_owned(),
    };
    let (username, hash) = trimmed
        .split_once(':')
        .ok_or_else(|| bad("expected username:hash"))?;
    if !valid_username(username) {
        return Err(bad("invalid user name"));
    }
    PasswordHash::new(hash).map_err(|e| bad(&format!("unreadable hash: {e}")))?;
    Ok(Some((username.to_owned(), hash.to_owned())))
}

impl PasswordFile {
    /// Reads a password file.
    ///
    /// # Errors
    /// [`AuthError`] naming the file and, for a bad line, its number.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            if let Some((username, hash)) = parse_line(path, index + 1, line)? {
                users.insert(username, hash);
            }
        }
        Ok(Self { users })
    }

    /// Whether `password` is `username`'s. Unknown users fail.
    #[must_use]
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        let Some(stored) = self.users.get(username) else {
            return false;
        };
        PasswordHash::new(stored)
            .is_ok_and(|hash| Argon2::default().verify_password(password, &hash).is_ok())
    }

    /// Number of users.
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
///
/// # Errors
/// [`AuthError::Hash`] if argon2 refuses (it does not for ordinary input).
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Reads the file's lines, or none if it does not exist yet.
fn read_lines(path: &Path) -> Result<Vec<String>, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(AuthError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the file with `lines`, through a temporary file and a rename.
fn write_lines(path: &Path, lines: &[String]) -> Result<(), AuthError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = PathBuf::from(dir);
    temp.push(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("passwd")
    ));
    let mut file = std::fs::File::create(&temp).map_err(io_error(&temp))?;
    for line in lines {
        writeln!(file, "{line}").map_err(io_error(&temp))?;
    }
    file.sync_all().map_err(io_error(&temp))?;
    std::fs::rename(&temp, path).map_err(io_error(path))
}

/// Which line holds `username`, if any.
fn find_user(path: &Path, lines: &[String], username: &str) -> Result<Option<usize>, AuthError> {
    for (index, line) in lines.iter().enumerate() {
        if let Some((name, _)) = parse_line(path, index + 1, line)?
            && name == username
        {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Adds `username` or changes its password, keeping every other line.
///
/// # Errors
/// [`AuthError`] for an invalid user name, an unreadable file or a failed write.
pub fn add_user(path: &Path, username: &str, password: &[u8]) -> Result<(), AuthError> {
    if !valid_username(username) {
        return Err(AuthError::InvalidUsername(username.to_owned()));
    }
    let mut lines = read_lines(path)?;
    let entry = format!("{username}:{}", hash_password(password)?);
    match find_user(path, &lines, username)? {
        Some(index) => lines[index] = entry,
        None => lines.push(entry),
    }
    write_lines(path, &lines)
}

/// Removes `username`; returns whether it was there.
///
/// # Errors
/// [`AuthError`] for an unreadable file or a failed write.
pub fn remove_user(path: &Path, username: &str) -> Result<bool, AuthError> {
    let mut lines = read_lines(path)?;
    match find_user(path, &lines, username)? {
        Some(index) => {
            lines.remove(index);
            write_lines(path, &lines)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_replace_remove() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("passwd");
        std::fs::write(&path, "# users\n\n").expect("write");
        add_user(&path, "alice", b"secret").expect("add");
        add_user(&path, "bob", b"hunter2").expect("add");
        let file = PasswordFile::load(&path).expect("load");
        assert_eq!(file.len(), 2);
        assert!(file.verify("alice", b"secret"));
        assert!(!file.verify("alice", b"wrong"));
        assert!(!file.verify("carol", b"secret"));

        add_user(&path, "alice", b"changed").expect("replace");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# users\n"), "comments kept: {text}");
        assert_eq!(text.matches("alice:").count(), 1);
        let file = PasswordFile::load(&path).expect("load");
        assert!(file.verify("alice", b"changed"));
        assert!(!file.verify("alice", b"secret"));

        assert!(remove_user(&path, "bob").expect("remove"));
        assert!(!remove_user(&path, "bob").expect("second remove"));
        assert!(
            !PasswordFile::load(&path)
                .expect("load")
                .verify("bob", b"hunter2")
        );
    }

    #[test]
    fn hashes_are_salted() {
        let a = hash_password(b"same").expect("hash");
        let b = hash_password(b"same").expect("hash");
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("passwd");
        std::fs::write(&path, "# ok\nalice\n").expect("write");
        let error = PasswordFile::load(&path).expect_err("no colon").to_string();
        assert!(error.contains("passwd:2"), "{error}");
        std::fs::write(&path, "alice:not-a-hash\n").expect("write");
        let error = PasswordFile::load(&path).expect_err("bad hash").to_string();
        assert!(error.contains(":1:"), "{error}");
        assert!(matches!(
            add_user(&path, "a b", b"x"),
            Err(AuthError::InvalidUsername(_))
        ));
    }
}
