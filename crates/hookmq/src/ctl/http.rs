//! The API client of `hookmq ctl`: one base address, one set of credentials, JSON in and
//! out, and errors turned into one line (`404 NOT_FOUND: webhook x not found`).

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How requests authenticate.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// An API key, sent as HTTP Basic.
    ApiKey { key: String, secret: String },
    /// A dashboard user; logs in for a bearer token.
    User { username: String, password: String },
}

impl Credentials {
    /// Picks the credentials from the options (an API key wins over a user).
    ///
    /// # Errors
    /// Half a pair, or nothing at all.
    pub(crate) fn from_options(
        api_key: Option<String>,
        api_secret: Option<String>,
        username: Option<String>,
        password: Option<String>,
    ) -> anyhow::Result<Self> {
        match (api_key, api_secret, username, password) {
            (Some(key), Some(secret), _, _) => Ok(Self::ApiKey { key, secret }),
            (Some(_), None, _, _) | (None, Some(_), _, _) => {
                bail!(
                    "give both --api-key and --api-secret (or HOOKMQ_API_KEY and HOOKMQ_API_SECRET)"
                )
            }
            (None, None, Some(username), Some(password)) => Ok(Self::User { username, password }),
            (None, None, Some(_), None) => bail!("give --password with --username"),
            _ => bail!(
                "no credentials: give --api-key and --api-secret (or HOOKMQ_API_KEY and \
                 HOOKMQ_API_SECRET), or --username and --password"
            ),
        }
    }
}

/// How a request carries its credentials.
#[derive(Debug)]
enum Authorization {
    Basic { key: String, secret: String },
    Bearer(String),
}

/// A connection to one node's API.
#[derive(Debug)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    /// `http://host:port/api/v5`, no trailing slash.
    base: String,
    authorization: Authorization,
}

/// Percent-encodes one path segment (client ids may hold `/`, `#`, `?`, spaces...).
pub(crate) fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The API base for an address given as `http://host:port` (or with `/api/v5` already).
fn base(address: &str) -> anyhow::Result<String> {
    let address = address.trim().trim_end_matches('/');
    if address.starts_with("https://") {
        bail!("--api {address}: https is not supported by hookmq ctl; use http://");
    }
    if !address.starts_with("http://") {
        bail!("--api {address}: expected http://host:port");
    }
    Ok(if address.ends_with("/api/v5") {
        address.to_owned()
    } else {
        format!("{address}/api/v5")
    })
}

impl ApiClient {
    /// Prepares the client; with a user name, logs in.
    ///
    /// # Errors
    /// A bad address, an unreachable node, or refused credentials.
    pub(crate) async fn connect(address: &str, credentials: Credentials) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        let mut client = Self {
            http,
            base: base(address)?,
            authorization: Authorization::Bearer(String::new()),
        };
        client.authorization = match credentials {
            Credentials::ApiKey { key, secret } => Authorization::Basic { key, secret },
            Credentials::User { username, password } => {
                let answer = client
                    .exchange(
                        Method::POST,
                        "/login",
                        Some(&json!({"username": username, "password": password})),
                        false,
                    )
                    .await?
                    .unwrap_or_default();
                let token = answer["token"]
                    .as_str()
                    .context("the login answer has no token")?;
                Authorization::Bearer(token.to_owned())
            }
        };
        Ok(client)
    }

    /// Sends a request; the answer's JSON, or `None` for an empty answer (204).
    ///
    /// # Errors
    /// The node cannot be reached, or answered an error (as `STATUS CODE: message`).
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Option<Value>> {
        self.exchange(method, path, body, true).await
    }

    /// `GET path`, expecting JSON.
    ///
    /// # Errors
    /// As [`Self::request`], or an empty answer.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.request(Method::GET, path, None)
            .await?
            .with_context(|| format!("GET {path}: empty answer"))
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        authenticated: bool,
    ) -> anyhow::Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if authenticated {
            request = match &self.authorization {
                Authorization::Basic { key, secret } => request.basic_auth(key, Some(secret)),
                Authorization::Bearer(token) => request.bearer_auth(token),
            };
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the API at {}: {}", self.base, root(&e)))?;
        let status = answer.status();
        let text = answer
            .text()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer of {url}: {}", root(&e)))?;
        if !status.is_success() {
            bail!("{}", describe(status, &text));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{url} answered something other than JSON"))
    }
}

/// The innermost cause of an error (reqwest's own message is generic).
fn root(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `404 NOT_FOUND: webhook x not found`, on one line.
fn describe(status: StatusCode, text: &str) -> String {
    let answer: Value = serde_json::from_str(text).unwrap_or_default();
    let code = answer["code"]
        .as_str()
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("ERROR"));
    let message = answer["message"]
        .as_str()
        .map_or_else(|| text.trim().to_owned(), str::to_owned);
    let line = format!("{} {code}: {message}", status.as_u16());
    line.lines().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("a/b c#?"), "a%2Fb%20c%23%3F");
        assert_eq!(segment("sensor-1_x.y~"), "sensor-1_x.y~");
    }

    #[test]
    fn bases_and_errors() {
        assert_eq!(base("http://h:1/").expect("valid"), "http://h:1/api/v5");
        assert_eq!(
            base("http://h:1/api/v5").expect("valid"),
            "http://h:1/api/v5"
        );
        assert!(base("h:1").is_err());
        assert_eq!(
            describe(
                StatusCode::NOT_FOUND,
                r#"{"code":"NOT_FOUND","message":"webhook x not found"}"#
            ),
            "404 NOT_FOUND: webhook x not found"
        );
        assert_eq!(
            describe(StatusCode::BAD_GATEWAY, "upstream\ndown"),
            "502 Bad Gateway: upstream down"
        );
    }
}
