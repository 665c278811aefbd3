//! Login and the change-password flow.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Auth, start_node};

#[tokio::test]
async fn login_answers_and_bad_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let first = node.login_as("admin", "public").await;
    assert_eq!(first["username"], "admin");
    assert_eq!(
        first["must_change_password"], true,
        "the default password is in use"
    );
    assert_eq!(first["token"].as_str().map(str::len), Some(64));

    for (body, status, field) in [
        (
            json!({"username": "admin", "password": "wrong"}),
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            json!({"username": "nobody", "password": "public"}),
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            json!({"username": "admin", "password": "public", "otp": 1}),
            StatusCode::BAD_REQUEST,
            Some("otp"),
        ),
        (
            json!({"username": "admin"}),
            StatusCode::BAD_REQUEST,
            Some("password"),
        ),
        (
            json!({"username": 7, "password": "public"}),
            StatusCode::BAD_REQUEST,
            Some("username"),
        ),
    ] {
        let (got, answer) = node
            .send(Auth::None, Method::POST, "/login", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["field"].as_str(), field, "{body}: {answer}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(answer["code"], "BAD_USERNAME_OR_PWD");
        }
    }
    // A password of the wrong type is refused without being repeated.
    let (status, answer) = node
        .send(
            Auth::None,
            Method::POST,
            "/login",
            Some(json!({"username": "admin", "password": 987_654_321})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "password");
    assert!(!answer.to_string().contains("987654321"), "{answer}");
}

async fn change(
    node: &crate::Node,
    auth: Auth<'_>,
    user: &str,
    body: Value,
) -> (StatusCode, Value) {
    node.send(
        auth,
        Method::POST,
        &format!("/users/{user}/change_pwd"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn change_password_flow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let other_session = node.login().await;
    let good = json!({"old_pwd": "public", "new_pwd": "s3cure-enough"});

    let (status, _) = change(&node, Auth::None, "admin", good.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = change(&node, Auth::Bearer("nope"), "admin", good.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer) = change(&node, Auth::Bearer(&token), "ghost", good.clone()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
    );

    for (body, field) in [
        (
            json!({"old_pwd": "wrong", "new_pwd": "s3cure-enough"}),
            "old_pwd",
        ),
        (json!({"old_pwd": "public", "new_pwd": "short"}), "new_pwd"),
        (json!({"old_pwd": "public", "new_pwd": "public"}), "new_pwd"),
        (
            json!({"old_pwd": "public", "new_pwd": "x".repeat(300)}),
            "new_pwd",
        ),
        (json!({"old_pwd": "public"}), "new_pwd"),
        (
            json!({"old_pwd": "public", "new_pwd": "s3cure-enough", "x": 1}),
            "x",
        ),
        (
            json!({"old_pwd": 12_345_678, "new_pwd": "s3cure-enough"}),
            "old_pwd",
        ),
    ] {
        let (status, answer) = change(&node, Auth::Bearer(&token), "admin", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        let text = answer.to_string();
        assert!(
            !text.contains("s3cure-enough") && !text.contains("12345678"),
            "{text}"
        );
    }

    let (status, _) = change(&node, Auth::Bearer(&token), "admin", good).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The caller's token still works, the user's other sessions ended.
    let (status, _) = node
        .send(Auth::Bearer(&token), Method::GET, "/nodes", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = node
        .send(Auth::Bearer(&other_session), Method::GET, "/nodes", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The old password is refused, the new one accepted and no longer "default".
    let (status, _) = node
        .send(
            Auth::None,
            Method::POST,
            "/login",
            Some(json!({"username": "admin", "password": "public"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let answer = node.login_as("admin", "s3cure-enough").await;
    assert_eq!(answer["must_change_password"], false);

    // Logging out ends that token only.
    let other = node.login_as("admin", "s3cure-enough").await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (status, _) = node
        .send(
            Auth::Bearer(&token),
            Method::POST,
            "/logout",
            Some(json!({"username": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = node
        .send(Auth::Bearer(&token), Method::GET, "/nodes", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = node
        .send(Auth::Bearer(&other), Method::GET, "/nodes", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The change is stored: it survives a restart.
    node.stop().await;
    let node = start_node(dir.path()).await;
    let answer = node.login_as("admin", "s3cure-enough").await;
    assert_eq!(answer["must_change_password"], false);
}
