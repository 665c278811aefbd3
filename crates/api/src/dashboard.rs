//! The dashboard: a single-page application of plain HTML, ES modules and CSS under
//! `crates/api/assets/`, embedded in the binary with `include_bytes!` (no build step, no CDN).
//!
//! - `/` and every other path outside `/api/` and `/assets/` answer `index.html`, so the
//!   page's own routes (`/webhooks`, `/webhooks/detail/my_webhook`, ...) survive a reload.
//! - `/assets/<path>` answers the file with its content type, an `ETag` and
//!   `Cache-Control: no-cache` (the browser revalidates and gets a 304 while the binary is the
//!   same); an unknown asset is a 404.
//! - An unknown `/api/...` path is a JSON 404, never the page.
//!
//! Every file under `assets/` must be listed in [`ASSETS`]; a test checks it.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::LazyLock,
};

use axum::{
    Router,
    extract::{OriginalUri, Path},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::error::ApiError;

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)) as &[u8])),*]
    };
}

/// The embedded files, by path under `assets/`.
static ASSETS: &[(&str, &[u8])] = assets![
    "index.html",
    "favicon.svg",
    "css/app.css",
    "js/api.js",
    "js/app.js",
    "js/chart.js",
    "js/dom.js",
    "js/dialogs.js",
    "js/events.js",
    "js/format.js",
    "js/poll.js",
    "js/pages/alarms.js",
    "js/pages/clients.js",
    "js/pages/dead_letters.js",
    "js/pages/login.js",
    "js/pages/nodes.js",
    "js/pages/overview.js",
    "js/pages/subscriptions.js",
    "js/pages/webhook_detail.js",
    "js/pages/webhook_form.js",
    "js/pages/webhooks.js",
];

/// What the page may load: only its own files and its own API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// An embedded file with its headers' values.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

static INDEXED: LazyLock<Vec<(&'static str, Asset)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|&(path, bytes)| {
            let mut hasher = DefaultHasher::new();
            bytes.hash(&mut hasher);
            let etag = HeaderValue::try_from(format!("\"{:016x}\"", hasher.finish()))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
            let asset = Asset {
                bytes,
                content_type: content_type(path),
                etag,
            };
            (path, asset)
        })
        .collect()
});

fn find(path: &str) -> Option<&'static Asset> {
    INDEXED
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, asset)| asset)
}

/// The content type for a file name.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The dashboard's routes; merged beside `/api/v5` in [`crate::router`].
pub(crate) fn router() -> Router<crate::state::AppState> {
    routes()
}

/// The routes for any state (they need none).
fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/favicon.ico", get(favicon))
        .route("/assets/{*path}", get(asset))
        .fallback(fallback)
}

/// Answers `asset` (304 when the browser has this version already).
fn serve(
    asset: &'static Asset,
    request: &HeaderMap,
    extra: &[(&'static str, &'static str)],
) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| has_tag(tags, &asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, asset.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    for &(name, value) in extra {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Whether an `If-None-Match` list (`"a", W/"b"` or `*`) names `etag`.
fn has_tag(list: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    list.to_str().is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    })
}

fn page(request: &HeaderMap) -> Response {
    match find("index.html") {
        Some(asset) => serve(
            asset,
            request,
            &[
                ("content-security-policy", CONTENT_SECURITY_POLICY),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "no-referrer"),
            ],
        ),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn index(headers: HeaderMap) -> Response {
    page(&headers)
}

async fn favicon(headers: HeaderMap) -> Response {
    match find("favicon.svg") {
        Some(asset) => serve(asset, &headers, &[]),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find(&path) {
        Some(asset) => serve(asset, &headers, &[]),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no dashboard asset {path}\n"),
        )
            .into_response(),
    }
}

/// Unknown paths: a JSON 404 under `/api`, the page for other GETs (the page routes them).
async fn fallback(method: Method, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::not_found(format_args!("API route {method} {path}")).into_response();
    }
    if method == Method::GET || method == Method::HEAD {
        return page(&headers);
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("nothing at {method} {path}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, path::Path as FsPath};

    use axum::routing::post;
    use reqwest::StatusCode;

    use super::*;

    fn files_under(root: &FsPath, dir: &FsPath, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("assets folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                files_under(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).expect("under root");
                out.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_asset_file_is_embedded() {
        let root = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = BTreeSet::new();
        files_under(&root, &root, &mut on_disk);
        let embedded: BTreeSet<String> = ASSETS.iter().map(|(p, _)| (*p).to_owned()).collect();
        assert_eq!(on_disk, embedded, "list every file of assets/ in ASSETS");
    }

    #[test]
    fn if_none_match_lists() {
        let etag = HeaderValue::from_static("\"abc\"");
        for (list, fresh) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
        ] {
            assert_eq!(
                has_tag(&HeaderValue::from_static(list), &etag),
                fresh,
                "{list}"
            );
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("css/app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    /// The same composition as [`crate::router`]: an API nested at `/api/v5`, the dashboard
    /// merged beside it.
    async fn serve_like_the_binary() -> String {
        let api: Router = Router::new().route("/login", post(|| async { "token" }));
        let app: Router = Router::new().nest("/api/v5", api).merge(routes());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn page_assets_fallbacks_and_the_api_untouched() {
        let base = serve_like_the_binary().await;
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("{base}{path}")).send();

        let root = get("/").await.expect("/");
        assert_eq!(root.status(), StatusCode::OK);
        assert_eq!(header(&root, "content-type"), "text/html; charset=utf-8");
        assert!(header(&root, "content-security-policy").contains("default-src 'self'"));
        assert_eq!(header(&root, "cache-control"), "no-cache");
        let html = root.text().await.expect("body");
        assert!(html.contains("/assets/js/app.js"));

        for route in ["/webhooks", "/webhooks/detail/my_webhook", "/clients/a.b"] {
            let response = get(route).await.expect("page route");
            assert_eq!(response.status(), StatusCode::OK, "{route}");
            assert_eq!(response.text().await.expect("body"), html, "{route}");
        }

        let script = get("/assets/js/app.js").await.expect("script");
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(
            header(&script, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header(&script, "x-content-type-options"), "nosniff");
        let etag = header(&script, "etag").to_owned();
        assert!(etag.starts_with('"'), "{etag}");
        let again = client
            .get(format!("{base}/assets/js/app.js"))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("revalidation");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let css = get("/assets/css/app.css").await.expect("css");
        assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");

        let missing = get("/assets/js/nope.js").await.expect("missing asset");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        let api = client
            .post(format!("{base}/api/v5/login"))
            .send()
            .await
            .expect("api");
        assert_eq!(api.text().await.expect("body"), "token");
        let unknown = get("/api/v5/nope").await.expect("unknown api");
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&unknown, "content-type"), "application/json");
        let body: serde_json::Value = unknown.json().await.expect("json");
        assert_eq!(body["code"], "NOT_FOUND");

        let posted = client
            .post(format!("{base}/somewhere"))
            .send()
            .await
            .expect("post");
        assert_eq!(posted.status(), StatusCode::NOT_FOUND);
    }
}
