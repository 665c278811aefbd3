//! Byte-exact packets, written by hand from the specification's layouts: each decodes to the
//! expected packet and encodes back to the same bytes.
//!
//! Comments give each field; `rl` is the remaining length, `pl` a property length.

use super::{bin, bs, decode_all, encode_checked, up};
use crate::ProtocolVersion::{V3_1, V3_1_1, V5};
use crate::{
    Auth, ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, PubResponse, Publish,
    QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions, SubscriptionRequest,
    UnsubAck, Unsubscribe, Will,
};

/// Decodes `bytes` for `version` (CONNECT also before any version is known), compares with
/// `packet`, and encodes `packet` back to exactly `bytes`.
fn check_exact(version: ProtocolVersion, bytes: &[u8], packet: &Packet) {
    let decoded = decode_all(bytes, Some(version))
        .expect("decodes")
        .expect("complete");
    assert_eq!(&decoded, packet, "decoded");
    if matches!(packet, Packet::Connect(_)) {
        let first = decode_all(bytes, None).expect("decodes").expect("complete");
        assert_eq!(&first, packet, "decoded as the first packet");
    }
    assert_eq!(encode_checked(packet, version), bytes, "encoded");
}

macro_rules! exact_cases {
    ($($name:ident: $version:expr, $bytes:expr => $packet:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check_exact($version, &$bytes.concat(), &$packet);
            }
        )*

        /// Every byte-exact case: name, version, bytes, packet.
        pub(super) fn all() -> Vec<(&'static str, ProtocolVersion, Vec<u8>, Packet)> {
            vec![$((stringify!($name), $version, $bytes.concat(), $packet)),*]
        }
    };
}

fn connect(c: Connect) -> Packet {
    Packet::Connect(Box::new(c))
}

