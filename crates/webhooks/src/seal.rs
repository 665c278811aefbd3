//! Secrets at rest: a webhook's signing secret and its secret header values are sealed
//! (ChaCha20-Poly1305, ring) before its spec is written, and opened when it is read.
//!
//! The key is 32 random bytes, made at first start in `<data_dir>/secret.key` (mode 0600,
//! 64 hex digits), or given as `HOOKMQ_SECRET_KEY` (64 hex digits; then no file is
//! written). A sealed value is `sealed:v1:<base64url(nonce ‖ ciphertext ‖ tag)>`, bound to
//! its webhook and field (the additional data), so a value copied to another webhook or
//! field does not open.

use std::{
    fmt, fs,
    io::{self, Write as _},
    path::Path,
    sync::Arc,
};

use base64::Engine as _;
use ring::{
    aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

/// The prefix of a sealed value.
const PREFIX: &str = "sealed:v1:";
/// The key file's name under the data directory.
pub const KEY_FILE: &str = "secret.key";
/// Key length in bytes.
const KEY_LEN: usize = 32;

/// Seals and opens secrets with the node's key. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    key: Arc<LessSafeKey>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(******)")
    }
}

impl Sealer {
    /// The key given as 64 hex digits (`HOOKMQ_SECRET_KEY`), else the one in
    /// `<data_dir>/secret.key`, made there (mode 0600) if there is none.
    ///
    /// # Errors
    /// A given key or key file that is not 64 hex digits, or a key file that cannot be read
    /// or made.
    pub fn load(data_dir: &Path, given: Option<&str>) -> io::Result<Self> {
        if let Some(text) = given {
            return Self::from_hex(text).map_err(|reason| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("HOOKMQ_SECRET_KEY: {reason}"),
                )
            });
        }
        let path = data_dir.join(KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(&text).map_err(|reason| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {reason}", path.display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| io::Error::other("no random bytes for the secret key"))?;
                let text: String = key.iter().map(|b| format!("{b:02x}")).collect();
                fs::create_dir_all(data_dir)?;
                write_private(&path, format!("{text}\n").as_bytes())?;
                tracing::info!(file = %path.display(), "made the key that seals webhook secrets: back it up with the data");
                Ok(Self::from_bytes(&key))
            }
            Err(error) => Err(io::Error::new(
                error.kind(),
                format!("{}: {error}", path.display()),
            )),
        }
    }

    fn from_hex(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if text.len() != 2 * KEY_LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a key is 64 hex digits");
        }
        let mut key = [0u8; KEY_LEN];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| "a key is 64 hex digits")?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| "a key is 64 hex digits")?;
        }
        Ok(Self::from_bytes(&key))
    }

    fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        // CHACHA20_POLY1305 takes exactly 32 bytes, so this cannot fail.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key fits ChaCha20-Poly1305"));
        Self {
            key: Arc::new(LessSafeKey::new(unbound)),
        }
    }

    /// A key that lives only in memory (tests).
    #[must_use]
    pub fn ephemeral() -> Self {
        let mut key = [0u8; KEY_LEN];
        let _ = SystemRandom::new().fill(&mut key);
        Self::from_bytes(&key)
    }

    /// Whether `value` is sealed.
    #[must_use]
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// Seals `plain` for `context` (webhook and field).
    ///
    /// # Errors
    /// The system gave no random bytes for the nonce.
    pub fn seal(&self, context: &str, plain: &str) -> io::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| io::Error::other("no random bytes for a nonce"))?;
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| io::Error::other("value too long to seal"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens a value sealed for `context`; a value that is not sealed comes back as it is.
    ///
    /// # Errors
    /// A sealed value this key (or this context) does not open.
    pub fn open(&self, context: &str, value: &str) -> Result<String, String> {
        let Some(encoded) = value.strip_prefix(PREFIX) else {
            return Ok(value.to_owned());
        };
        let wrong = || {
            format!(
                "{context}: sealed with another key: restore the data dir's {KEY_FILE}, or \
                 set HOOKMQ_SECRET_KEY to the key it was sealed with"
            )
        };
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| wrong())?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut sealed)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

/// Writes a new file readable by its owner only, whole: a temporary file, synced, then
/// renamed, so a crash never leaves a half-written key.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let sealer = Sealer::ephemeral();
        let sealed = sealer
            .seal("w/signing_secret", "whsec_abc")
            .expect("sealed");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        let again = sealer
            .seal("w/signing_secret", "whsec_abc")
            .expect("sealed");
        assert_ne!(sealed, again, "a fresh nonce each time");
        assert_eq!(
            sealer.open("w/signing_secret", &sealed).as_deref(),
            Ok("whsec_abc")
        );
        assert!(
            sealer.open("v/signing_secret", &sealed).is_err(),
            "other webhook"
        );
        let other = Sealer::ephemeral();
        let error = other
            .open("w/signing_secret", &sealed)
            .expect_err("other key");
        assert!(error.contains("another key"), "{error}");
        assert_eq!(sealer.open("w/x", "plain").as_deref(), Ok("plain"));
    }

    #[test]
    fn the_key_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let first = Sealer::load(dir.path(), None).expect("made");
        let sealed = first.seal("c", "s").expect("sealed");
        let path = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Sealer::load(dir.path(), None).expect("read");
        assert_eq!(again.open("c", &sealed).as_deref(), Ok("s"));
        let hex = fs::read_to_string(&path).expect("key");
        let given =
            Sealer::load(tempfile::tempdir().expect("dir").path(), Some(&hex)).expect("given");
        assert_eq!(given.open("c", &sealed).as_deref(), Ok("s"));
        let bad = Sealer::load(dir.path(), Some("abc")).expect_err("short");
        assert!(bad.to_string().contains("HOOKMQ_SECRET_KEY"), "{bad}");
    }
}
