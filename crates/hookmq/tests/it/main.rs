//! Integration tests of the `hookmq` binary as a user runs it: the command line, `hookmq
//! ctl` against a running node, and the seed end to end.

mod support;

mod access;
mod alarms;
mod cli;
mod cluster;
mod cluster_acks;
mod cluster_lists;
mod cluster_moves;
mod cluster_nats;
mod cluster_rolling;
mod cluster_stop;
mod cluster_webhooks;
mod ctl;
mod durable;
mod egress;
mod logs;
mod persistence;
mod receiver;
mod secrets;
mod seed;