exact_cases! {
    connect_v3_1: V3_1, [
        &b"\x10\x17"[..],                 // CONNECT, rl 23
        b"\x00\x06MQIsdp\x03",            // protocol name, level 3
        b"\xC2",                          // user name, password, clean session
        b"\x00\x0A",                      // keep alive 10
        b"\x00\x03abc",                   // client id
        b"\x00\x01u",                     // user name
        b"\x00\x01p",                     // password
    ] => connect(Connect {
        protocol: V3_1,
        clean_start: true,
        keep_alive: 10,
        client_id: "abc".into(),
        username: Some("u".into()),
        password: Some(bin(b"p")),
        ..Connect::default()
    });

    connect_v3_1_1_will: V3_1_1, [
        &b"\x10\x24"[..],                 // CONNECT, rl 36
        b"\x00\x04MQTT\x04",              // protocol name, level 4
        b"\xEE",                          // user, password, will retain, will QoS 1, will, clean
        b"\x00\x3C",                      // keep alive 60
        b"\x00\x03cid",                   // client id
        b"\x00\x04w/tp",                  // will topic
        b"\x00\x03bye",                   // will payload
        b"\x00\x04user",                  // user name
        b"\x00\x02pw",                    // password
    ] => connect(Connect {
        protocol: V3_1_1,
        clean_start: true,
        keep_alive: 60,
        client_id: "cid".into(),
        will: Some(Will {
            topic: bs("w/tp"),
            payload: bin(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties::default(),
        }),
        username: Some("user".into()),
        password: Some(bin(b"pw")),
        ..Connect::default()
    });

    connect_v3_1_1_minimal: V3_1_1, [
        &b"\x10\x0C"[..],                 // CONNECT, rl 12
        b"\x00\x04MQTT\x04",              // protocol name, level 4
        b"\x00",                          // no flags
        b"\x00\x00",                      // keep alive 0
        b"\x00\x00",                      // empty client id
    ] => connect(Connect::default());

    connect_v5_full: V5, [
        &b"\x10\x6F"[..],                 // CONNECT, rl 111
        b"\x00\x04MQTT\x05",              // protocol name, level 5
        b"\xD6",                          // user, password, will QoS 2, will, clean start
        b"\x00\x1E",                      // keep alive 30
        b"\x28",                          // pl 40
        b"\x11\x00\x00\x0E\x10",          //   session expiry 3600
        b"\x15\x00\x05PLAIN",             //   authentication method
        b"\x16\x00\x02\x01\x02",          //   authentication data
        b"\x17\x00",                      //   request problem information 0
        b"\x19\x01",                      //   request response information 1
        b"\x21\x00\x14",                  //   receive maximum 20
        b"\x22\x00\x0A",                  //   topic alias maximum 10
        b"\x26\x00\x01k\x00\x01v",        //   user property k=v
        b"\x27\x00\x01\x00\x00",          //   maximum packet size 65536
        b"\x00\x02c5",                    // client id
        b"\x25",                          // will pl 37
        b"\x01\x01",                      //   payload format indicator 1
        b"\x02\x00\x00\x00\x3C",          //   message expiry 60
        b"\x03\x00\x04text",              //   content type
        b"\x08\x00\x03r/1",               //   response topic
        b"\x09\x00\x02\xAB\xCD",          //   correlation data
        b"\x18\x00\x00\x00\x05",          //   will delay 5
        b"\x26\x00\x01a\x00\x01b",        //   user property a=b
        b"\x00\x03w/5",                   // will topic
        b"\x00\x02hi",                    // will payload
        b"\x00\x02u5",                    // user name
        b"\x00\x03\x00\x01\x02",          // password (binary)
    ] => connect(Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 30,
        properties: Properties {
            session_expiry_interval: Some(3600),
            authentication_method: Some("PLAIN".into()),
            authentication_data: Some(bin(b"\x01\x02")),
            request_problem_information: Some(0),
            request_response_information: Some(1),
            receive_maximum: Some(20),
            topic_alias_maximum: Some(10),
            user_properties: vec![up("k", "v")],
            maximum_packet_size: Some(65536),
            ..Properties::default()
        },
        client_id: "c5".into(),
        will: Some(Will {
            topic: bs("w/5"),
            payload: bin(b"hi"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: Properties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                content_type: Some("text".into()),
                response_topic: Some("r/1".into()),
                correlation_data: Some(bin(b"\xAB\xCD")),
                will_delay_interval: Some(5),
                user_properties: vec![up("a", "b")],
                ..Properties::default()
            },
        }),
        username: Some("u5".into()),
        password: Some(bin(b"\x00\x01\x02")),
    });

    connect_v5_password_only: V5, [
        &b"\x10\x12"[..],                 // CONNECT, rl 18
        b"\x00\x04MQTT\x05",              // protocol name, level 5
        b"\x40",                          // password without user name (allowed in v5)
        b"\x00\x05",                      // keep alive 5
        b"\x00",                          // pl 0
        b"\x00\x01x",                     // client id
        b"\x00\x02pw",                    // password
    ] => connect(Connect {
        protocol: V5,
        keep_alive: 5,
        client_id: "x".into(),
        password: Some(bin(b"pw")),
        ..Connect::default()
    });

    connack_v3_accepted: V3_1_1, [&b"\x20\x02\x01\x00"[..]] => Packet::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    });

    connack_v3_not_authorized: V3_1_1, [&b"\x20\x02\x00\x05"[..]] => Packet::ConnAck(ConnAck {
        reason_code: ReasonCode::NOT_AUTHORIZED,
        ..ConnAck::default()
    });

    connack_v3_1_bad_credentials: V3_1, [&b"\x20\x02\x00\x04"[..]] => Packet::ConnAck(ConnAck {
        reason_code: ReasonCode::BAD_USERNAME_OR_PASSWORD,
        ..ConnAck::default()
    });

    connack_v5_properties: V5, [
        &b"\x20\x2B"[..],                 // CONNACK, rl 43
        b"\x01\x00",                      // session present, success
        b"\x28",                          // pl 40
        b"\x11\x00\x00\x00\x78",          //   session expiry 120
        b"\x12\x00\x03xyz",               //   assigned client identifier
        b"\x13\x00\x3C",                  //   server keep alive 60
        b"\x1F\x00\x02ok",                //   reason string
        b"\x21\x00\x0A",                  //   receive maximum 10
        b"\x22\x00\x05",                  //   topic alias maximum 5
        b"\x24\x01",                      //   maximum QoS 1
        b"\x25\x00",                      //   retain available 0
        b"\x27\x00\x00\x10\x00",          //   maximum packet size 4096
        b"\x28\x00",                      //   wildcard subscription available 0
        b"\x29\x01",                      //   subscription identifiers available 1
        b"\x2A\x01",                      //   shared subscription available 1
    ] => Packet::ConnAck(ConnAck {
        session_present: true,
        reason_code: ReasonCode::SUCCESS,
        properties: Properties {
            session_expiry_interval: Some(120),
            assigned_client_identifier: Some("xyz".into()),
            server_keep_alive: Some(60),
            reason_string: Some("ok".into()),
            receive_maximum: Some(10),
            topic_alias_maximum: Some(5),
            maximum_qos: Some(1),
            retain_available: Some(0),
            maximum_packet_size: Some(4096),
            wildcard_subscription_available: Some(0),
            subscription_identifier_available: Some(1),
            shared_subscription_available: Some(1),
            ..Properties::default()
        },
    });

    connack_v5_use_another_server: V5, [
        &b"\x20\x0E"[..],                 // CONNACK, rl 14
        b"\x00\x9C",                      // no session, use another server
        b"\x0B",                          // pl 11
        b"\x1A\x00\x02ri",                //   response information
        b"\x1C\x00\x03srv",               //   server reference
    ] => Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::USE_ANOTHER_SERVER,
        properties: Properties {
            response_information: Some("ri".into()),
            server_reference: Some("srv".into()),
            ..Properties::default()
        },
    });

    publish_v3_qos0: V3_1_1, [
        &b"\x30\x07"[..],                 // PUBLISH QoS 0, rl 7
        b"\x00\x03a/b",                   // topic
        b"hi",                            // payload
    ] => Packet::Publish(Publish {
        topic: bs("a/b"),
        payload: bin(b"hi"),
        ..Publish::default()
    });

    publish_v3_qos1_retain: V3_1_1, [
        &b"\x33\x08"[..],                 // PUBLISH QoS 1 retain, rl 8
        b"\x00\x03a/b",                   // topic
        b"\x00\x0A",                      // packet id 10
        b"x",                             // payload
    ] => Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: bs("a/b"),
        packet_id: 10,
        payload: bin(b"x"),
        ..Publish::default()
    });

    publish_v3_1_qos2_dup_empty_payload: V3_1, [
        &b"\x3C\x05"[..],                 // PUBLISH DUP QoS 2, rl 5
        b"\x00\x01t",                     // topic
        b"\x12\x34",                      // packet id 0x1234
    ] => Packet::Publish(Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        topic: bs("t"),
        packet_id: 0x1234,
        ..Publish::default()
    });

    publish_v5_qos0_no_properties: V5, [
        &b"\x30\x05"[..],                 // PUBLISH QoS 0, rl 5
        b"\x00\x01t",                     // topic
        b"\x00",                          // pl 0
        b"p",                             // payload
    ] => Packet::Publish(Publish {
        topic: bs("t"),
        payload: bin(b"p"),
        ..Publish::default()
    });

    publish_v5_qos1_properties: V5, [
        &b"\x32\x47"[..],                 // PUBLISH QoS 1, rl 71
        b"\x00\x03a/b",                   // topic
        b"\x00\x01",                      // packet id 1
        b"\x3A",                          // pl 58
        b"\x01\x01",                      //   payload format indicator 1
        b"\x02\x00\x00\x00\x0A",          //   message expiry 10
        b"\x03\x00\x0Atext/plain",        //   content type
        b"\x08\x00\x05re/sp",             //   response topic
        b"\x09\x00\x03\x01\x02\x03",      //   correlation data
        b"\x0B\x05",                      //   subscription identifier 5
        b"\x0B\x80\x01",                  //   subscription identifier 128
        b"\x23\x00\x07",                  //   topic alias 7
        b"\x26\x00\x01k\x00\x02v1",       //   user property k=v1
        b"\x26\x00\x01k\x00\x02v2",       //   user property k=v2 (repeats allowed)
        b"hello",                         // payload
    ] => Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: bs("a/b"),
        packet_id: 1,
        properties: Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(10),
            content_type: Some("text/plain".into()),
            response_topic: Some("re/sp".into()),
            correlation_data: Some(bin(b"\x01\x02\x03")),
            subscription_identifiers: vec![5, 128],
            topic_alias: Some(7),
            user_properties: vec![up("k", "v1"), up("k", "v2")],
            ..Properties::default()
        },
        payload: bin(b"hello"),
        ..Publish::default()
    });

    publish_v5_qos2_topic_alias_only: V5, [
        &b"\x34\x09"[..],                 // PUBLISH QoS 2, rl 9
        b"\x00\x00",                      // empty topic: the alias stands for it
        b"\x00\x02",                      // packet id 2
        b"\x03",                          // pl 3
        b"\x23\x00\x01",                  //   topic alias 1
        b"x",                             // payload
    ] => Packet::Publish(Publish {
        qos: QoS::ExactlyOnce,
        packet_id: 2,
        properties: Properties { topic_alias: Some(1), ..Properties::default() },
        payload: bin(b"x"),
        ..Publish::default()
    });

    puback_v3: V3_1_1, [&b"\x40\x02\x00\x01"[..]] => Packet::PubAck(PubResponse::new(1));
    pubrec_v3: V3_1_1, [&b"\x50\x02\x00\x02"[..]] => Packet::PubRec(PubResponse::new(2));
    pubrel_v3: V3_1_1, [&b"\x62\x02\x00\x03"[..]] => Packet::PubRel(PubResponse::new(3));
    pubcomp_v3: V3_1_1, [&b"\x70\x02\x00\x04"[..]] => Packet::PubComp(PubResponse::new(4));
    pubrel_v3_1: V3_1, [&b"\x62\x02\xFF\xFF"[..]] => Packet::PubRel(PubResponse::new(0xFFFF));

    puback_v5_short: V5, [&b"\x40\x02\x00\x01"[..]] => Packet::PubAck(PubResponse::new(1));
    pubrec_v5_short: V5, [&b"\x50\x02\x00\x02"[..]] => Packet::PubRec(PubResponse::new(2));
    pubrel_v5_short: V5, [&b"\x62\x02\x00\x03"[..]] => Packet::PubRel(PubResponse::new(3));
    pubcomp_v5_short: V5, [&b"\x70\x02\x00\x04"[..]] => Packet::PubComp(PubResponse::new(4));

    puback_v5_reason_only: V5, [
        &b"\x40\x03\x00\x01"[..],         // PUBACK, rl 3, packet id 1
        b"\x10",                          // no matching subscribers
    ] => Packet::PubAck(PubResponse {
        packet_id: 1,
        reason_code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        properties: Properties::default(),
    });

    pubrec_v5_reason_only: V5, [&b"\x50\x03\x00\x02\x80"[..]] => Packet::PubRec(PubResponse {
        packet_id: 2,
        reason_code: ReasonCode::UNSPECIFIED_ERROR,
        properties: Properties::default(),
    });

    pubrel_v5_reason_only: V5, [&b"\x62\x03\x00\x03\x92"[..]] => Packet::PubRel(PubResponse {
        packet_id: 3,
        reason_code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        properties: Properties::default(),
    });

    puback_v5_long: V5, [
        &b"\x40\x11"[..],                 // PUBACK, rl 17
        b"\x00\x01",                      // packet id 1
        b"\x87",                          // not authorized
        b"\x0D",                          // pl 13
        b"\x1F\x00\x03bad",               //   reason string
        b"\x26\x00\x01k\x00\x01v",        //   user property
    ] => Packet::PubAck(PubResponse {
        packet_id: 1,
        reason_code: ReasonCode::NOT_AUTHORIZED,
        properties: Properties {
            reason_string: Some("bad".into()),
            user_properties: vec![up("k", "v")],
            ..Properties::default()
        },
    });

    pubrec_v5_long: V5, [
        &b"\x50\x08"[..],                 // PUBREC, rl 8
        b"\x00\x05\x97",                  // packet id 5, quota exceeded
        b"\x04\x1F\x00\x01q",             // pl 4: reason string
    ] => Packet::PubRec(PubResponse {
        packet_id: 5,
        reason_code: ReasonCode::QUOTA_EXCEEDED,
        properties: Properties { reason_string: Some("q".into()), ..Properties::default() },
    });

    pubrel_v5_long: V5, [
        &b"\x62\x0A"[..],                 // PUBREL, rl 10
        b"\x00\x06\x00",                  // packet id 6, success
        b"\x06\x26\x00\x00\x00\x01z",     // pl 6: user property ""=z
    ] => Packet::PubRel(PubResponse {
        packet_id: 6,
        reason_code: ReasonCode::SUCCESS,
        properties: Properties { user_properties: vec![up("", "z")], ..Properties::default() },
    });

    pubcomp_v5_long: V5, [
        &b"\x70\x08"[..],                 // PUBCOMP, rl 8
        b"\x00\x04\x00",                  // packet id 4, success
        b"\x04\x1F\x00\x01x",             // pl 4: reason string
    ] => Packet::PubComp(PubResponse {
        packet_id: 4,
        reason_code: ReasonCode::SUCCESS,
        properties: Properties { reason_string: Some("x".into()), ..Properties::default() },
    });

    subscribe_v3: V3_1_1, [
        &b"\x82\x0E"[..],                 // SUBSCRIBE, rl 14
        b"\x00\x0A",                      // packet id 10
        b"\x00\x03a/b\x01",               // a/b QoS 1
        b"\x00\x03c/#\x02",               // c/# QoS 2
    ] => Packet::Subscribe(Subscribe {
        packet_id: 10,
        properties: Properties::default(),
        subscriptions: vec![
            SubscriptionRequest {
                filter: bs("a/b"),
                options: SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() },
            },
            SubscriptionRequest {
                filter: bs("c/#"),
                options: SubscriptionOptions { qos: QoS::ExactlyOnce, ..Default::default() },
            },
        ],
    });

    subscribe_v5_options: V5, [
        &b"\x82\x20"[..],                 // SUBSCRIBE, rl 32
        b"\x00\x0B",                      // packet id 11
        b"\x0A",                          // pl 10
        b"\x0B\x80\x01",                  //   subscription identifier 128
        b"\x26\x00\x01k\x00\x01v",        //   user property
        b"\x00\x03a/+\x2D",               // QoS 1, no local, RAP, retain handling 2
        b"\x00\x0A$share/g/x\x10",        // QoS 0, retain handling 1
    ] => Packet::Subscribe(Subscribe {
        packet_id: 11,
        properties: Properties {
            subscription_identifiers: vec![128],
            user_properties: vec![up("k", "v")],
            ..Properties::default()
        },
        subscriptions: vec![
            SubscriptionRequest {
                filter: bs("a/+"),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            SubscriptionRequest {
                filter: bs("$share/g/x"),
                options: SubscriptionOptions {
                    retain_handling: RetainHandling::SendIfNew,
                    ..Default::default()
                },
            },
        ],
    });

    suback_v3: V3_1_1, [
        &b"\x90\x06"[..],                 // SUBACK, rl 6
        b"\x00\x0A",                      // packet id 10
        b"\x00\x01\x02\x80",              // QoS 0, 1, 2, failure
    ] => Packet::SubAck(SubAck {
        packet_id: 10,
        properties: Properties::default(),
        reason_codes: vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::UNSPECIFIED_ERROR,
        ],
    });

    suback_v5: V5, [
        &b"\x90\x11"[..],                 // SUBACK, rl 17
        b"\x00\x0B",                      // packet id 11
        b"\x05\x1F\x00\x02no",            // pl 5: reason string
        b"\x00\x01\x02\x80\x87\x8F\x9E\xA1\xA2", // nine reason codes
    ] => Packet::SubAck(SubAck {
        packet_id: 11,
        properties: Properties { reason_string: Some("no".into()), ..Properties::default() },
        reason_codes: vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::UNSPECIFIED_ERROR,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::TOPIC_FILTER_INVALID,
            ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        ],
    });

    unsubscribe_v3: V3_1_1, [
        &b"\xA2\x0A"[..],                 // UNSUBSCRIBE, rl 10
        b"\x00\x0C",                      // packet id 12
        b"\x00\x03a/b",                   // filter
        b"\x00\x01#",                     // filter
    ] => Packet::Unsubscribe(Unsubscribe {
        packet_id: 12,
        properties: Properties::default(),
        filters: vec![bs("a/b"), bs("#")],
    });

    unsubscribe_v5: V5, [
        &b"\xA2\x0D"[..],                 // UNSUBSCRIBE, rl 13
        b"\x00\x0D",                      // packet id 13
        b"\x07\x26\x00\x01k\x00\x01v",    // pl 7: user property
        b"\x00\x01x",                     // filter
    ] => Packet::Unsubscribe(Unsubscribe {
        packet_id: 13,
        properties: Properties { user_properties: vec![up("k", "v")], ..Properties::default() },
        filters: vec![bs("x")],
    });

    unsuback_v3: V3_1_1, [&b"\xB0\x02\x00\x0C"[..]] => Packet::UnsubAck(UnsubAck {
        packet_id: 12,
        ..UnsubAck::default()
    });

    unsuback_v5: V5, [
        &b"\xB0\x06"[..],                 // UNSUBACK, rl 6
        b"\x00\x0D",                      // packet id 13
        b"\x00",                          // pl 0
        b"\x00\x11\x87",                  // success, no subscription existed, not authorized
    ] => Packet::UnsubAck(UnsubAck {
        packet_id: 13,
        properties: Properties::default(),
        reason_codes: vec![
            ReasonCode::SUCCESS,
            ReasonCode::NO_SUBSCRIPTION_EXISTED,
            ReasonCode::NOT_AUTHORIZED,
        ],
    });

    unsuback_v5_reason_string: V5, [
        &b"\xB0\x09"[..],                 // UNSUBACK, rl 9
        b"\x00\x0E",                      // packet id 14
        b"\x05\x1F\x00\x02no",            // pl 5: reason string
        b"\x8F",                          // topic filter invalid
    ] => Packet::UnsubAck(UnsubAck {
        packet_id: 14,
        properties: Properties { reason_string: Some("no".into()), ..Properties::default() },
        reason_codes: vec![ReasonCode::TOPIC_FILTER_INVALID],
    });

    pingreq_v3: V3_1_1, [&b"\xC0\x00"[..]] => Packet::PingReq;
    pingresp_v3: V3_1_1, [&b"\xD0\x00"[..]] => Packet::PingResp;
    pingreq_v3_1: V3_1, [&b"\xC0\x00"[..]] => Packet::PingReq;
    pingreq_v5: V5, [&b"\xC0\x00"[..]] => Packet::PingReq;
    pingresp_v5: V5, [&b"\xD0\x00"[..]] => Packet::PingResp;

    disconnect_v3: V3_1_1, [&b"\xE0\x00"[..]] => Packet::Disconnect(Disconnect::default());
    disconnect_v5_short: V5, [&b"\xE0\x00"[..]] => Packet::Disconnect(Disconnect::default());
    disconnect_v5_reason_only: V5, [&b"\xE0\x01\x8E"[..]] =>
        Packet::Disconnect(Disconnect::new(ReasonCode::SESSION_TAKEN_OVER));

    disconnect_v5_properties: V5, [
        &b"\xE0\x11"[..],                 // DISCONNECT, rl 17
        b"\x04",                          // disconnect with will message
        b"\x0F",                          // pl 15
        b"\x11\x00\x00\x01\x2C",          //   session expiry 300
        b"\x1C\x00\x01s",                 //   server reference
        b"\x1F\x00\x03bye",               //   reason string
    ] => Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL,
        properties: Properties {
            session_expiry_interval: Some(300),
            server_reference: Some("s".into()),
            reason_string: Some("bye".into()),
            ..Properties::default()
        },
    });

    auth_v5_short: V5, [&b"\xF0\x00"[..]] => Packet::Auth(Auth::default());

    auth_v5_continue: V5, [
        &b"\xF0\x14"[..],                 // AUTH, rl 20
        b"\x18",                          // continue authentication
        b"\x12",                          // pl 18
        b"\x15\x00\x05SCRAM",             //   authentication method
        b"\x16\x00\x03\x01\x02\x03",      //   authentication data
        b"\x1F\x00\x01r",                 //   reason string
    ] => Packet::Auth(Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(bin(b"\x01\x02\x03")),
            reason_string: Some("r".into()),
            ..Properties::default()
        },
    });
}

