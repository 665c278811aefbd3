//! Hostile input at every documented endpoint: missing or wrong credentials are 401s, and
//! malformed JSON, wrong types, huge numbers, empty bodies, wrong content types and odd
//! path or query values never make it answer 500 (nor anything but a JSON error). Secrets
//! never come back in an answer nor go to the log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    Auth, log_text,
    openapi::{concrete, document, operations},
    receiver, start_node, start_node_with,
};

#[tokio::test]
async fn every_secured_endpoint_wants_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Hundreds of wrong API keys in a row would be locked out (429, tested in `throttle`):
    // this sweep is about the 401s, so throttling is off.
    let dashboard = hookmq_api::DashboardConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        unsuccessful_login_max_attempts: 0,
        ..hookmq_api::DashboardConfig::default()
    };
    let node = start_node_with(dir.path(), dashboard).await;
    let document = document(&node).await;
    let secured: Vec<_> = operations(&document)
        .into_iter()
        .filter(|(_, _, secured)| *secured)
        .collect();
    assert!(secured.len() >= 20);
    for (method, path, _) in secured {
        let url = concrete(&path);
        for auth in [
            Auth::None,
            Auth::Bearer("not-a-token"),
            Auth::Basic("nokey", "nosecret"),
            Auth::Raw("Bearer"),
            Auth::Raw("Basic"),
            Auth::Raw("Basic %%%"),
            Auth::Raw("token abc"),
            Auth::Raw(""),
        ] {
            let (status, answer) = node.send(auth, method.clone(), &url, Some(json!({}))).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {url} {auth:?}");
            assert_eq!(answer["code"], "UNAUTHORIZED", "{method} {url} {auth:?}");
        }
    }
}

