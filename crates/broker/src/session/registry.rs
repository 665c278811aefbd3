//! The registry of sessions by client id: who owns each session right now, and the hand-over
//! from one connection to the next (takeover).

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::SessionState;
use crate::hooks::ClientInfo;

/// A request to a running connection task.
#[derive(Debug)]
pub(crate) enum Control {
    /// A new connection with the same client id wants the session. The task replies with its
    /// state and closes (`discard`: the new connection starts clean, so the reason is
    /// `discarded` rather than `takenover`).
    Takeover {
        discard: bool,
        reply: oneshot::Sender<Box<SessionState>>,
    },
    /// An administrator kicks the client.
    Kick,
    /// The client connected to another node of the cluster: the session ends here.
    Elsewhere,
    /// The broker is stopping.
    Shutdown,
}

/// Where a connection gets its [`Control`] requests: one slot, since the first request ends
/// the connection (a request that finds it taken fails, as the connection is closing
/// anyway). A few words per connection where a channel kept a block of 32 slots.
#[derive(Debug, Default)]
struct ControlSlot {
    /// parking_lot mutex: a request is put or taken, nothing else.
    request: Mutex<Option<Control>>,
    /// Senders alive: none left means nobody can reach the connection.
    senders: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

/// Sends a connection requests (held by the registry, cloned by whoever asks).
#[derive(Debug)]
pub(crate) struct ControlSender(Arc<ControlSlot>);

impl Clone for ControlSender {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(&self.0))
    }
}

/// The connection's end.
#[derive(Debug)]
pub(crate) struct ControlReceiver(Arc<ControlSlot>);

/// A connection's control slot: the registry's end and the connection's.
pub(crate) fn control_slot() -> (ControlSender, ControlReceiver) {
    let slot = Arc::new(ControlSlot::default());
    slot.senders.store(1, Ordering::Release);
    (ControlSender(Arc::clone(&slot)), ControlReceiver(slot))
}

impl ControlSender {
    /// Puts `request` in the slot; gives it back if one is already there or the connection
    /// is gone.
    pub(crate) fn try_send(&self, request: Control) -> Result<(), Control> {
        if Arc::strong_count(&self.0) == 1 {
            // The connection is gone.
            return Err(request);
        }
        let mut slot = self.0.request.lock();
        if slot.is_some() {
            return Err(request);
        }
        *slot = Some(request);
        drop(slot);
        self.0.notify.notify_one();
        Ok(())
    }
}

impl Drop for ControlSender {
    fn drop(&mut self) {
        // The last sender: the connection can no longer be reached and should end.
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_one();
        }
    }
}