/// Forms the decoder accepts but the encoder does not produce (it picks the shortest).
#[test]
fn long_forms_decode_and_encode_short() {
    let cases: [(&[u8], &[u8]); 5] = [
        // PUBACK success with an explicit reason code and empty properties.
        (b"\x40\x04\x00\x01\x00\x00", b"\x40\x02\x00\x01"),
        // PUBCOMP success with an explicit reason code.
        (b"\x70\x03\x00\x01\x00", b"\x70\x02\x00\x01"),
        // DISCONNECT normal with an explicit reason code and empty properties.
        (b"\xE0\x02\x00\x00", b"\xE0\x00"),
        // DISCONNECT with a reason code and empty properties.
        (b"\xE0\x02\x8B\x00", b"\xE0\x01\x8B"),
        // AUTH success with empty properties.
        (b"\xF0\x02\x00\x00", b"\xF0\x00"),
    ];
    for (long, short) in cases {
        let packet = decode_all(long, Some(V5))
            .expect("decodes")
            .expect("complete");
        assert_eq!(encode_checked(&packet, V5), short, "{packet:?}");
    }
}

/// Non-minimal variable byte integers are accepted (remaining length 2 written in 2 bytes).
#[test]
fn non_minimal_remaining_length() {
    let packet = decode_all(b"\x40\x82\x00\x00\x01", Some(V3_1_1)).expect("decodes");
    assert_eq!(packet, Some(Packet::PubAck(PubResponse::new(1))));
}

