//! Integration tests: the real broker on 127.0.0.1:0 driven by real clients over real sockets.

// Packets are built from defaults plus the fields under test.
#![allow(clippy::field_reassign_with_default)]

mod support;

mod access;
mod certificates;
mod event_sequences;
mod hostile;
mod limits;
mod persistence;
mod protocol_v5;
mod qos;
mod sessions;
mod sys;
mod third_party;
mod transports;
