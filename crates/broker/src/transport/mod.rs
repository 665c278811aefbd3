//! Byte streams clients connect over: TLS set-up and the WebSocket adapter.

pub(crate) mod tls;
pub mod ws;
