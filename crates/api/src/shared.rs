//! Dashboard users, API keys and EMQX-style objects cluster-wide: a change through any
//! node's API is written to the cluster's shared maps (`<prefix>_users`, key: the user name
//! in base64url; `<prefix>_api_keys`, key: the key id; `<prefix>_emqx_connectors`,
//! `_emqx_actions` by name, `_emqx_rules` by id in base64url) before it is stored here, and every node follows
//! the maps and stores what other nodes wrote (`hookmq.redb` stays each node's copy). A
//! node remembers the revision it last wrote or applied per key and skips what it hears at
//! or below it (its own writes coming back). After the history, the users and keys this
//! node has and the cluster never had are shared (its default user, on a first start).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use hookmq_broker::auth::verify_hash;
use hookmq_cluster::{ClusterHandle, Followed, SharedMap};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::{
    api_keys::ApiKeyRecord,
    default_password::WELL_KNOWN,
    error::ApiError,
    state::AppState,
    store::{Store, StoreError, Table},
    users::UserRecord,
};

/// How long joining waits to have heard the cluster's users and keys.
const CATCH_UP: Duration = Duration::from_secs(10);

/// The API's side of the shared maps.
#[derive(Debug)]
pub(crate) struct Sharing {
    /// One map per shared table.
    maps: Vec<(Table, SharedMap)>,
    /// The latest revision written or applied here, by table and store key.
    revisions: Mutex<HashMap<(Table, String), u64>>,
    /// Held from a change's revision to its local write, by writers and by the follower
    /// alike, so the local store ends on the newest revision. An async mutex: held across
    /// the NATS write and the store's commit; changes are rare.
    writes: tokio::sync::Mutex<()>,
}

/// The tables shared with the cluster, and their maps' names.
const SHARED: [(Table, &str); 5] = [
    (Table::Users, "users"),
    (Table::ApiKeys, "api_keys"),
    (Table::EmqxConnectors, "emqx_connectors"),
    (Table::EmqxActions, "emqx_actions"),
    (Table::EmqxRules, "emqx_rules"),
];

impl Sharing {
    fn map(&self, table: Table) -> Option<&SharedMap> {
        self.maps
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, map)| map)
    }

    fn is_stale(&self, table: Table, key: &str, revision: u64) -> bool {
        self.revisions
            .lock()
            .get(&(table, key.to_owned()))
            .is_some_and(|&seen| revision <= seen)
    }

    fn record(&self, table: Table, key: &str, revision: u64) {
        let mut revisions = self.revisions.lock();
        let seen = revisions.entry((table, key.to_owned())).or_default();
        *seen = (*seen).max(revision);
    }
}

/// A store key as a shared map's key (user names and rule ids may hold any character).
fn map_key(table: Table, key: &str) -> String {
    match table {
        Table::Users | Table::EmqxRules => {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
        }
        _ => key.to_owned(),
    }
}

fn store_key(table: Table, key: &str) -> Option<String> {
    match table {
        Table::Users | Table::EmqxRules => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        _ => Some(key.to_owned()),
    }
}

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::cluster_unavailable(format!(
        "the cluster cannot be reached, so no node changes what it shares: {error}"
    ))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