impl ControlReceiver {
    /// The next request; `None` once nobody can send one (the registry forgot this
    /// connection).
    pub(crate) async fn recv(&mut self) -> Option<Control> {
        loop {
            let notified = self.0.notify.notified();
            if let Some(request) = self.0.request.lock().take() {
                return Some(request);
            }
            if self.0.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
enum Entry {
    /// A connection task owns the session.
    Online {
        connection_id: u64,
        control: ControlSender,
        client: Arc<ClientInfo>,
    },
    /// The session waits for its client, until `expires_at` (never, if `None`).
    Offline {
        state: Box<SessionState>,
        client: Arc<ClientInfo>,
        expires_at: Option<Instant>,
    },
}

/// What a new connection found when it claimed its client id.
#[derive(Debug)]
pub(crate) enum Claimed {
    /// No session existed.
    Fresh,
    /// An offline session, now owned by the caller.
    Offline(Box<SessionState>),
    /// A connected session: ask its task for the state with [`Control::Takeover`].
    Online(ControlSender),
}

/// A client as listings show it.
#[derive(Debug, Clone)]
pub struct ClientSummary {
    /// Its latest connection's details.
    pub info: Arc<ClientInfo>,
    /// Whether it is connected now.
    pub connected: bool,
}

/// Sessions by client id. A `Mutex`ed map: every operation is a quick lookup or swap, done at
/// connect and disconnect time only, never across `.await`.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<Arc<str>, Entry>>,
}

impl Registry {
    /// Makes `connection_id` the owner of `client_id`'s session and says what was there.
    pub(crate) fn claim(
        &self,
        client: &Arc<ClientInfo>,
        connection_id: u64,
        control: ControlSender,
    ) -> Claimed {
        let entry = Entry::Online {
            connection_id,
            control,
            client: Arc::clone(client),
        };
        match self
            .entries
            .lock()
            .insert(Arc::clone(&client.client_id), entry)
        {
            None => Claimed::Fresh,
            Some(Entry::Offline { state, .. }) => Claimed::Offline(state),
            Some(Entry::Online { control, .. }) => Claimed::Online(control),
        }
    }

    /// Called by a closing connection. If it still owns the session, the session is parked
    /// offline (`keep = Some(expiry)`) or forgotten (`None`) and `Ok(())` is returned; if the
    /// session was claimed by another connection meanwhile, the state comes back as `Err` for
    /// the caller to end.
    pub(crate) fn release(
        &self,
        client: &Arc<ClientInfo>,
        connection_id: u64,
        state: Box<SessionState>,
        keep: Option<Option<Instant>>,
    ) -> Result<Option<Box<SessionState>>, Box<SessionState>> {
        let mut entries = self.entries.lock();
        match entries.get(&client.client_id) {
            Some(Entry::Online {
                connection_id: owner,
                ..
            }) if *owner == connection_id => {}
            _ => return Err(state),
        }
        match keep {
            Some(expires_at) => {
                entries.insert(
                    Arc::clone(&client.client_id),
                    Entry::Offline {
                        state,
                        client: Arc::clone(client),
                        expires_at,
                    },
                );
                Ok(None)
            }
            None => {
                entries.remove(&client.client_id);
                Ok(Some(state))
            }
        }
    }

    /// Replaces the client details of `connection_id`'s entry (after a resumed session gave the
    /// client its session's number).
    pub(crate) fn update_client(&self, client: &Arc<ClientInfo>, connection_id: u64) {
        if let Some(Entry::Online {
            connection_id: owner,
            client: current,
            ..
        }) = self.entries.lock().get_mut(&client.client_id)
            && *owner == connection_id
        {
            *current = Arc::clone(client);
        }
    }

    /// Removes the offline session `session_id` of `client_id` if it has expired.
    pub(crate) fn take_expired(
        &self,
        client_id: &str,
        session_id: u64,
    ) -> Option<Box<SessionState>> {
        let mut entries = self.entries.lock();
        match entries.get(client_id) {
            Some(Entry::Offline {
                state,
                expires_at: Some(at),
                ..
            }) if state.id == session_id && *at <= Instant::now() => {}
            _ => return None,
        }
        match entries.remove(client_id) {
            Some(Entry::Offline { state, .. }) => Some(state),
            _ => None,
        }
    }

    /// Runs `change` on the offline session `session_id` of `client_id`, if it is there.
    pub(crate) fn update_offline(
        &self,
        client_id: &str,
        session_id: u64,
        change: impl FnOnce(&mut SessionState, &Arc<ClientInfo>),
    ) {
        if let Some(Entry::Offline { state, client, .. }) = self.entries.lock().get_mut(client_id)
            && state.id == session_id
        {
            change(state, client);
        }
    }

    /// The connection that has `client_id`'s session now, if it is connected: its control
    /// and number.
    pub(crate) fn online(&self, client_id: &str) -> Option<(ControlSender, u64)> {
        match self.entries.lock().get(client_id) {
            Some(Entry::Online {
                control,
                connection_id,
                ..
            }) => Some((control.clone(), *connection_id)),
            _ => None,
        }
    }

    /// Forgets `client_id` if connection `connection_id` still has it (its session went to
    /// another node).
    pub(crate) fn forget_connection(&self, client_id: &str, connection_id: u64) {
        let mut entries = self.entries.lock();
        if let Some(Entry::Online {
            connection_id: owner,
            ..
        }) = entries.get(client_id)
            && *owner == connection_id
        {
            entries.remove(client_id);
        }
    }

    /// Removes the offline session of `client_id`, if it has one here.
    pub(crate) fn take_offline(&self, client_id: &str) -> Option<Box<SessionState>> {
        let mut entries = self.entries.lock();
        if !matches!(entries.get(client_id), Some(Entry::Offline { .. })) {
            return None;
        }
        match entries.remove(client_id) {
            Some(Entry::Offline { state, .. }) => Some(state),
            _ => None,
        }
    }

    /// Parks a session recovered from the journal offline, until `expires_at`.
    pub(crate) fn restore(
        &self,
        client: Arc<ClientInfo>,
        state: Box<SessionState>,
        expires_at: Option<Instant>,
    ) {
        self.entries.lock().insert(
            Arc::clone(&client.client_id),
            Entry::Offline {
                state,
                client,
                expires_at,
            },
        );
    }

    /// Parks a session offline until `expires_at`, unless `client` has one here already
    /// (then it comes back).
    pub(crate) fn restore_if_absent(
        &self,
        client: Arc<ClientInfo>,
        state: Box<SessionState>,
        expires_at: Option<Instant>,
    ) -> Result<(), Box<SessionState>> {
        match self.entries.lock().entry(Arc::clone(&client.client_id)) {
            std::collections::hash_map::Entry::Occupied(_) => Err(state),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Entry::Offline {
                    state,
                    client,
                    expires_at,
                });
                Ok(())
            }
        }
    }

