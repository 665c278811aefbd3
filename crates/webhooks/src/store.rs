//! What the webhooks keep under the data directory, one directory per webhook:
//!
//! ```text
//! <data_dir>/webhooks/<name>/spec.json      the webhook as created through the API or CLI
//!                           /metrics.json   its counters, saved every few seconds and at stop
//!                           /journal/       its disk buffer (see `journal`)
//! ```
//!
//! Files are replaced whole (written to a temporary file, synced, renamed), so a crash
//! leaves the old version or the new one. A spec's secrets are sealed (see `seal`); one
//! saved by an earlier version with them in clear is sealed when it is read. Webhook names are letters, digits, `-` and `_`,
//! so a name is a safe directory name.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use crate::{metrics::SavedMetrics, seal::Sealer, spec::WebhookSpec};

const SPEC: &str = "spec.json";
const METRICS: &str = "metrics.json";

/// The webhooks' directory.
#[derive(Debug, Clone)]
pub struct WebhookFiles {
    root: PathBuf,
    sealer: Sealer,
}

impl WebhookFiles {
    /// The webhooks' files under `data_dir`, their secrets sealed by `sealer`.
    #[must_use]
    pub fn new(data_dir: &Path, sealer: Sealer) -> Self {
        Self {
            root: data_dir.join("webhooks"),
            sealer,
        }
    }

    /// What seals the secrets.
    #[must_use]
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Webhook `name`'s directory.
    #[must_use]
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Webhook `name`'s journal.
    #[must_use]
    pub fn journal_dir(&self, name: &str) -> PathBuf {
        self.dir(name).join("journal")
    }

