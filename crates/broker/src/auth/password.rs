//! The password file: `username:argon2-PHC-hash` lines, loaded, checked and maintained.

use std::{
    collections::HashMap,
    fmt, fs,
    io::{self, Write},
    path::Path,
    sync::OnceLock,
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version,
    password_hash::{PasswordHash, PasswordHashString, SaltString, rand_core::OsRng},
};

use super::AuthError;

/// The users of a password file and their argon2 hashes.
///
/// # Format
/// A UTF-8 text file with one `username:hash` per line, where `hash` is an argon2 PHC string
/// such as [`hash_password`] makes (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), and
/// `username:hash:superuser` for a superuser (EMQX's `is_superuser`: every publish and
/// subscribe is allowed, whatever the ACL says). Lines
/// whose first non-blank character is `#` are comments; blank lines are ignored; whitespace
/// around a line is ignored. A user name is non-empty, has no `:` and no whitespace, does not
/// start with `#`, and appears at most once.
///
/// ```text
/// # hookmq users
/// alice:$argon2id$v=19$m=19456,t=2,p=1$...$...
/// ops:$argon2id$v=19$m=19456,t=2,p=1$...$...:superuser
/// ```
///
/// # Cost
/// [`verify`](Self::verify) runs argon2 with the parameters stored in the hash; with the
/// default parameters (19 MiB of memory, 2 passes, 1 lane) that is tens of milliseconds of CPU
/// and 19 MiB of memory per call, on purpose, to slow down guessing. Call it on a blocking
/// thread (`tokio::task::spawn_blocking`) and bound how many run at once.
#[derive(Default)]
pub struct PasswordFile {
    /// Parsed hashes, and whether the user is a superuser, by user name.
    users: HashMap<String, (PasswordHashString, bool)>,
}

impl fmt::Debug for PasswordFile {
    /// Shows how many users there are, never their hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users.len())
            .finish()
    }
}

impl PasswordFile {
    /// Reads and checks a password file: every line must parse, every hash must be a readable
    /// argon2 PHC string, and no user may appear twice.
    ///
    /// # Errors
    /// [`AuthError::Io`] if the file cannot be read, [`AuthError::PasswordLine`] naming the
    /// file and line of the first bad line.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = fs::read_to_string(path).map_err(io_error(path, "read the file"))?;
        let users = parse(path, &text)?
            .into_iter()
            .map(|entry| (entry.username.to_owned(), (entry.hash, entry.superuser)))
            .collect();
        Ok(Self { users })
    }

    /// Whether `password` is `username`'s password.
    ///
    /// An unknown user gets `false`, after the same amount of argon2 work as a known one so
    /// that response times do not tell which user names exist. The final comparison is
    /// constant-time (argon2's `verify_password`). See the type's docs for the cost.
    #[must_use]
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        match self.users.get(username) {
            Some((hash, _)) => password_matches(hash, password),
            None => {
                if let Some(dummy) = dummy_hash() {
                    let _ = password_matches(dummy, password);
                }
                false
            }
        }
    }

    /// Whether `username` is marked `superuser`.
    #[must_use]
    pub fn is_superuser(&self, username: &str) -> bool {
        self.users
            .get(username)
            .is_some_and(|(_, superuser)| *superuser)
    }

    /// The number of users.
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users (then nobody can log in with a password).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn password_matches(hash: &PasswordHashString, password: &[u8]) -> bool {
    Argon2::default()
        .verify_password(password, &hash.password_hash())
        .is_ok()
}

/// Whether `password` matches a PHC hash made by [`hash_password`] (false for a hash that
/// does not parse). Costs as much as one [`PasswordFile::verify`].
#[must_use]
pub fn verify_hash(hash: &str, password: &[u8]) -> bool {
    parse_hash(hash).is_ok_and(|hash| password_matches(&hash, password))
}

/// A hash of a password nobody knows, to spend on unknown users; made on first use.
fn dummy_hash() -> Option<&'static PasswordHashString> {
    static DUMMY: OnceLock<Option<PasswordHashString>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"hookmq: no such user", &salt)
                .ok()
                .map(|hash| hash.serialize())
        })
        .as_ref()
}

