//! The API's state that survives a restart: one redb file under the data directory, with a
//! few tables of JSON documents (dashboard users, API keys, EMQX-style connectors, actions
//! and rules, and webhooks an earlier version kept here, until they move to the webhooks'
//! own directories). The broker and the
//! webhooks keep their state in their own directories.
//!
//! Every call is a short blocking transaction (a commit syncs to disk): call it from
//! `spawn_blocking` on hot async paths. Documents are JSON so the file stays readable
//! across versions that add fields.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

/// The store's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Webhooks an earlier version saved here, by name (moved out at start).
    Webhooks,
    /// Dashboard users, by user name.
    Users,
    /// API keys, by key id.
    ApiKeys,
    /// EMQX-style `http` connectors, by name.
    EmqxConnectors,
    /// EMQX-style `http` actions, by name.
    EmqxActions,
    /// EMQX-style rules, by id.
    EmqxRules,
}

impl Table {
    const ALL: [Self; 6] = [
        Self::Webhooks,
        Self::Users,
        Self::ApiKeys,
        Self::EmqxConnectors,
        Self::EmqxActions,
        Self::EmqxRules,
    ];

    const fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Self::Webhooks => TableDefinition::new("webhooks"),
            Self::Users => TableDefinition::new("users"),
            Self::ApiKeys => TableDefinition::new("api_keys"),
            Self::EmqxConnectors => TableDefinition::new("emqx_connectors"),
            Self::EmqxActions => TableDefinition::new("emqx_actions"),
            Self::EmqxRules => TableDefinition::new("emqx_rules"),
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or written.
    #[error("state store {path}: {reason}")]
    Database {
        /// The file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
    /// A stored document does not decode (written by an incompatible version?).
    #[error("state store: {table:?}/{key}: {reason}")]
    Document {
        /// The table.
        table: Table,
        /// The key.
        key: String,
        /// The decoding error.
        reason: String,
    },
}

/// The embedded store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// The file name under the data directory.
    pub const FILE: &'static str = "hookmq.redb";

    /// Opens (or creates) the store under `data_dir`.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the directory or file cannot be used.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(Self::FILE);
        let fail = |reason: String| StoreError::Database {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(data_dir)
            .map_err(|e| fail(format!("cannot create the directory: {e}")))?;
        let db = Database::create(&path).map_err(|e| fail(e.to_string()))?;
        let store = Self { db, path };
        // Create every table once, so readers never meet a missing one.
        let txn = store.db.begin_write().map_err(|e| store.error(e))?;
        for table in Table::ALL {
            txn.open_table(table.definition())
                .map_err(|e| store.error(e))?;
        }
        txn.commit().map_err(|e| store.error(e))?;
        Ok(store)
    }

    fn error(&self, error: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            reason: error.to_string(),
        }
    }

    /// Writes `value` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`StoreError`] if the write fails.
    pub fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| self.error(e))?;
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut open = txn
                .open_table(table.definition())
                .map_err(|e| self.error(e))?;
            open.insert(key, bytes.as_slice())
                .map_err(|e| self.error(e))?;
        }
        txn.commit().map_err(|e| self.error(e))
    }

    /// Removes `key`; returns whether it was there.
    ///
    /// # Errors
    /// [`StoreError`] if the write fails.
    pub fn delete(&self, table: Table, key: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        let existed = {
            let mut open = txn
                .open_table(table.definition())
                .map_err(|e| self.error(e))?;
            open.remove(key).map_err(|e| self.error(e))?.is_some()
        };
        txn.commit().map_err(|e| self.error(e))?;
        Ok(existed)
    }

    /// The document under `key`.
    ///
    /// # Errors
    /// [`StoreError`] if reading or decoding fails.
    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let open = txn
            .open_table(table.definition())
            .map_err(|e| self.error(e))?;
        match open.get(key).map_err(|e| self.error(e))? {
            None => Ok(None),
            Some(value) => serde_json::from_slice(value.value())
                .map(Some)
                .map_err(|e| StoreError::Document {
                    table,
                    key: key.to_owned(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Every document of `table`, by key.
    ///
    /// # Errors
    /// [`StoreError`] if reading or decoding fails.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let open = txn
            .open_table(table.definition())
            .map_err(|e| self.error(e))?;
        let mut all = Vec::new();
        for entry in open.iter().map_err(|e| self.error(e))? {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            let key = key.value().to_owned();
            let document =
                serde_json::from_slice(value.value()).map_err(|e| StoreError::Document {
                    table,
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
            all.push((key, document));
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .put(
                    Table::Webhooks,
                    "a",
                    &serde_json::json!({"url": "http://a"}),
                )
                .expect("put");
            store
                .put(
                    Table::Webhooks,
                    "b",
                    &serde_json::json!({"url": "http://b"}),
                )
                .expect("put");
            assert!(store.delete(Table::Webhooks, "b").expect("delete"));
            assert!(!store.delete(Table::Webhooks, "b").expect("delete again"));
        }
        let store = Store::open(dir.path()).expect("reopen");
        let all: Vec<(String, serde_json::Value)> = store.list(Table::Webhooks).expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1["url"], "http://a");
        let missing: Option<serde_json::Value> = store.get(Table::Users, "x").expect("get");
        assert!(missing.is_none());
    }
}