/// A raw body with a content type (`None`: no header).
type RawBody = (Option<&'static str>, Vec<u8>);

fn hostile_bodies() -> Vec<RawBody> {
    const JSON: Option<&str> = Some("application/json");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let mut bodies: Vec<RawBody> = [
        "",
        "{",
        "}",
        "[]",
        "null",
        "1",
        "\"text\"",
        "{\"name\": 1e400}",
        "{\"name\": 123456789012345678901234567890}",
        "{\"limit\": -1, \"page\": 18446744073709551616}",
        "{\"name\": \"x\", \"url\": [1, 2]}",
        "{\"name\": \"x\", \"url\": \"http://127.0.0.1:9/\", \"max_retries\": 99999999999}",
        "{\"name\": \"x\", \"url\": \"http://127.0.0.1:9/\", \"queue_capacity\": -5}",
        "{\"username\": null, \"password\": {}}",
        "{\"old_pwd\": [], \"new_pwd\": true}",
        "{\"a\": 1} trailing",
        "{\"a\": \"\\ud800\"}",
    ]
    .into_iter()
    .map(|text| (JSON, text.as_bytes().to_vec()))
    .collect();
    bodies.push((JSON, deep.into_bytes()));
    bodies.push((JSON, vec![0xff, 0xfe, b'{', 0x00]));
    bodies.push((JSON, vec![b' '; 3 * 1024 * 1024]));
    bodies.push((Some("text/plain"), b"{\"name\":\"x\"}".to_vec()));
    bodies.push((
        Some("application/x-www-form-urlencoded"),
        b"name=x".to_vec(),
    ));
    bodies.push((None, b"{\"name\":\"x\"}".to_vec()));
    bodies
}

/// Odd values in place of path parameters and odd query strings. (Not `..`: the client
/// resolves it before sending, leaving the API.)
const ODD_SEGMENTS: [&str; 6] = [
    "%FF",
    "%00",
    "a..b",
    "%2F%2F",
    "a%20b",
    "x?page=0&limit=1e400",
];

fn assert_json_error(status: StatusCode, text: &str, what: &str) {
    assert!(status.as_u16() < 500, "{what}: {status} {text}");
    if status.is_client_error() {
        let answer: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{what}: {text}"));
        assert!(answer["code"].is_string(), "{what}: {text}");
        assert!(answer["message"].is_string(), "{what}: {text}");
    }
}

#[tokio::test]
async fn no_request_makes_it_fail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let document = document(&node).await;
    let operations = operations(&document);
    let bodies = hostile_bodies();
    // An API key, not the login token: the sweep reaches POST /logout too.
    let (key, secret) = node.api_key(&token, "sweep").await;
    for (method, path, _) in &operations {
        let url = format!("{}{}", node.base, concrete(path));
        for (content_type, body) in &bodies {
            let mut request = node
                .http
                .request(method.clone(), &url)
                .basic_auth(&key, Some(&secret))
                .body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", *content_type);
            }
            let answer = request.send().await.expect("request");
            let status = answer.status();
            let text = answer.text().await.expect("body");
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            assert_json_error(
                status,
                &text,
                &format!("{method} {path} {content_type:?} {shown}"),
            );
        }
        for odd in ODD_SEGMENTS {
            let weird = path
                .split('/')
                .map(|s| if s.starts_with('{') { odd } else { s })
                .collect::<Vec<_>>()
                .join("/");
            for url in [
                format!("{}{weird}", node.base),
                format!("{}{}?{odd}", node.base, concrete(path)),
                format!(
                    "{}{}?page=1e400&limit=&like_clientid=%FF",
                    node.base,
                    concrete(path)
                ),
            ] {
                let answer = node
                    .http
                    .request(method.clone(), &url)
                    .basic_auth(&key, Some(&secret))
                    .send()
                    .await
                    .expect("request");
                let status = answer.status();
                let text = answer.text().await.expect("body");
                assert_json_error(status, &text, &format!("{method} {url}"));
            }
        }
        let long = format!(
            "{}{}",
            node.base,
            path.replace("{name}", &"n".repeat(10_000))
        );
        let answer = node
            .http
            .request(method.clone(), &long)
            .basic_auth(&key, Some(&secret))
            .send()
            .await
            .expect("request");
        assert!(answer.status().as_u16() < 500, "{method} {path} long");
    }
    // Huge values that parse: accepted or refused, never a failure.
    for body in [
        json!({"url": "http://127.0.0.1:9/", "connect_timeout": "18446744073709551615s",
               "request_timeout": "99999999d", "max_retries": 4_294_967_295_u32}),
        json!({"url": "http://127.0.0.1:9/", "pool_size": u64::MAX, "max_inflight": u64::MAX}),
        json!({"url": "http://127.0.0.1:9/", "retry_backoff": "1000000000000000000000s"}),
    ] {
        let (status, answer) = node
            .call(&token, Method::POST, "/webhooks_probe", Some(body.clone()))
            .await;
        assert!(status.as_u16() < 500, "{body}: {status} {answer}");
    }
    // The node still answers.
    let (status, _) = node.call(&token, Method::GET, "/nodes", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn secrets_never_shown_nor_logged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let receiver = receiver().await;
    let signing = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4OTA=";
    let header = "Bearer webhook-header-secret-42";
    let mut answers = Vec::new();

    let (status, created) = node
        .call(
            &token,
            Method::POST,
            "/webhooks",
            Some(json!({"name": "s", "url": format!("http://{receiver}/"),
                        "signing_secret": signing,
                        "headers": {"Authorization": header, "x-other": "visible"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["headers"]["x-other"], "visible");
    answers.push(created);
    for path in ["/webhooks", "/webhooks/s", "/webhooks/s/metrics"] {
        answers.push(node.call(&token, Method::GET, path, None).await.1);
    }
    answers.push(
        node.call(&token, Method::POST, "/webhooks/s/test", None)
            .await
            .1,
    );
    answers.push(
        node.call(
            &token,
            Method::POST,
            "/webhooks_probe",
            Some(json!({"url": format!("http://{receiver}/"), "signing_secret": "whsec_short"})),
        )
        .await
        .1,
    );
    let (_, key) = node
        .call(&token, Method::POST, "/api_key", Some(json!({"name": "k"})))
        .await;
    let api_secret = key["api_secret"].as_str().expect("secret").to_owned();
    answers.push(node.call(&token, Method::GET, "/api_key", None).await.1);
    answers.push(
        node.send(
            Auth::Basic("k", "wrong-api-secret-77"),
            Method::GET,
            "/stats",
            None,
        )
        .await
        .1,
    );
    answers.push(
        node.send(
            Auth::None,
            Method::POST,
            "/login",
            Some(json!({"username": "admin", "password": "wrong-login-password-55"})),
        )
        .await
        .1,
    );
    answers.push(
        node.call(
            &token,
            Method::POST,
            "/users/admin/change_pwd",
            Some(json!({"old_pwd": "wrong-old-password-66", "new_pwd": "new-password-99"})),
        )
        .await
        .1,
    );
    answers.push(
        node.send(
            Auth::Raw("Bearer raw-token-secret-88"),
            Method::GET,
            "/stats",
            None,
        )
        .await
        .1,
    );

    let secrets = [
        signing,
        "c2VjcmV0LXNpZ25pbmcta2V5",
        "webhook-header-secret-42",
        "whsec_short",
        api_secret.as_str(),
        "wrong-api-secret-77",
        "wrong-login-password-55",
        "wrong-old-password-66",
        "new-password-99",
        "raw-token-secret-88",
        token.as_str(),
    ];
    let text: String = answers.iter().map(Value::to_string).collect();
    let log = log_text();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} in an answer: {text}");
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    for size in [1024 * 1024 + 1, 3 * 1024 * 1024] {
        let answer = node
            .http
            .post(format!("{}/webhooks", node.base))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
            .await
            .expect("request");
        assert_eq!(
            answer.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{size} bytes"
        );
        let body: Value = answer.json().await.expect("json");
        assert_eq!(body["code"], "PAYLOAD_TOO_LARGE", "{body}");
    }
    node.stop().await;
}