/// Hashes `password` with argon2id, argon2's default parameters (19 MiB, 2 passes, 1 lane)
/// and a random 16-byte salt from the operating system, as a PHC string ready for a password
/// file line. Costs as much as one [`PasswordFile::verify`].
///
/// # Errors
/// [`AuthError::Hash`] if argon2 refuses (it does not for ordinary passwords).
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash {
            reason: e.to_string(),
        })
}

/// Adds `username` with `password` to the password file at `path`, or changes the password if
/// the user is there. The file is created (mode `0600` on Unix) if missing; other lines,
/// comments included, are kept in order. The new content is written to a temporary file
/// beside it and renamed over it, so readers see the old file or the new one, never a partial
/// one; an existing file's permissions are kept, and a symbolic link is followed.
///
/// Two processes changing the same file at once can lose one of the changes.
///
/// # Errors
/// [`AuthError::InvalidUsername`] for a name that cannot be stored (see [`PasswordFile`]),
/// [`AuthError::PasswordLine`] if the existing file has a bad line (it is left alone),
/// [`AuthError::Io`] if it cannot be read or replaced, [`AuthError::Hash`] if hashing fails.
pub fn add_user(path: &Path, username: &str, password: &[u8]) -> Result<(), AuthError> {
    if let Some(reason) = username_problem(username) {
        return Err(AuthError::InvalidUsername {
            path: path.to_path_buf(),
            username: username.to_owned(),
            reason,
        });
    }
    let text = read_if_exists(path)?.unwrap_or_default();
    let existing = parse(path, &text)?
        .into_iter()
        .find(|entry| entry.username == username)
        .map(|entry| (entry.index, entry.superuser));
    let superuser = existing.is_some_and(|(_, superuser)| superuser);
    let entry = format!(
        "{username}:{}{}",
        hash_password(password)?,
        if superuser { SUPERUSER } else { "" }
    );
    let mut lines: Vec<&str> = text.lines().collect();
    match existing {
        Some((index, _)) => lines[index] = &entry,
        None => lines.push(&entry),
    }
    write_atomically(path, &lines)
}

/// Removes `username` from the password file at `path`, keeping every other line. Returns
/// whether the user was there; a missing file has no users. The file is replaced as by
/// [`add_user`].
///
/// # Errors
/// [`AuthError::PasswordLine`] if the file has a bad line (it is left alone),
/// [`AuthError::Io`] if it cannot be read or replaced.
pub fn remove_user(path: &Path, username: &str) -> Result<bool, AuthError> {
    let Some(text) = read_if_exists(path)? else {
        return Ok(false);
    };
    let Some(index) = parse(path, &text)?
        .into_iter()
        .find(|entry| entry.username == username)
        .map(|entry| entry.index)
    else {
        return Ok(false);
    };
    let lines: Vec<&str> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| (i != index).then_some(line))
        .collect();
    write_atomically(path, &lines)?;
    Ok(true)
}

/// Why `username` cannot be stored in a password file, if it cannot.
fn username_problem(username: &str) -> Option<&'static str> {
    if username.is_empty() {
        Some("it is empty")
    } else if username.contains(':') {
        Some("it contains ':'")
    } else if username.contains(char::is_whitespace) {
        Some("it contains whitespace")
    } else if username.starts_with('#') {
        Some("it starts with '#', which marks a comment")
    } else {
        None
    }
}

/// One user line of a password file.
struct Entry<'a> {
    /// 0-based line index.
    index: usize,
    username: &'a str,
    hash: PasswordHashString,
    superuser: bool,
}

/// What ends a superuser's line.
const SUPERUSER: &str = ":superuser";

