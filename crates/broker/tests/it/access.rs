//! Authentication with a password file, authorization with an ACL file.

use std::time::Duration;

use hookmq_broker::{auth, config::NoMatch, hooks::EventData};
use hookmq_codec::{ProtocolVersion, QoS, ReasonCode};
use test_case::test_case;

use crate::support::{RawClient, TestBroker};

fn login(
    version: ProtocolVersion,
    client_id: &str,
    user: Option<&str>,
    password: &[u8],
) -> hookmq_codec::Connect {
    let mut connect = RawClient::connect_packet(version, client_id);
    connect.username = user.map(str::to_owned);
    connect.password = Some(bytes::Bytes::copy_from_slice(password));
    connect
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn password_file_decides_who_connects(version: ProtocolVersion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let passwd = dir.path().join("passwd");
    auth::add_user(&passwd, "alice", b"wonderland").expect("add user");
    let broker = TestBroker::start_with(|c| {
        c.auth.password_file = Some(passwd.clone());
        c.auth.allow_anonymous = false;
    })
    .await;

    let mut good = RawClient::open(broker.tcp, version).await;
    let ack = good
        .handshake(login(version, "good", Some("alice"), b"wonderland"))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);

    let mut bad = RawClient::open(broker.tcp, version).await;
    let ack = bad
        .handshake(login(version, "bad", Some("alice"), b"guess"))
        .await;
    assert_eq!(
        ack.reason_code,
        ReasonCode::BAD_USERNAME_OR_PASSWORD,
        "v3 return code 4 maps here"
    );
    assert_eq!(bad.recv().await, None, "refused connections close");

    let mut anonymous = RawClient::open(broker.tcp, version).await;
    let ack = anonymous
        .handshake(RawClient::connect_packet(version, "anon"))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);

    broker
        .events
        .wait_for("anon", "client.connack(not_authorized)")
        .await;
    assert_eq!(
        broker.events.names("bad"),
        [
            "client.check_authn_complete(bad_username_or_password)",
            "client.connack(bad_username_or_password)"
        ],
        "a refused client is never connected nor disconnected"
    );
    let anonymous_flag = broker.events.of("anon").iter().find_map(|e| match &e.data {
        EventData::CheckAuthnComplete { is_anonymous, .. } => Some(*is_anonymous),
        _ => None,
    });
    assert_eq!(anonymous_flag, Some(true));
}

const ACL: &str = r##"
[[rules]]
permission = "allow"
username = "sensor"
action = "publish"
topics = ["sensors/${clientid}/#"]

[[rules]]
permission = "deny"
all = true
action = "all"
topics = ["secret/#"]
"##;

#[tokio::test]
async fn acl_rules_and_default_decide_with_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let acl = dir.path().join("acl.toml");
    std::fs::write(&acl, ACL).expect("write acl");
    let broker = TestBroker::start_with(|c| c.authz.acl_file = Some(acl.clone())).await;
    let version = ProtocolVersion::V5;

    let mut watcher = RawClient::connect(broker.tcp, version, "watcher").await;
    let ack = watcher.subscribe(1, "secret/#", QoS::AtLeastOnce).await;
    assert_eq!(ack.reason_codes, [ReasonCode::NOT_AUTHORIZED]);
    watcher.subscribe(2, "sensors/#", QoS::AtLeastOnce).await;

    let mut sensor = RawClient::open(broker.tcp, version).await;
    sensor
        .handshake(login(version, "s1", Some("sensor"), b""))
        .await;
    assert_eq!(
        sensor
            .publish("sensors/s1/temp", b"21", QoS::AtLeastOnce, 1)
            .await,
        ReasonCode::SUCCESS
    );
    assert_eq!(&watcher.receive_publish().await.payload[..], b"21");
    assert_eq!(
        sensor
            .publish("sensors/s1/temp", b"22", QoS::AtLeastOnce, 3)
            .await,
        ReasonCode::SUCCESS
    );
    assert_eq!(&watcher.receive_publish().await.payload[..], b"22");
    assert_eq!(
        sensor
            .publish("secret/plans", b"x", QoS::AtLeastOnce, 2)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    watcher.expect_silence(Duration::from_millis(200)).await;

    let sources: Vec<(String, &str, &str)> = broker
        .events
        .all()
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CheckAuthzComplete {
                topic,
                source,
                result,
                ..
            } => Some((topic.to_string(), *source, result.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("secret/#".to_owned(), "file", "deny"),
            ("sensors/#".to_owned(), "default", "allow"),
            ("sensors/s1/temp".to_owned(), "file", "allow"),
            // The second time the connection's cache answers, reported as EMQX does.
            ("sensors/s1/temp".to_owned(), "cache", "allow"),
            ("secret/plans".to_owned(), "file", "deny"),
        ]
    );
}

