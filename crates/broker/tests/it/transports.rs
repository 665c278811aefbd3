//! WebSocket, TLS and WSS listeners carry the same MQTT.

use std::{path::Path, sync::Arc};

use hookmq_broker::{config::ListenerConfig, transport::ws::WsStream};
use hookmq_codec::{ProtocolVersion, QoS, ReasonCode};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

use crate::support::{RawClient, TestBroker};

async fn websocket<S>(stream: S, url: &str) -> WsStream<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
    let (socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("ws handshake");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("mqtt"),
        "the broker agrees on the mqtt subprotocol"
    );
    WsStream::new(socket)
}

async fn round_trip(mut client: RawClient, broker: &TestBroker, client_id: &str) {
    let ack = client
        .handshake(RawClient::connect_packet(client.version, client_id))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    client.subscribe(1, "over/the/wire", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(
        broker.tcp,
        ProtocolVersion::V3_1_1,
        &format!("{client_id}-pub"),
    )
    .await;
    publisher
        .publish("over/the/wire", &[0u8; 3000], QoS::AtLeastOnce, 1)
        .await;
    let got = client.receive_publish().await;
    assert_eq!(got.payload.len(), 3000);
    client.disconnect().await;
}

#[tokio::test]
async fn websocket_listener() {
    let broker = TestBroker::start().await;
    let stream = TcpStream::connect(broker.ws).await.expect("connect");
    let ws = websocket(stream, &format!("ws://{}/mqtt", broker.ws)).await;
    round_trip(
        RawClient::over(Box::new(ws), ProtocolVersion::V5),
        &broker,
        "ws-client",
    )
    .await;
}

#[tokio::test]
async fn websocket_wrong_path_is_refused() {
    let broker = TestBroker::start().await;
    let stream = TcpStream::connect(broker.ws).await.expect("connect");
    let request = format!("ws://{}/elsewhere", broker.ws)
        .into_client_request()
        .expect("request");
    assert!(
        tokio_tungstenite::client_async(request, stream)
            .await
            .is_err()
    );
}

fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert, key, certified.cert.der().to_vec())
}

fn connector(der: Vec<u8>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_and_wss_listeners() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, der) = certificate(dir.path());
    let broker = TestBroker::start_with(|c| {
        let secure = ListenerConfig {
            enable: true,
            bind: "127.0.0.1:0".parse().expect("address"),
            path: "/mqtt".into(),
            certfile: Some(cert.clone()),
            keyfile: Some(key.clone()),
            ..ListenerConfig::default()
        };
        c.listeners.tls = secure.clone();
        c.listeners.wss = secure;
    })
    .await;
    let addresses = broker.addresses;
    let connector = connector(der);
    let name = ServerName::try_from("localhost").expect("name");

    let tls = connector
        .connect(
            name.clone(),
            TcpStream::connect(addresses.tls.expect("tls"))
                .await
                .expect("tcp"),
        )
        .await
        .expect("tls handshake");
    round_trip(
        RawClient::over(Box::new(tls), ProtocolVersion::V3_1_1),
        &broker,
        "tls-client",
    )
    .await;

    let wss_at = addresses.wss.expect("wss");
    let tls = connector
        .connect(name, TcpStream::connect(wss_at).await.expect("tcp"))
        .await
        .expect("tls handshake");
    let ws = websocket(tls, &format!("wss://localhost:{}/mqtt", wss_at.port())).await;
    round_trip(
        RawClient::over(Box::new(ws), ProtocolVersion::V5),
        &broker,
        "wss-client",
    )
    .await;
    broker
        .events
        .wait_for("wss-client", "client.disconnected(normal)")
        .await;
}

#[tokio::test]
async fn tls_listener_with_a_bad_key_does_not_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, _, _) = certificate(dir.path());
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a key").expect("write");
    let mut config = crate::support::test_config();
    config.listeners.tls = ListenerConfig {
        enable: true,
        bind: "127.0.0.1:0".parse().expect("address"),
        path: "/mqtt".into(),
        certfile: Some(cert),
        keyfile: Some(bogus),
        ..ListenerConfig::default()
    };
    let error = hookmq_broker::Broker::start(config)
        .await
        .expect_err("bad key");
    assert!(error.to_string().contains("listeners.tls"), "{error}");
}
