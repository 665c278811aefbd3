//! The client as events describe it, and how journals written before its last fields read
//! back: records in format 1 lack `is_superuser`, `client_attrs` and `mountpoint`, and
//! their decoders read them inside [`reading_format_1`].

use std::{cell::Cell, net::SocketAddr, sync::Arc};

use hookmq_codec::ProtocolVersion;
use serde::{Deserialize, Deserializer, Serialize};

use crate::message::PacketProperties;

/// A client's attributes (EMQX's `client_attrs`), set at connect by `[mqtt]
/// client_attrs_init`: names and values, in name order.
pub type ClientAttrs = Vec<(Arc<str>, Arc<str>)>;

/// A connected client as events describe it; shared by all of its events.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInfo {
    /// Client identifier (assigned by the broker if the client sent none).
    pub client_id: Arc<str>,
    /// User name, if given.
    pub username: Option<Arc<str>>,
    /// The client's address (`peername`).
    pub peer: SocketAddr,
    /// The broker's address of the connection (`sockname`).
    pub local: SocketAddr,
    /// Protocol version.
    pub protocol: ProtocolVersion,
    /// Keep-alive in force, in seconds.
    pub keep_alive: u16,
    /// Clean start / clean session flag.
    pub clean_start: bool,
    /// Session expiry interval in seconds.
    pub expiry_interval: u32,
    /// The client's Receive Maximum (v5; the broker's max in-flight for v3).
    pub receive_maximum: u16,
    /// CONNECT properties as sent (v5); boxed, and only when there were any (most clients
    /// send none), so an idle connection keeps a few words instead of the whole set.
    pub connect_properties: PacketProperties,
    /// When the connection was accepted, ms since the epoch.
    pub connected_at: u64,
    /// The session's unique number on this node.
    pub session_id: u64,
    /// The password file marks its user a superuser: every action is allowed.
    pub is_superuser: bool,
    /// Its attributes from `[mqtt] client_attrs_init`.
    pub client_attrs: ClientAttrs,
    /// The mountpoint of the listener it came through (topics are under it).
    pub mountpoint: Option<Arc<str>>,
}

thread_local! {
    /// Set while records in format 1 are read or written.
    static FORMAT_1: Cell<bool> = const { Cell::new(false) };
}

/// Sets [`FORMAT_1`] for its life, and puts the previous value back when dropped (after a
/// panic too, so a thread never goes on reading the old format).
struct Format1 {
    previous: bool,
}

impl Format1 {
    fn set() -> Self {
        Self {
            previous: FORMAT_1.replace(true),
        }
    }
}

impl Drop for Format1 {
    fn drop(&mut self) {
        FORMAT_1.set(self.previous);
    }
}

/// Runs `code`, which reads or writes records in format 1: the `ClientInfo`s in them end
/// after `session_id`.
pub fn reading_format_1<T>(code: impl FnOnce() -> T) -> T {
    let _format_1 = Format1::set();
    code()
}

impl ClientInfo {
    /// Whether format 1 can carry this client whole: it has none of the fields added since.
    #[must_use]
    pub fn fits_format_1(&self) -> bool {
        !self.is_superuser && self.client_attrs.is_empty() && self.mountpoint.is_none()
    }
}

/// `ClientInfo` as format 1 wrote it.
#[derive(Deserialize)]
struct ClientInfoV1 {
    client_id: Arc<str>,
    username: Option<Arc<str>>,
    peer: SocketAddr,
    local: SocketAddr,
    protocol: ProtocolVersion,
    keep_alive: u16,
    clean_start: bool,
    expiry_interval: u32,
    receive_maximum: u16,
    #[serde(with = "crate::message::properties_inline")]
    connect_properties: PacketProperties,
    connected_at: u64,
    session_id: u64,
}

