//! MQTT over TLS with client certificates: a certificate the configured CA signed
//! authenticates its client under the certificate's CN (or first DNS SAN) as user name,
//! without a password; one from another CA is refused at the handshake. The listener's own
//! certificate is read again on demand (`SIGHUP` in the binary) without dropping
//! connections.

use std::{path::Path, sync::Arc};

use hookmq_broker::config::{ListenerConfig, PeerCertField};
use hookmq_codec::{Connect, ProtocolVersion, QoS, ReasonCode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::support::{RawClient, TestBroker};

/// A certificate authority that signs server and client certificates.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate with its private key.
struct Issued {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Self { issuer }
    }

    fn issue(&self, common_name: &str, dns_names: &[&str]) -> Issued {
        let names: Vec<String> = dns_names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Issued {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }
}

/// Writes the server certificate and key and the CA for client certificates.
fn write_files(dir: &Path, server: &Issued, clients_ca: &Authority) {
    std::fs::write(dir.join("server.pem"), &server.pem).expect("write");
    std::fs::write(dir.join("server.key"), server.key.serialize_pem()).expect("write");
    std::fs::write(dir.join("clients-ca.pem"), clients_ca.pem()).expect("write");
}

async fn broker(dir: &Path, field: PeerCertField) -> TestBroker {
    let dir = dir.to_owned();
    let passwords = dir.join("passwd");
    hookmq_broker::auth::add_user(&passwords, "alice", b"alice-password").expect("user");
    TestBroker::start_with(move |c| {
        c.listeners.tls = ListenerConfig {
            enable: true,
            bind: "127.0.0.1:0".parse().expect("address"),
            certfile: Some(dir.join("server.pem")),
            keyfile: Some(dir.join("server.key")),
            cacertfile: Some(dir.join("clients-ca.pem")),
            peer_cert_as_username: Some(field),
            ..ListenerConfig::default()
        };
        c.auth.allow_anonymous = false;
        c.auth.password_file = Some(passwords);
        c.mqtt.client_attrs_init = ["cn", "dn"]
            .map(|name| hookmq_broker::client_attrs::ClientAttrInit {
                expression: name.to_owned(),
                set_as_attr: name.to_owned(),
            })
            .to_vec();
    })
    .await
}

/// A TLS connection trusting `server_ca`, presenting `client` if given.
async fn tls(
    broker: &TestBroker,
    server_ca: CertificateDer<'static>,
    client: Option<&Issued>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(client) => builder
            .with_client_auth_cert(
                vec![client.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key.serialize_der())),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(broker.addresses.tls.expect("tls"))
        .await
        .expect("tcp");
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await?;
    Ok(stream)
}

/// CONNECT without user name or password; the CONNACK's reason.
async fn connect(stream: TlsStream<TcpStream>, client_id: &str) -> (RawClient, ReasonCode) {
    let mut client = RawClient::over(Box::new(stream), ProtocolVersion::V5);
    let connect = Connect {
        username: None,
        password: None,
        ..RawClient::connect_packet(ProtocolVersion::V5, client_id)
    };
    let ack = client.handshake(connect).await;
    (client, ack.reason_code)
}

#[tokio::test]
async fn a_client_certificate_authenticates_under_its_common_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let servers = Authority::new("server CA");
    let clients = Authority::new("client CA");
    write_files(
        dir.path(),
        &servers.issue("broker", &["localhost"]),
        &clients,
    );
    let broker = broker(dir.path(), PeerCertField::Cn).await;

    let device = clients.issue("device-7", &["device-7.example"]);
    let stream = tls(&broker, servers.der(), Some(&device))
        .await
        .expect("handshake");
    let (mut client, reason) = connect(stream, "d7").await;
    assert_eq!(reason, ReasonCode::SUCCESS, "no password needed");
    assert_eq!(
        client.publish("t", b"x", QoS::AtLeastOnce, 1).await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    let connected = broker.handle.client("d7").expect("listed");
    assert_eq!(connected.info.username.as_deref(), Some("device-7"));
    let attrs: Vec<(&str, &str)> = connected
        .info
        .client_attrs
        .iter()
        .map(|(k, v)| (&**k, &**v))
        .collect();
    assert_eq!(attrs[0], ("cn", "device-7"), "{attrs:?}");
    assert!(
        attrs[1].0 == "dn" && attrs[1].1.contains("CN=device-7"),
        "{attrs:?}"
    );

    // A verified certificate without a common name does not let its client in some other
    // way.
    let nameless = clients.issue("", &["only-a-san.example"]);
    let closed = match tls(&broker, servers.der(), Some(&nameless)).await {
        Err(_) => true,
        Ok(stream) => {
            let mut client = RawClient::over(Box::new(stream), ProtocolVersion::V5);
            client
                .send(hookmq_codec::Packet::Connect(Box::new(
                    RawClient::connect_packet(ProtocolVersion::V5, "nameless"),
                )))
                .await;
            client.recv().await.is_none()
        }
    };
    assert!(closed, "a certificate without a CN got in");
    // Without a certificate a client authenticates as usual: here it has no password.
    let stream = tls(&broker, servers.der(), None).await.expect("handshake");
    let (_, reason) = connect(stream, "anonymous").await;
    assert_eq!(reason, ReasonCode::NOT_AUTHORIZED);
    // A certificate another CA signed is refused at the handshake.
    let strangers = Authority::new("someone else");
    let forged = strangers.issue("device-7", &[]);
    let refused = match tls(&broker, servers.der(), Some(&forged)).await {
        Err(_) => true,
        // TLS 1.3: the server's refusal arrives after the client's handshake completes.
        Ok(stream) => {
            let mut client = RawClient::over(Box::new(stream), ProtocolVersion::V5);
            client
                .send(hookmq_codec::Packet::Connect(Box::new(
                    RawClient::connect_packet(ProtocolVersion::V5, "forged"),
                )))
                .await;
            client.recv().await.is_none()
        }
    };
    assert!(refused, "a stranger's certificate got in");
}

#[tokio::test]
async fn the_san_can_be_the_name_and_a_reloaded_certificate_serves_new_handshakes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old_ca = Authority::new("old server CA");
    let clients = Authority::new("client CA");
    write_files(
        dir.path(),
        &old_ca.issue("broker", &["localhost"]),
        &clients,
    );
    let broker = broker(dir.path(), PeerCertField::San).await;
    let device = clients.issue("cn-is-not-used", &["sensor-3.example"]);
    let stream = tls(&broker, old_ca.der(), Some(&device))
        .await
        .expect("handshake");
    let (mut before, reason) = connect(stream, "before").await;
    assert_eq!(reason, ReasonCode::SUCCESS);
    let listed = broker.handle.client("before").expect("listed");
    assert_eq!(listed.info.username.as_deref(), Some("sensor-3.example"));

    // A new certificate from another CA; a file that does not load changes nothing.
    let new_ca = Authority::new("new server CA");
    std::fs::write(dir.path().join("server.key"), "not a key").expect("write");
    assert!(broker.handle.reload_certificates().is_err());
    let stream = tls(&broker, old_ca.der(), Some(&device)).await;
    assert!(stream.is_ok(), "the old certificate still serves");
    write_files(
        dir.path(),
        &new_ca.issue("broker", &["localhost"]),
        &clients,
    );
    assert_eq!(broker.handle.reload_certificates().ok(), Some(1));
    assert!(
        tls(&broker, old_ca.der(), Some(&device)).await.is_err(),
        "new handshakes get the new certificate"
    );
    let stream = tls(&broker, new_ca.der(), Some(&device))
        .await
        .expect("handshake with the new certificate");
    let (_after, reason) = connect(stream, "after").await;
    assert_eq!(reason, ReasonCode::SUCCESS);
    // The connection made before the reload goes on.
    assert_eq!(
        before.publish("t", b"x", QoS::AtLeastOnce, 1).await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
}