    /// The control channel of a connected client.
    pub(crate) fn control(&self, client_id: &str) -> Option<ControlSender> {
        match self.entries.lock().get(client_id) {
            Some(Entry::Online { control, .. }) => Some(control.clone()),
            _ => None,
        }
    }

    /// Control channels of every connected client.
    pub(crate) fn all_controls(&self) -> Vec<ControlSender> {
        self.entries
            .lock()
            .values()
            .filter_map(|e| match e {
                Entry::Online { control, .. } => Some(control.clone()),
                Entry::Offline { .. } => None,
            })
            .collect()
    }

    /// Every session's client.
    pub(crate) fn clients(&self) -> Vec<ClientSummary> {
        self.entries
            .lock()
            .values()
            .map(|e| match e {
                Entry::Online { client, .. } => ClientSummary {
                    info: Arc::clone(client),
                    connected: true,
                },
                Entry::Offline { client, .. } => ClientSummary {
                    info: Arc::clone(client),
                    connected: false,
                },
            })
            .collect()
    }

    /// One client.
    pub(crate) fn client(&self, client_id: &str) -> Option<ClientSummary> {
        self.entries.lock().get(client_id).map(|e| match e {
            Entry::Online { client, .. } => ClientSummary {
                info: Arc::clone(client),
                connected: true,
            },
            Entry::Offline { client, .. } => ClientSummary {
                info: Arc::clone(client),
                connected: false,
            },
        })
    }

    /// Number of sessions (connected or not).
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_control_slot_takes_one_request_and_ends_with_its_senders() {
        let (sender, mut receiver) = control_slot();
        let other = sender.clone();
        assert!(sender.try_send(Control::Kick).is_ok());
        assert!(
            other.try_send(Control::Shutdown).is_err(),
            "one request at a time"
        );
        assert!(matches!(receiver.recv().await, Some(Control::Kick)));
        assert!(other.try_send(Control::Shutdown).is_ok());
        assert!(matches!(receiver.recv().await, Some(Control::Shutdown)));
        drop(sender);
        let waiting = tokio::spawn(async move { receiver.recv().await.is_none() });
        tokio::task::yield_now().await;
        drop(other);
        assert!(waiting.await.expect("joins"), "no sender left: None");
    }
}