/// Parses every line of a password file's text; `path` names it in errors.
fn parse<'a>(path: &Path, text: &'a str) -> Result<Vec<Entry<'a>>, AuthError> {
    let mut entries: Vec<Entry<'a>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |reason: String| AuthError::PasswordLine {
            path: path.to_path_buf(),
            line: index + 1,
            reason,
        };
        // A byte-order mark some editors add is not part of the first user name.
        let line = if index == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (username, hash) = line
            .split_once(':')
            .ok_or_else(|| bad("expected `username:hash`, found no ':'".to_owned()))?;
        if let Some(reason) = username_problem(username) {
            return Err(bad(format!("invalid user name {username:?}: {reason}")));
        }
        if let Some(first) = seen.insert(username, index + 1) {
            return Err(bad(format!(
                "user {username:?} appears again (first on line {first})"
            )));
        }
        let (hash, superuser) = match hash.strip_suffix(SUPERUSER) {
            Some(hash) => (hash, true),
            None if hash.contains(':') => {
                return Err(bad(format!(
                    "user {username:?}: after the hash only `{SUPERUSER}` may follow"
                )));
            }
            None => (hash, false),
        };
        let hash =
            parse_hash(hash).map_err(|reason| bad(format!("user {username:?}: {reason}")))?;
        entries.push(Entry {
            index,
            username,
            hash,
            superuser,
        });
    }
    Ok(entries)
}

/// Parses and checks an argon2 PHC string, so that a bad one fails at load time rather than
/// at every login.
fn parse_hash(text: &str) -> Result<PasswordHashString, String> {
    if text.is_empty() {
        return Err("the hash is missing".to_owned());
    }
    let hash = PasswordHash::new(text).map_err(|e| format!("unreadable PHC hash: {e}"))?;
    Algorithm::try_from(hash.algorithm).map_err(|_| {
        format!(
            "unsupported hash algorithm `{}` (expected argon2id)",
            hash.algorithm
        )
    })?;
    if let Some(version) = hash.version {
        Version::try_from(version).map_err(|_| format!("unsupported argon2 version {version}"))?;
    }
    Params::try_from(&hash).map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("the PHC string has no salt or no hash".to_owned());
    }
    Ok(hash.serialize())
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> AuthError + 'a {
    move |source| AuthError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The file's text, or `None` if it does not exist.
fn read_if_exists(path: &Path) -> Result<Option<String>, AuthError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, "read the file")(e)),
    }
}

