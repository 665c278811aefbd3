//! The OpenAPI document matches the routes: every documented operation exists (answers
//! neither "no such endpoint" nor 405 with credentials), the expected endpoints are all
//! documented, and the hand-written webhook schemas match real answers.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Auth, receiver, start_node};

/// Every endpoint, as `METHOD /path` under `/api/v5`.
const ENDPOINTS: [&str; 59] = [
    "POST /login",
    "POST /logout",
    "POST /users/{username}/change_pwd",
    "GET /api_key",
    "POST /api_key",
    "GET /api_key/{name}",
    "DELETE /api_key/{name}",
    "GET /webhooks",
    "POST /webhooks",
    "GET /webhooks/{name}",
    "PUT /webhooks/{name}",
    "DELETE /webhooks/{name}",
    "PUT /webhooks/{name}/enable/{enable}",
    "GET /webhooks/{name}/metrics",
    "GET /webhooks/{name}/attempts",
    "PUT /webhooks/{name}/metrics/reset",
    "POST /webhooks/{name}/test",
    "GET /webhooks/{name}/dead_letters",
    "DELETE /webhooks/{name}/dead_letters",
    "POST /webhooks/{name}/dead_letters/replay",
    "POST /webhooks_probe",
    "GET /webhook_events",
    "GET /clients",
    "GET /clients/{clientid}",
    "DELETE /clients/{clientid}",
    "GET /subscriptions",
    "GET /stats",
    "GET /metrics",
    "GET /nodes",
    "GET /cluster",
    "GET /prometheus/stats",
    "GET /openapi.json",
    "GET /connectors",
    "POST /connectors",
    "GET /connectors/{id}",
    "PUT /connectors/{id}",
    "DELETE /connectors/{id}",
    "PUT /connectors/{id}/enable/{enable}",
    "GET /actions",
    "POST /actions",
    "GET /actions/{id}",
    "PUT /actions/{id}",
    "DELETE /actions/{id}",
    "PUT /actions/{id}/enable/{enable}",
    "GET /actions/{id}/metrics",
    "PUT /actions/{id}/metrics/reset",
    "GET /rules",
    "POST /rules",
    "GET /rules/{id}",
    "PUT /rules/{id}",
    "DELETE /rules/{id}",
    "GET /alarms",
    "DELETE /alarms",
    "POST /alarms/force_deactivate",
    "POST /connectors_probe",
    "POST /actions_probe",
    "GET /rule_events",
    "GET /rules/{id}/metrics",
    "POST /rule_test",
];

/// The endpoints that take no credentials.
const PUBLIC: [&str; 3] = ["GET /openapi.json", "GET /prometheus/stats", "POST /login"];

/// `(method, path under /api/v5, needs credentials)` of every documented operation.
pub(crate) fn operations(document: &Value) -> Vec<(Method, String, bool)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let path = path.strip_prefix("/api/v5").expect("under /api/v5");
        for (method, operation) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            all.push((method, path.to_owned(), secured));
        }
    }
    all
}

/// A path with every `{param}` replaced by a plausible value.
pub(crate) fn concrete(path: &str) -> String {
    path.replace("{enable}", "true")
        .replace("{username}", "admin")
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "nothing-here"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub(crate) async fn document(node: &crate::Node) -> Value {
    let (status, document) = node
        .send(Auth::None, Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    document
}

fn properties(document: &Value, schema: &str) -> BTreeSet<String> {
    document["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema}"))
        .keys()
        .cloned()
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("object").keys().cloned().collect()
}

#[tokio::test]
async fn the_document_matches_the_routes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let document = document(&node).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");

    let operations = operations(&document);
    let documented: BTreeSet<String> = operations
        .iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    let expected: BTreeSet<String> = ENDPOINTS.iter().map(|e| (*e).to_owned()).collect();
    assert_eq!(documented, expected);
    let public: BTreeSet<String> = operations
        .iter()
        .filter(|(_, _, secured)| !secured)
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert_eq!(public, PUBLIC.iter().map(|e| (*e).to_owned()).collect());
    // Operation ids are unique, and every reference names a schema the document has
    // (what openapi-spec-validator checks in tests/api/run.sh, here without Python).
    let ids: Vec<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("item").values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicate operationIds: {ids:?}");
    assert_eq!(ids.len(), ENDPOINTS.len());
    let text = document.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{name} is referred to but not defined"
        );
    }

    let (key, secret) = node.api_key(&token, "sweep").await;
    for (method, path, _) in &operations {
        let url = concrete(path);
        let (status, answer) = node
            .send(Auth::Basic(&key, &secret), method.clone(), &url, None)
            .await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}");
        let missing_route = status == StatusCode::NOT_FOUND
            && answer["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(hookmq_api::NO_SUCH_ENDPOINT));
        assert!(
            !missing_route,
            "{method} {url} is documented but not routed"
        );
        assert!(status.as_u16() < 500, "{method} {url}: {status}");
    }
    // The check can tell: a route that does not exist, and a method that is not allowed.
    let (status, answer) = node.call(&token, Method::GET, "/teleport", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(hookmq_api::NO_SUCH_ENDPOINT))
    );
    let (status, answer) = node.call(&token, Method::PATCH, "/webhooks", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer["code"], "METHOD_NOT_ALLOWED");

    // The webhook schemas (written by hand: the engine's types know nothing of OpenAPI)
    // have exactly the fields of real answers.
    let receiver = receiver().await;
    let url = format!("http://{receiver}/");
    let (status, webhook) = node
        .call(
            &token,
            Method::POST,
            "/webhooks",
            Some(json!({"name": "w", "url": url, "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "body": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut spec_fields = keys(&webhook);
    assert!(spec_fields.remove("metrics"));
    assert!(spec_fields.remove("status"));
    assert!(spec_fields.remove("receivers"));
    assert_eq!(spec_fields, properties(&document, "WebhookSpecDoc"));
    assert_eq!(keys(&webhook["status"]), properties(&document, "HealthDoc"));
    assert_eq!(
        keys(&webhook["receivers"][0]),
        properties(&document, "ReceiverDoc")
    );
    assert_eq!(
        keys(&webhook["metrics"]),
        properties(&document, "MetricsDoc")
    );
    assert_eq!(
        keys(&webhook["metrics"]["latency"]),
        properties(&document, "LatencyDoc")
    );
    assert_eq!(keys(&webhook["tls"]), properties(&document, "TlsDoc"));
    let (_, probe) = node
        .call(&token, Method::POST, "/webhooks/w/test", None)
        .await;
    assert_eq!(keys(&probe), properties(&document, "ProbeResultDoc"));
}