impl AppState {
    /// Stores `value` under `key` of `table`: in the cluster first (a clustered node), then
    /// here.
    pub(crate) async fn save<T: Serialize + Send + 'static>(
        &self,
        table: Table,
        key: &str,
        value: T,
    ) -> Result<(), ApiError> {
        let _writing = match self.sharing.get() {
            Some(sharing) => Some(sharing.writes.lock().await),
            None => None,
        };
        if let Some(sharing) = self.sharing.get()
            && let Some(map) = sharing.map(table)
        {
            let bytes = serde_json::to_vec(&value).map_err(ApiError::internal)?;
            let revision = map
                .put(&map_key(table, key), bytes.into())
                .await
                .map_err(unavailable)?;
            sharing.record(table, key, revision);
        }
        let (store, key) = (Arc::clone(&self.store), key.to_owned());
        blocking(move || store.put(table, &key, &value)).await
    }

    /// Removes `key` of `table`: in the cluster first (a clustered node), then here.
    pub(crate) async fn remove(&self, table: Table, key: &str) -> Result<(), ApiError> {
        let _writing = match self.sharing.get() {
            Some(sharing) => Some(sharing.writes.lock().await),
            None => None,
        };
        if let Some(sharing) = self.sharing.get()
            && let Some(map) = sharing.map(table)
        {
            let revision = map
                .delete(&map_key(table, key))
                .await
                .map_err(unavailable)?;
            sharing.record(table, key, revision);
        }
        let (store, key) = (Arc::clone(&self.store), key.to_owned());
        blocking(move || store.delete(table, &key)).await.map(drop)
    }

    /// Shares the users, API keys and EMQX-style objects with the cluster and follows the
    /// other nodes' changes; waits (at most 10 s) until the cluster's are stored here.
    pub(crate) async fn share(&self, cluster: &ClusterHandle) -> Result<(), String> {
        let mut maps = Vec::new();
        for (table, name) in SHARED {
            let map = cluster.shared_map(name).await.map_err(|e| e.to_string())?;
            maps.push((table, map));
        }
        let sharing = Sharing {
            maps: maps.clone(),
            revisions: Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
        };
        if self.sharing.set(sharing).is_err() {
            return Ok(());
        }
        let mut caught_up = Vec::new();
        for (table, map) in maps {
            let (told, told_here) = oneshot::channel();
            let changes = map.follow(64, tokio_util::sync::CancellationToken::new());
            tokio::spawn(follow(self.clone(), table, changes, told));
            caught_up.push(told_here);
        }
        let all = futures_util::future::join_all(caught_up);
        if tokio::time::timeout(CATCH_UP, all).await.is_err() {
            tracing::warn!(
                "the cluster's users, API keys and EMQX-style objects were not all heard within 10 s"
            );
        }
        Ok(())
    }

    /// Stores here what the cluster's map of `table` says of `key` at `revision`.
    async fn apply_shared(&self, table: Table, key: &str, value: Option<Bytes>, revision: u64) {
        let Some(sharing) = self.sharing.get() else {
            return;
        };
        let _writing = sharing.writes.lock().await;
        if sharing.is_stale(table, key, revision) {
            return;
        }
        sharing.record(table, key, revision);
        let applied = match (table, value) {
            (Table::Users, Some(bytes)) => self.apply_user(key, &bytes).await,
            (Table::ApiKeys, Some(bytes)) => self.apply_api_key(key, &bytes).await,
            (_, None) => {
                if table == Table::ApiKeys {
                    self.api_keys.forget(key);
                }
                let (store, owned) = (Arc::clone(&self.store), key.to_owned());
                let removed = blocking(move || store.delete(table, &owned)).await;
                if table == Table::Users {
                    self.tokens.revoke_user(key, None);
                    self.default_passwords.set(key, false);
                }
                removed.map(drop)
            }
            (Table::EmqxConnectors | Table::EmqxActions | Table::EmqxRules, Some(bytes)) => {
                self.apply_document(table, key, &bytes).await
            }
            (Table::Webhooks, Some(_)) => Ok(()),
        };
        if let Err(error) = applied {
            tracing::warn!(?table, key, error = %error.message, "a change from the cluster was not stored here");
        }
    }

    async fn apply_user(&self, username: &str, bytes: &[u8]) -> Result<(), ApiError> {
        let user: UserRecord = serde_json::from_slice(bytes).map_err(ApiError::internal)?;
        let (store, name) = (Arc::clone(&self.store), username.to_owned());
        // An argon2 check and a commit: off the async threads.
        let (changed, default) = tokio::task::spawn_blocking(move || {
            let before: Option<UserRecord> = store.get(Table::Users, &name)?;
            let changed = before.is_none_or(|b| b.password_hash != user.password_hash);
            let default = verify_hash(&user.password_hash, WELL_KNOWN.as_bytes());
            store.put(Table::Users, &name, &user)?;
            Ok::<_, StoreError>((changed, default))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        if changed {
            self.tokens.revoke_user(username, None);
        }
        self.default_passwords.set(username, default);
        Ok(())
    }

    async fn apply_api_key(&self, api_key: &str, bytes: &[u8]) -> Result<(), ApiError> {
        let record: ApiKeyRecord = serde_json::from_slice(bytes).map_err(ApiError::internal)?;
        let (store, key, saved) = (Arc::clone(&self.store), api_key.to_owned(), record.clone());
        blocking(move || store.put(Table::ApiKeys, &key, &saved)).await?;
        self.api_keys.remember(api_key, record);
        Ok(())
    }

    /// Stores a document as the cluster has it (EMQX-style objects: their secrets are
    /// sealed with the key every node shares).
    async fn apply_document(&self, table: Table, key: &str, bytes: &[u8]) -> Result<(), ApiError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(ApiError::internal)?;
        let (store, key) = (Arc::clone(&self.store), key.to_owned());
        blocking(move || store.put(table, &key, &value)).await
    }

    /// Shares what `table` holds here and the cluster never had.
    async fn share_unheard(&self, table: Table, heard: &HashSet<String>) {
        let Some(map) = self.sharing.get().and_then(|sharing| sharing.map(table)) else {
            return;
        };
        let store = Arc::clone(&self.store);
        let listed = tokio::task::spawn_blocking(move || list_raw(&store, table)).await;
        let Ok(Ok(entries)) = listed else {
            return;
        };
        for (key, value) in entries {
            if heard.contains(&key) {
                continue;
            }
            match map.put(&map_key(table, &key), value.into()).await {
                Ok(revision) => {
                    if let Some(sharing) = self.sharing.get() {
                        sharing.record(table, &key, revision);
                    }
                }
                Err(error) => {
                    tracing::warn!(?table, key, %error, "not shared with the cluster");
                }
            }
        }
    }
}

/// Every document of `table` as JSON bytes, by key.
fn list_raw(store: &Store, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let all: Vec<(String, serde_json::Value)> = store.list(table)?;
    Ok(all
        .into_iter()
        .filter_map(|(key, value)| serde_json::to_vec(&value).ok().map(|bytes| (key, bytes)))
        .collect())
}

/// Applies the cluster's changes of one table in order; after each (re)start's history,
/// shares what the cluster did not have and, the first time, tells [`AppState::share`].
async fn follow(
    state: AppState,
    table: Table,
    mut changes: mpsc::Receiver<Followed>,
    caught_up: oneshot::Sender<()>,
) {
    let mut caught_up = Some(caught_up);
    let mut heard = HashSet::new();
    while let Some(followed) = changes.recv().await {
        match followed {
            Followed::Change {
                key,
                value,
                revision,
            } => {
                let Some(key) = store_key(table, &key) else {
                    continue;
                };
                state.apply_shared(table, &key, value, revision).await;
                heard.insert(key);
            }
            Followed::CaughtUp => {
                state.share_unheard(table, &heard).await;
                if let Some(tell) = caught_up.take() {
                    let _ = tell.send(());
                }
            }
        }
    }
}