/// `ClientInfo` as written now (its fields, in order; postcard cannot flatten).
#[derive(Deserialize)]
struct ClientInfoV2 {
    client_id: Arc<str>,
    username: Option<Arc<str>>,
    peer: SocketAddr,
    local: SocketAddr,
    protocol: ProtocolVersion,
    keep_alive: u16,
    clean_start: bool,
    expiry_interval: u32,
    receive_maximum: u16,
    #[serde(with = "crate::message::properties_inline")]
    connect_properties: PacketProperties,
    connected_at: u64,
    session_id: u64,
    #[serde(default)]
    is_superuser: bool,
    #[serde(default)]
    client_attrs: ClientAttrs,
    #[serde(default)]
    mountpoint: Option<Arc<str>>,
}

impl From<ClientInfoV1> for ClientInfo {
    fn from(v1: ClientInfoV1) -> Self {
        Self {
            client_id: v1.client_id,
            username: v1.username,
            peer: v1.peer,
            local: v1.local,
            protocol: v1.protocol,
            keep_alive: v1.keep_alive,
            clean_start: v1.clean_start,
            expiry_interval: v1.expiry_interval,
            receive_maximum: v1.receive_maximum,
            connect_properties: v1.connect_properties,
            connected_at: v1.connected_at,
            session_id: v1.session_id,
            is_superuser: false,
            client_attrs: Vec::new(),
            mountpoint: None,
        }
    }
}

impl From<ClientInfoV2> for ClientInfo {
    fn from(v2: ClientInfoV2) -> Self {
        Self {
            client_id: v2.client_id,
            username: v2.username,
            peer: v2.peer,
            local: v2.local,
            protocol: v2.protocol,
            keep_alive: v2.keep_alive,
            clean_start: v2.clean_start,
            expiry_interval: v2.expiry_interval,
            receive_maximum: v2.receive_maximum,
            connect_properties: v2.connect_properties,
            connected_at: v2.connected_at,
            session_id: v2.session_id,
            is_superuser: v2.is_superuser,
            client_attrs: v2.client_attrs,
            mountpoint: v2.mountpoint,
        }
    }
}

impl Serialize for ClientInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let format_1 = FORMAT_1.get();
        let mut s = serializer.serialize_struct("ClientInfo", if format_1 { 12 } else { 15 })?;
        s.serialize_field("client_id", &self.client_id)?;
        s.serialize_field("username", &self.username)?;
        s.serialize_field("peer", &self.peer)?;
        s.serialize_field("local", &self.local)?;
        s.serialize_field("protocol", &self.protocol)?;
        s.serialize_field("keep_alive", &self.keep_alive)?;
        s.serialize_field("clean_start", &self.clean_start)?;
        s.serialize_field("expiry_interval", &self.expiry_interval)?;
        s.serialize_field("receive_maximum", &self.receive_maximum)?;
        // As the `Properties` it reads as (see `message::properties_inline`).
        let properties: &hookmq_codec::Properties = &self.connect_properties;
        s.serialize_field("connect_properties", properties)?;
        s.serialize_field("connected_at", &self.connected_at)?;
        s.serialize_field("session_id", &self.session_id)?;
        if !format_1 {
            s.serialize_field("is_superuser", &self.is_superuser)?;
            s.serialize_field("client_attrs", &self.client_attrs)?;
            s.serialize_field("mountpoint", &self.mountpoint)?;
        }
        s.end()
    }
}

impl<'de> Deserialize<'de> for ClientInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if FORMAT_1.get() {
            ClientInfoV1::deserialize(deserializer).map(Into::into)
        } else {
            ClientInfoV2::deserialize(deserializer).map(Into::into)
        }
    }
}

#[cfg(test)]
impl ClientInfo {
    /// A v5 client on loopback, for unit tests.
    pub(crate) fn for_test(client_id: &str, session_id: u64) -> Arc<Self> {
        Arc::new(Self {
            client_id: client_id.into(),
            username: None,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            local: SocketAddr::from(([127, 0, 0, 1], 1883)),
            protocol: ProtocolVersion::V5,
            keep_alive: 60,
            clean_start: true,
            expiry_interval: 0,
            receive_maximum: 32,
            connect_properties: PacketProperties::default(),
            connected_at: 0,
            session_id,
            is_superuser: false,
            client_attrs: Vec::new(),
            mountpoint: None,
        })
    }
}
