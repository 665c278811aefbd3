//! Integration tests: the broker, the webhook engine and a real HTTP receiver, over loopback.

mod support;

mod alarms;
mod batching;
mod circuit;
mod connections;
mod deadletters;
mod delivery;
mod durable;
mod expiry;
mod format;
mod health;
mod receivers;
mod selection;
mod tls;