/// Replaces the file at `path` (or the file its symbolic link points to) with `lines`, through
/// a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, lines: &[&str]) -> Result<(), AuthError> {
    let target = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(io_error(path, "follow the symbolic link"))?
        }
        _ => path.to_path_buf(),
    };
    let name = target.file_name().ok_or_else(|| AuthError::Io {
        path: path.to_path_buf(),
        action: "write the file",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
    })?;
    let dir = target
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{:016x}.tmp", rand::random::<u64>()));
    let temp = dir.join(temp_name);
    let result = write_and_rename(path, &target, &temp, lines);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_and_rename(
    path: &Path,
    target: &Path,
    temp: &Path,
    lines: &[&str],
) -> Result<(), AuthError> {
    let permissions = fs::metadata(target).ok().map(|meta| meta.permissions());
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(temp)
        .map_err(io_error(path, "create a temporary file beside it"))?;
    if let Some(permissions) = permissions {
        file.set_permissions(permissions)
            .map_err(io_error(path, "copy its permissions"))?;
    }
    let mut text = String::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(path, "write the temporary file"))?;
    drop(file);
    fs::rename(temp, target).map_err(io_error(path, "replace the file"))?;
    // Make the rename itself durable; not every platform can open a directory.
    if let Some(dir) = temp.parent()
        && let Ok(dir) = fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use test_case::test_case;

    use super::*;

    /// One hash for tests that only need a well-formed line (hashing is slow on purpose).
    fn sample_hash() -> &'static str {
        static HASH: OnceLock<String> = OnceLock::new();
        HASH.get_or_init(|| hash_password(b"sample").expect("hash"))
    }

    fn write_file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let path = dir.path().join("passwd");
        fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn hash_is_salted_argon2id_with_default_params() {
        let a = hash_password(b"same").expect("hash");
        let b = hash_password(b"same").expect("hash");
        assert_ne!(a, b, "random salt");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
    }

    #[test]
    fn load_skips_comments_and_verifies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let alice = hash_password(b"wonderland").expect("hash");
        let text = format!(
            "# users\n\n   # indented comment\nalice:{alice}\r\n  bob:{}  \n",
            sample_hash()
        );
        let file = PasswordFile::load(&write_file(&dir, &text)).expect("load");
        assert_eq!(file.len(), 2);
        assert!(!file.is_empty());
        assert!(file.verify("alice", b"wonderland"));
        assert!(!file.verify("alice", b"Wonderland"), "wrong password");
        assert!(!file.verify("alice", b""), "empty password");
        assert!(file.verify("bob", b"sample"));
        assert!(
            !file.verify("bob", b"wonderland"),
            "another user's password"
        );
        assert!(!file.verify("carol", b"wonderland"), "unknown user");
        assert!(!file.verify("", b"wonderland"), "no user name");
    }

    #[test]
    fn a_superuser_is_marked_and_keeps_the_mark_when_its_password_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let hash = sample_hash();
        let path = write_file(
            &dir,
            &format!(
                "ops:{hash}:superuser
bob:{hash}
"
            ),
        );
        let file = PasswordFile::load(&path).expect("load");
        assert!(file.verify("ops", b"sample"));
        assert!(file.is_superuser("ops"));
        assert!(!file.is_superuser("bob"));
        assert!(!file.is_superuser("nobody"));
        add_user(&path, "ops", b"changed").expect("change");
        let file = PasswordFile::load(&path).expect("load");
        assert!(file.verify("ops", b"changed") && file.is_superuser("ops"));
        let bad = write_file(
            &dir,
            &format!(
                "eve:{hash}:root
"
            ),
        );
        assert!(
            PasswordFile::load(&bad).is_err(),
            "only :superuser may follow the hash"
        );
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!("\u{feff}bob:{}\n", sample_hash());
        let file = PasswordFile::load(&write_file(&dir, &text)).expect("load");
        assert!(file.verify("bob", b"sample"));
    }

    #[test]
    fn empty_file_has_no_users() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = PasswordFile::load(&write_file(&dir, "# nobody yet\n")).expect("load");
        assert!(file.is_empty());
        assert_eq!(file.len(), 0);
        assert!(!file.verify("alice", b"x"));
    }

    #[test]
    fn debug_does_not_show_hashes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!("alice:{}\n", sample_hash());
        let file = PasswordFile::load(&write_file(&dir, &text)).expect("load");
        let shown = format!("{file:?}");
        assert_eq!(shown, "PasswordFile { users: 1 }");
    }

    #[test_case("alice", "no ':'"; "no colon")]
    #[test_case(":HASH", "it is empty"; "empty user name")]
    #[test_case("al ice:HASH", "whitespace"; "space in user name")]
    #[test_case("alice:", "the hash is missing"; "missing hash")]
    #[test_case("alice:secret", "unreadable PHC hash"; "plain text password")]
    #[test_case("alice:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA", "no salt or no hash"; "no output")]
    #[test_case(
        "alice:$pbkdf2-sha256$i=1000$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "unsupported hash algorithm `pbkdf2-sha256`"; "other algorithm"
    )]
    #[test_case(
        "alice:$argon2id$v=19$m=1,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "invalid argon2 parameters"; "bad params"
    )]
    #[test_case(
        "alice:$argon2id$v=18$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "unsupported argon2 version 18"; "bad version"
    )]
    #[test_case("alice:HASH\nalice:HASH", "appears again (first on line 3)"; "duplicate user")]
    fn bad_lines_are_named(bad: &str, reason: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let bad = bad.replace("HASH", sample_hash());
        // Two lines of comment and blank first, so the bad line is line 3 (or 4 for a dup).
        let path = write_file(&dir, &format!("# users\n\n{bad}\n"));
        let error = PasswordFile::load(&path).expect_err("bad line");
        let line = if reason.contains("again") { 4 } else { 3 };
        assert!(
            matches!(&error, AuthError::PasswordLine { line: l, .. } if *l == line),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("{}:{line}: ", path.display())),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent");
        let error = PasswordFile::load(&path).expect_err("missing").to_string();
        assert!(error.contains("absent: cannot read the file"), "{error}");
    }

    #[test]
    fn add_user_creates_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("passwd");
        add_user(&path, "alice", b"wonderland").expect("add");
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("alice:$argon2id$"), "{text}");
        assert!(text.ends_with('\n'));
        assert!(
            PasswordFile::load(&path)
                .expect("load")
                .verify("alice", b"wonderland")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["passwd"], "no temporary file left behind");
    }

    #[test]
    fn add_user_replaces_in_place_and_keeps_other_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let hash = sample_hash();
        let path = write_file(
            &dir,
            &format!("# users\nbob:{hash}\n\n# alice is next\nalice:{hash}\ncarol:{hash}\n"),
        );
        add_user(&path, "alice", b"changed").expect("replace");
        add_user(&path, "dave", b"new").expect("append");
        let text = fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(lines[0], "# users");
        assert_eq!(lines[1], format!("bob:{hash}"));
        assert_eq!(lines[2], "");
        assert_eq!(lines[3], "# alice is next");
        assert!(lines[4].starts_with("alice:$argon2id$") && lines[4] != format!("alice:{hash}"));
        assert_eq!(lines[5], format!("carol:{hash}"));
        assert!(lines[6].starts_with("dave:$argon2id$"));
        let file = PasswordFile::load(&path).expect("load");
        assert_eq!(file.len(), 4);
        assert!(file.verify("alice", b"changed"));
        assert!(!file.verify("alice", b"sample"), "old password gone");
        assert!(file.verify("carol", b"sample"));
        assert!(file.verify("dave", b"new"));
    }

    #[cfg(unix)]
    #[test]
    fn add_user_keeps_permissions_and_follows_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let real = write_file(&dir, "# real\n");
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).expect("chmod");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        add_user(&link, "alice", b"x").expect("add through link");
        assert!(fs::symlink_metadata(&link).expect("stat").is_symlink());
        let text = fs::read_to_string(&real).expect("read");
        assert!(text.starts_with("# real\nalice:"), "{text}");
        let mode = fs::metadata(&real).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test_case("", "it is empty"; "empty")]
    #[test_case("a:b", "':'"; "colon")]
    #[test_case("a b", "whitespace"; "space")]
    #[test_case("a\tb", "whitespace"; "tab")]
    #[test_case("#admin", "comment"; "comment marker")]
    fn add_user_rejects_bad_names(username: &str, reason: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("passwd");
        let error = add_user(&path, username, b"x").expect_err("invalid");
        assert!(
            matches!(&error, AuthError::InvalidUsername { username: u, .. } if u == username),
            "{error:?}"
        );
        assert!(error.to_string().contains(reason), "{error}");
        assert!(!path.exists(), "nothing written");
    }

    #[test]
    fn add_user_leaves_a_broken_file_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_file(&dir, "# ok\nbroken line\n");
        let error = add_user(&path, "alice", b"x").expect_err("broken file");
        assert!(error.to_string().contains("passwd:2:"), "{error}");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "# ok\nbroken line\n"
        );
    }

    #[test]
    fn remove_user_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let hash = sample_hash();
        let path = write_file(&dir, &format!("# users\nalice:{hash}\nbob:{hash}\n"));
        assert!(remove_user(&path, "alice").expect("remove"));
        assert!(!remove_user(&path, "alice").expect("second remove"));
        assert!(!remove_user(&path, "nobody").expect("unknown"));
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("# users\nbob:{hash}\n")
        );
        let file = PasswordFile::load(&path).expect("load");
        assert!(!file.verify("alice", b"sample"));
        assert!(file.verify("bob", b"sample"));
        assert!(!remove_user(&dir.path().join("absent"), "bob").expect("missing file"));
    }
}