    /// Saves `spec`, replacing what was saved under its name.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save_spec(&self, spec: &WebhookSpec) -> io::Result<()> {
        write_json(&self.dir(&spec.name).join(SPEC), &self.sealed(spec)?)
    }

    /// `spec` with its secrets sealed, as it is kept anywhere but in memory.
    fn sealed(&self, spec: &WebhookSpec) -> io::Result<WebhookSpec> {
        let mut sealed = spec.clone();
        let name = &spec.name;
        sealed.map_secrets(|field, value| self.sealer.seal(&format!("{name}/{field}"), value))?;
        Ok(sealed)
    }

    /// Opens `spec`'s sealed secrets; says whether one was in clear.
    fn open_secrets(&self, spec: &mut WebhookSpec) -> Result<bool, String> {
        let name = spec.name.clone();
        let mut in_clear = false;
        spec.map_secrets(|field, value| {
            in_clear |= !Sealer::is_sealed(value);
            self.sealer.open(&format!("{name}/{field}"), value)
        })?;
        Ok(in_clear)
    }

    /// A saved spec with its secrets opened; one that had a secret in clear is saved again,
    /// sealed.
    fn open_spec(&self, mut spec: WebhookSpec) -> Option<WebhookSpec> {
        let name = spec.name.clone();
        let in_clear = match self.open_secrets(&mut spec) {
            Ok(in_clear) => in_clear,
            Err(error) => {
                tracing::warn!(webhook = %name, %error, "saved webhook skipped: its secrets do not open");
                return None;
            }
        };
        if in_clear {
            match self.save_spec(&spec) {
                Ok(()) => tracing::info!(webhook = %name, "saved webhook's secrets sealed"),
                Err(error) => {
                    tracing::warn!(webhook = %name, %error, "saved webhook's secrets not sealed")
                }
            }
        }
        Some(spec)
    }

    /// `spec` as the cluster shares it: JSON, its secrets sealed (so every node needs the
    /// same secret key to open them).
    ///
    /// # Errors
    /// A secret cannot be sealed.
    pub fn to_shared(&self, spec: &WebhookSpec) -> io::Result<Vec<u8>> {
        serde_json::to_vec(&self.sealed(spec)?).map_err(io::Error::other)
    }

    /// The spec of webhook `name` the cluster shared as `bytes`, its secrets opened.
    ///
    /// # Errors
    /// It does not read as a spec of that name, or its secrets do not open with this
    /// node's key.
    pub fn from_shared(&self, name: &str, bytes: &[u8]) -> io::Result<WebhookSpec> {
        let mut spec: WebhookSpec = serde_json::from_slice(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if spec.name != name {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared as {name} but named {}", spec.name),
            ));
        }
        self.open_secrets(&mut spec).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("its secrets do not open with this node's key (every node needs the same HOOKMQ_SECRET_KEY): {error}"),
            )
        })?;
        Ok(spec)
    }

    /// Saves webhook `name`'s counters.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save_metrics(&self, name: &str, metrics: &SavedMetrics) -> io::Result<()> {
        write_json(&self.dir(name).join(METRICS), metrics)
    }

    /// Webhook `name`'s saved counters, if any (unreadable ones are logged and ignored).
    #[must_use]
    pub fn load_metrics(&self, name: &str) -> Option<SavedMetrics> {
        read_json(&self.dir(name).join(METRICS))
    }

    /// Every saved webhook, by name. One that does not read is logged and skipped.
    #[must_use]
    pub fn load_specs(&self) -> Vec<WebhookSpec> {
        let mut specs: Vec<WebhookSpec> = self
            .names()
            .iter()
            .filter_map(|name| read_json(&self.dir(name).join(SPEC)))
            .filter_map(|spec| self.open_spec(spec))
            .collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    /// The names of the webhook directories there are.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect()
    }

    /// Whether webhook `name` has a saved spec.
    #[must_use]
    pub fn has_spec(&self, name: &str) -> bool {
        self.dir(name).join(SPEC).is_file()
    }

    /// Deletes everything of webhook `name`.
    ///
    /// # Errors
    /// The directory cannot be deleted.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.dir(name)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Deletes webhook `name`'s saved spec only (a webhook from the configuration file is
    /// not saved; its journal and counters stay).
    ///
    /// # Errors
    /// The file cannot be deleted.
    pub fn forget_spec(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir(name).join(SPEC)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

/// Writes `value` as JSON to `path` whole: a temporary file, synced, then renamed over it.
fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let temporary = path.with_extension("json.tmp");
    {
        let mut file = fs::File::create(&temporary)?;
        io::Write::write_all(&mut file, &bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    fs::File::open(dir)?.sync_all()
}

/// Reads JSON from `path`: `None` if it is missing, or unreadable (logged).
fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "webhook file not read");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "webhook file not read: skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_metrics_round_trip_and_go_with_their_webhook() {
        let dir = tempfile::tempdir().expect("dir");
        let files = WebhookFiles::new(dir.path(), Sealer::ephemeral());
        assert!(files.load_specs().is_empty());
        let mut spec = WebhookSpec::new("b", "http://127.0.0.1:9/");
        files.save_spec(&spec).expect("saved");
        spec.description = "second version".into();
        files.save_spec(&spec).expect("replaced");
        files
            .save_spec(&WebhookSpec::new("a", "http://127.0.0.1:9/"))
            .expect("saved");
        let specs = files.load_specs();
        assert_eq!(
            specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(specs[1].description, "second version");
        let saved = SavedMetrics {
            success: 3,
            ..SavedMetrics::default()
        };
        files.save_metrics("b", &saved).expect("metrics");
        assert_eq!(files.load_metrics("b"), Some(saved));
        assert_eq!(files.load_metrics("a"), None);
        files.forget_spec("b").expect("forgotten");
        assert!(!files.has_spec("b") && files.load_metrics("b").is_some());
        files.remove("b").expect("removed");
        assert!(!files.dir("b").exists());
        fs::write(files.dir("a").join(SPEC), b"{not json").expect("corrupt");
        assert!(
            files.load_specs().is_empty(),
            "an unreadable spec is skipped"
        );
    }
}