/// A v5 CONNECT decodes as v5 before any version is known, and its will with properties.
#[test]
fn connect_picks_its_version() {
    for (_, version, bytes, packet) in all() {
        if let Packet::Connect(connect) = &packet {
            assert_eq!(connect.protocol, version);
            let decoded = decode_all(&bytes, None)
                .expect("decodes")
                .expect("complete");
            assert_eq!(decoded, packet);
            // Already connected: still decoded with its own level.
            let other = if version == V5 { V3_1_1 } else { V5 };
            let decoded = decode_all(&bytes, Some(other))
                .expect("decodes")
                .expect("complete");
            assert_eq!(decoded, packet);
        }
    }
}

/// v3 encodings leave out what v3 cannot carry.
#[test]
fn v3_drops_v5_fields() {
    let props = Properties {
        reason_string: Some("r".into()),
        ..Properties::default()
    };
    let cases: Vec<(Packet, &[u8])> = vec![
        (
            Packet::ConnAck(ConnAck {
                session_present: false,
                reason_code: ReasonCode::SERVER_BUSY,
                properties: props.clone(),
            }),
            b"\x20\x02\x00\x03",
        ),
        (
            Packet::ConnAck(ConnAck {
                reason_code: ReasonCode::BANNED,
                ..ConnAck::default()
            }),
            b"\x20\x02\x00\x05",
        ),
        (
            Packet::PubAck(PubResponse {
                packet_id: 7,
                reason_code: ReasonCode::NOT_AUTHORIZED,
                properties: props.clone(),
            }),
            b"\x40\x02\x00\x07",
        ),
        (
            Packet::SubAck(SubAck {
                packet_id: 1,
                properties: props.clone(),
                reason_codes: vec![
                    ReasonCode::GRANTED_QOS_1,
                    ReasonCode::NOT_AUTHORIZED,
                    ReasonCode::GRANTED_QOS_2,
                    ReasonCode::QUOTA_EXCEEDED,
                ],
            }),
            b"\x90\x06\x00\x01\x01\x80\x02\x80",
        ),
        (
            Packet::UnsubAck(UnsubAck {
                packet_id: 2,
                properties: props.clone(),
                reason_codes: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
            }),
            b"\xB0\x02\x00\x02",
        ),
        (
            Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::SESSION_TAKEN_OVER,
                properties: props.clone(),
            }),
            b"\xE0\x00",
        ),
        (
            Packet::Subscribe(Subscribe {
                packet_id: 3,
                properties: Properties {
                    subscription_identifiers: vec![4],
                    ..Properties::default()
                },
                subscriptions: vec![SubscriptionRequest {
                    filter: bs("t"),
                    options: SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                }],
            }),
            b"\x82\x06\x00\x03\x00\x01t\x02",
        ),
    ];
    for (packet, bytes) in cases {
        assert_eq!(encode_checked(&packet, V3_1_1), bytes, "{packet:?}");
    }
}