#[tokio::test]
async fn no_match_deny_and_v3_ignores_denied_publishes() {
    let broker = TestBroker::start_with(|c| c.authz.no_match = NoMatch::Deny).await;
    let mut v3 = RawClient::connect(broker.tcp, ProtocolVersion::V3_1_1, "v3").await;
    let ack = v3.subscribe(1, "t", QoS::AtMostOnce).await;
    assert!(ack.reason_codes[0].is_error());
    // v3 cannot say no to a PUBLISH: it is acknowledged and dropped.
    assert_eq!(
        v3.publish("t", b"x", QoS::AtLeastOnce, 1).await,
        ReasonCode::SUCCESS
    );
    broker
        .events
        .wait_for("v3", "client.check_authz_complete(publish:deny)")
        .await;
    assert!(
        !broker
            .events
            .names("v3")
            .contains(&"message.publish".to_owned())
    );
}

#[tokio::test]
async fn unreadable_access_files_stop_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let acl = dir.path().join("acl.toml");
    std::fs::write(&acl, "[[rules]]\npermission = \"allow\"\n").expect("write");
    let mut config = crate::support::test_config();
    config.authz.acl_file = Some(acl);
    let error = hookmq_broker::Broker::start(config)
        .await
        .expect_err("bad acl")
        .to_string();
    assert!(error.contains("acl.toml"), "{error}");
    let mut config = crate::support::test_config();
    config.auth.password_file = Some(dir.path().join("missing"));
    let error = hookmq_broker::Broker::start(config)
        .await
        .expect_err("missing file")
        .to_string();
    assert!(error.contains("missing"), "{error}");
}

#[tokio::test]
async fn a_superuser_may_do_what_the_acl_denies_and_events_say_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let passwd = dir.path().join("passwd");
    auth::add_user(&passwd, "ops", b"root-pw").expect("add user");
    auth::add_user(&passwd, "sensor", b"s-pw").expect("add user");
    let text = std::fs::read_to_string(&passwd).expect("read");
    let marked: String = text
        .lines()
        .map(|line| {
            if line.starts_with("ops:") {
                format!("{line}:superuser\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write(&passwd, marked).expect("mark ops");
    let acl = dir.path().join("acl.toml");
    std::fs::write(&acl, ACL).expect("write acl");
    let broker = TestBroker::start_with(|c| {
        c.auth.password_file = Some(passwd.clone());
        c.authz.acl_file = Some(acl.clone());
    })
    .await;
    let version = ProtocolVersion::V5;
    for (id, user, password) in [("ops-1", "ops", &b"root-pw"[..]), ("s2", "sensor", b"s-pw")] {
        let mut client = RawClient::open(broker.tcp, version).await;
        client
            .handshake(login(version, id, Some(user), password))
            .await;
        let code = client
            .publish("secret/plans", b"x", QoS::AtLeastOnce, 1)
            .await;
        assert_eq!(
            code == ReasonCode::NOT_AUTHORIZED,
            user != "ops",
            "{user}: {code:?}"
        );
    }
    let events = broker.events.all();
    let superuser: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CheckAuthnComplete { client, .. } => {
                Some((client.client_id.to_string(), client.is_superuser))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        superuser,
        [("ops-1".to_owned(), true), ("s2".to_owned(), false)]
    );
    let authz: Vec<(String, &str)> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CheckAuthzComplete { client, source, .. } => {
                Some((client.client_id.to_string(), *source))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        authz,
        [("ops-1".to_owned(), "superuser"), ("s2".to_owned(), "file")]
    );
}

#[tokio::test]
async fn client_attributes_come_from_the_rules_at_connect() {
    let rules = [
        ("nth(1, tokens(clientid, '-'))", "site"),
        ("user_property.group", "group"),
        ("lower(username)", "who"),
        ("dn", "subject"),
    ];
    let broker = TestBroker::start_with(|c| {
        c.mqtt.client_attrs_init = rules
            .iter()
            .map(
                |(expression, name)| hookmq_broker::client_attrs::ClientAttrInit {
                    expression: (*expression).to_owned(),
                    set_as_attr: (*name).to_owned(),
                },
            )
            .collect();
    })
    .await;
    let version = ProtocolVersion::V5;
    let mut connect = login(version, "paris-17", Some("Ops"), b"");
    connect.properties.user_properties = vec![("group".into(), "g1".into())];
    let mut client = RawClient::open(broker.tcp, version).await;
    client.handshake(connect).await;
    client.publish("t", b"x", QoS::AtLeastOnce, 1).await;
    let events = broker.events.all();
    let attrs = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ClientConnected { client } => Some(client.client_attrs.clone()),
            _ => None,
        })
        .expect("connected");
    let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(
        attrs,
        [("group", "g1"), ("site", "paris"), ("who", "ops")],
        "no certificate: no subject"
    );
    let published = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::MessagePublish { message } => message.publisher.client_attrs.clone(),
            _ => None,
        })
        .expect("the publisher's attributes");
    assert_eq!(published.len(), 3);
}

