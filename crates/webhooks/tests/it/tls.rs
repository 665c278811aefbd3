//! HTTPS receivers: a private CA (`tls.ca_file`), HTTP/2 when the server offers it,
//! `tls.verify = false`, and a client certificate for a server that asks for one.

use std::{path::PathBuf, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rumqttc::v5::mqttbytes::QoS;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};

use crate::support::{Mqtt, Receiver, Stack};

/// A CA, a server certificate for `127.0.0.1` and a client certificate, all signed by the CA;
/// the CA and the client's certificate and key are also PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    certfile: PathBuf,
    keyfile: PathBuf,
    ca: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl Pki {
    fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hookmq test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");

        let server_key = KeyPair::generate().expect("key");
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server
            .signed_by(&server_key, &ca)
            .expect("server certificate");

        let client_key = KeyPair::generate().expect("key");
        let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
        client.distinguished_name.push(DnType::CommonName, "hookmq");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client
            .signed_by(&client_key, &ca)
            .expect("client certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("PEM written");
            path
        };
        Self {
            ca_file: write("ca.pem", ca.pem()),
            certfile: write("client.pem", client_cert.pem()),
            keyfile: write("client.key", client_key.serialize_pem()),
            _dir: dir,
            ca: ca.der().clone(),
            server_chain: vec![server_cert.der().clone(), ca.der().clone()],
            server_key: server_key.serialize_der(),
        }
    }

    /// The receiver's TLS settings; with `require_client_cert`, a client must present a
    /// certificate from the CA.
    fn server(&self, require_client_cert: bool) -> ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca.clone()).expect("CA");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(
                self.server_chain.clone(),
                PrivatePkcs8KeyDer::from(self.server_key.clone()).into(),
            )
            .expect("server certificate")
    }
}

fn https(receiver: &Receiver) -> String {
    format!("https://{}/hook", receiver.address)
}

async fn publish_one(stack: &Stack, payload: &str) {
    let mut client = Mqtt::connect(stack.mqtt, "c1").await;
    client.publish("t/1", QoS::AtLeastOnce, payload).await;
    client.disconnect().await;
}

#[tokio::test]
async fn https_with_a_private_ca_negotiates_http2() {
    let pki = Pki::new();
    let stack = Stack::start().await;
    let receiver = Receiver::start_tls(pki.server(false)).await;
    stack
        .webhook("private_ca", &https(&receiver), |s| {
            s.events = vec!["message.publish".into()];
            s.tls.ca_file = Some(pki.ca_file.clone());
        })
        .await;
    publish_one(&stack, "over tls").await;
    let requests = receiver.wait_for(1).await;
    assert_eq!(requests[0].version, "HTTP/2.0", "the server offers h2");
    assert_eq!(requests[0].path, "/hook");
    assert_eq!(requests[0].json()["payload"], "over tls");
    stack
        .wait_metrics("private_ca", "delivered", |m| m.success == 1)
        .await;
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_unless_verification_is_off() {
    let pki = Pki::new();
    let stack = Stack::start().await;
    let receiver = Receiver::start_tls(pki.server(false)).await;
    // Verifies against the bundled web roots, which do not hold the test CA.
    stack
        .webhook("strict", &https(&receiver), |s| {
            s.events = vec!["message.publish".into()];
        })
        .await;
    stack
        .webhook("lenient", &https(&receiver), |s| {
            s.events = vec!["message.publish".into()];
            s.tls.verify = false;
        })
        .await;
    publish_one(&stack, "x").await;
    stack
        .wait_metrics("lenient", "delivered", |m| m.success == 1)
        .await;
    stack
        .wait_metrics("strict", "failed", |m| m.failed == 1 && m.success == 0)
        .await;
    assert_eq!(receiver.requests().len(), 1, "only the lenient one got in");
    let strict = stack.engine.get("strict").expect("webhook").metrics;
    assert_eq!(strict.retried, 0, "a TLS refusal is not retried");
    assert!(
        strict.last_failures[0].reason.starts_with("TLS failed"),
        "{:?}",
        strict.last_failures[0].reason
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_server_asks() {
    let pki = Pki::new();
    let stack = Stack::start().await;
    let receiver = Receiver::start_tls(pki.server(true)).await;
    stack
        .webhook("with_cert", &https(&receiver), |s| {
            s.events = vec!["message.publish".into()];
            s.tls.ca_file = Some(pki.ca_file.clone());
            s.tls.certfile = Some(pki.certfile.clone());
            s.tls.keyfile = Some(pki.keyfile.clone());
        })
        .await;
    stack
        .webhook("without_cert", &https(&receiver), |s| {
            s.events = vec!["message.publish".into()];
            s.tls.ca_file = Some(pki.ca_file.clone());
            s.max_retries = Some(0);
        })
        .await;
    publish_one(&stack, "mutual").await;
    stack
        .wait_metrics("with_cert", "delivered", |m| m.success == 1)
        .await;
    stack
        .wait_metrics("without_cert", "failed", |m| {
            m.failed == 1 && m.success == 0
        })
        .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "only the one with a certificate got in");
    assert_eq!(requests[0].json()["payload"], "mutual");
}