/// The encoder writes only the properties the packet may carry, and one subscription
/// identifier outside PUBLISH.
#[test]
fn encoder_filters_properties() {
    let everything = Properties {
        will_delay_interval: Some(5),
        session_expiry_interval: Some(9),
        reason_string: Some("r".into()),
        topic_alias: Some(3),
        subscription_identifiers: vec![1, 2],
        ..Properties::default()
    };
    let publish = Packet::Publish(Publish {
        topic: bs("t"),
        properties: everything.clone(),
        ..Publish::default()
    });
    assert_eq!(
        encode_checked(&publish, V5),
        [
            &b"\x30\x0B"[..],    // PUBLISH QoS 0, rl 11
            b"\x00\x01t",        // topic
            b"\x07",             // pl 7
            b"\x0B\x01\x0B\x02", //   subscription identifiers 1 and 2
            b"\x23\x00\x03",     //   topic alias 3
        ]
        .concat()
    );
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: everything,
        subscriptions: vec![SubscriptionRequest {
            filter: bs("t"),
            ..Default::default()
        }],
    });
    assert_eq!(
        encode_checked(&subscribe, V5),
        [
            &b"\x82\x09"[..], // SUBSCRIBE, rl 9
            b"\x00\x01",      // packet id
            b"\x02\x0B\x01",  // pl 2: subscription identifier 1
            b"\x00\x01t\x00", // filter, options
        ]
        .concat()
    );
}