#[tokio::test]
async fn a_mountpoint_gives_each_site_its_own_topics() {
    let broker = TestBroker::start_with(|c| {
        c.listeners.tcp.mountpoint = "site/${client_attrs.site}/".into();
        c.mqtt.client_attrs_init = vec![hookmq_broker::client_attrs::ClientAttrInit {
            expression: "nth(1, tokens(clientid, '-'))".into(),
            set_as_attr: "site".into(),
        }];
    })
    .await;
    let version = ProtocolVersion::V5;
    let mut reader = RawClient::connect(broker.tcp, version, "paris-1").await;
    reader.subscribe(1, "temp", QoS::AtLeastOnce).await;
    let mut shared = RawClient::connect(broker.tcp, version, "paris-3").await;
    shared.subscribe(1, "$share/g/temp", QoS::AtMostOnce).await;
    let mut neighbour = RawClient::connect(broker.tcp, version, "paris-2").await;
    let mut stranger = RawClient::connect(broker.tcp, version, "lyon-1").await;
    stranger.publish("temp", b"lyon", QoS::AtLeastOnce, 1).await;
    neighbour
        .publish("temp", b"paris", QoS::AtLeastOnce, 1)
        .await;
    let got = reader.receive_publish().await;
    assert_eq!(
        (&*got.topic, &got.payload[..]),
        ("temp", &b"paris"[..]),
        "its own topic, its site's message"
    );
    assert_eq!(&*shared.receive_publish().await.topic, "temp");
    reader.expect_silence(Duration::from_millis(200)).await;
    // A client whose id would put a wildcard in its mountpoint is refused.
    let mut escaper = RawClient::open(broker.tcp, version).await;
    let ack = escaper.handshake(login(version, "+-9", None, b"")).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);

    let events = broker.events.all();
    let topics: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::MessagePublish { message } => Some(message.topic.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        topics,
        ["site/lyon/temp", "site/paris/temp"],
        "events show the mounted topic"
    );
    let checked: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CheckAuthzComplete { topic, .. } => Some(topic.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        !checked.is_empty() && checked.iter().all(|t| !t.starts_with("site/")),
        "authorization reports the client's own topics: {checked:?}"
    );
    let mountpoint = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ClientConnected { client } if &*client.client_id == "paris-1" => {
                client.mountpoint.clone()
            }
            _ => None,
        })
        .expect("connected");
    assert_eq!(&*mountpoint, "site/paris/");
    let filters: Vec<String> = broker
        .handle
        .subscriptions()
        .into_iter()
        .map(|row| row.filter)
        .collect();
    assert!(
        filters.contains(&"site/paris/temp".to_owned()),
        "{filters:?}"
    );
    assert!(
        filters.contains(&"$share/g/site/paris/temp".to_owned()),
        "{filters:?}"
    );
}
