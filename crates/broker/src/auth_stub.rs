//! Temporary stand-in while auth/ is written.
#![allow(missing_docs, dead_code, unreachable_pub)]
use std::{net::IpAddr, path::Path};
#[derive(Debug, thiserror::Error)]
#[error("auth")]
pub struct AuthError;
#[derive(Debug)]
pub struct PasswordFile;
impl PasswordFile {
    pub fn load(_: &Path) -> Result<Self, AuthError> { Err(AuthError) }
    pub fn verify(&self, _: &str, _: &[u8]) -> bool { false }
}
#[derive(Debug)]
pub struct Acl;
impl Acl {
    pub fn load(_: &Path) -> Result<Self, AuthError> { Err(AuthError) }
    pub fn check(&self, _: &ClientIdentity<'_>, _: Action, _: &str) -> Option<Permission> { None }
}
#[derive(Debug, Clone, Copy)]
pub enum Action { Publish, Subscribe }
#[derive(Debug, Clone, Copy)]
pub enum Permission { Allow, Deny }
#[derive(Debug)]
pub struct ClientIdentity<'a> { pub client_id: &'a str, pub username: Option<&'a str>, pub ip: IpAddr }
pub fn add_user(_: &Path, _: &str, _: &[u8]) -> Result<(), AuthError> { Err(AuthError) }
pub fn remove_user(_: &Path, _: &str) -> Result<bool, AuthError> { Err(AuthError) }
