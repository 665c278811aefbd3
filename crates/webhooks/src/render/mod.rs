//! Rendering: an event becomes an HTTP request (method, URL, headers, body).

pub mod emqx;
pub mod template;

use bytes::Bytes;
use hookmq_broker::hooks::Event;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde_json::{Map, Value};

pub use emqx::{EmqxBody, RenderContext};
use template::{Escape, Template};

use crate::spec::{BatchFormat, Method, PayloadEncoding, SpecError, WebhookSpec};

/// A URL whose path and query may hold placeholders (never its scheme, host or port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    /// `scheme://authority`, fixed.
    base: String,
    /// Whether the scheme is `https`.
    pub(crate) https: bool,
    path: Template,
}

impl UrlTemplate {
    /// Whether the URL holds no placeholders.
    #[must_use]
    pub fn is_static(&self) -> bool {
        self.path.is_static()
    }

    /// Parses and checks a webhook URL.
    ///
    /// # Errors
    /// [`SpecError`] on field `url`.
    pub fn parse(url: &str) -> Result<Self, SpecError> {
        Self::parse_field(url, "url")
    }

    /// Parses and checks a webhook URL given in `field` (`url`, `urls[0]`, ...).
    ///
    /// # Errors
    /// [`SpecError`] on `field`.
    pub fn parse_field(url: &str, field: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::new(field, reason);
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (true, &url[8..])
        } else if lower.starts_with("http://") {
            (false, &url[7..])
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains("${") {
            return Err(bad(
                "placeholders are allowed in the path and query, not in the host or port",
            ));
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host, without user:password@"));
        }
        authority
            .parse::<http::uri::Authority>()
            .map_err(|e| bad(&format!("invalid host or port: {e}")))?;
        if path.contains('#') {
            return Err(bad("a #fragment is never sent: remove it"));
        }
        let path = if path.is_empty() { "/" } else { path };
        let path = Template::parse(path, false, Escape::Url).map_err(|e| bad(&e.to_string()))?;
        let scheme = if https { "https" } else { "http" };
        let url = Self {
            base: format!("{scheme}://{authority}"),
            https,
            path,
        };
        // A static URL must already be a valid URI.
        if url.path.is_static() {
            url.render(&Map::new()).map_err(|e| bad(&e.to_string()))?;
        }
        Ok(url)
    }

    /// The host (an IPv6 literal in brackets) and port every request goes to.
    #[must_use]
    pub fn host_port(&self) -> Option<(String, u16)> {
        let uri = self.base.parse::<Uri>().ok()?;
        let port = uri.port_u16().unwrap_or(if self.https { 443 } else { 80 });
        Some((uri.host()?.to_owned(), port))
    }

    /// The URI for one event.
    ///
    /// # Errors
    /// [`RenderError::Url`] if the rendered text is not a URI.
    pub fn render(&self, context: &Map<String, Value>) -> Result<Uri, RenderError> {
        let text = format!("{}{}", self.base, self.path.render(context));
        text.parse::<Uri>()
            .map_err(|e| RenderError::Url(e.to_string()))
    }
}

/// Why an event could not become a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The rendered URL is not valid.
    #[error("rendered URL is invalid: {0}")]
    Url(String),
    /// The body could not be serialized.
    #[error("body could not be serialized: {0}")]
    Body(String),
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct RenderedRequest {
    /// Method.
    pub method: http::Method,
    /// URL.
    pub uri: Uri,
    /// Headers (signing headers are added at send time).
    pub headers: HeaderMap,
    /// Body (empty for GET and DELETE).
    pub body: Bytes,
}

#[derive(Debug)]
enum Headers {
    /// No placeholders: built once.
    Static(HeaderMap),
    Templated(Vec<(HeaderName, Template)>),
}

/// A webhook's compiled templates.
#[derive(Debug)]
pub struct Renderer {
    method: Method,
    /// One per receiver: `url`, then `urls`.
    urls: Vec<UrlTemplate>,
    headers: Headers,
    body: Option<Template>,
    node: String,
    name: String,
    payload_encoding: PayloadEncoding,
}

impl Renderer {
    /// Compiles a webhook's URL, headers and body.
    ///
    /// # Errors
    /// [`SpecError`] naming the field whose template does not parse.
    pub fn new(spec: &WebhookSpec, node: &str) -> Result<Self, SpecError> {
        let urls = spec.receiver_templates()?;
        let mut templated = Vec::new();
        for (name, value) in &spec.headers {
            let field = format!("headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SpecError::new(&field, "not a valid header name"))?;
            let template = Template::parse(value, false, Escape::Raw)
                .map_err(|e| SpecError::new(&field, e.to_string()))?;
            templated.push((header, template));
        }
        let headers = if templated.iter().all(|(_, t)| t.is_static()) {
            let mut map = HeaderMap::new();
            for (name, template) in templated {
                let value = HeaderValue::from_str(&template.render(&Map::new())).map_err(|_| {
                    SpecError::new(format!("headers.{name}"), "not a valid header value")
                })?;
                map.append(name, value);
            }
            Headers::Static(map)
        } else {
            Headers::Templated(templated)
        };
        let body = match &spec.body {
            Some(text) => Some(
                Template::parse(text, true, Escape::Raw)
                    .map_err(|e| SpecError::new("body", e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            method: spec.method,
            urls,
            headers,
            body,
            node: node.to_owned(),
            name: spec.name.clone(),
            payload_encoding: spec.payload_encoding,
        })
    }

    fn context(&self) -> RenderContext<'_> {
        RenderContext {
            node: &self.node,
            rule_id: &self.name,
            payload_encoding: self.payload_encoding,
        }
    }

    /// The event's JSON object, as the default body and template context.
    #[must_use]
    pub fn object(&self, event: &Event) -> Map<String, Value> {
        emqx::event_object(event, self.context())
    }

    /// How many receivers there are (`url` and `urls`).
    #[must_use]
    pub fn receivers(&self) -> usize {
        self.urls.len()
    }

    /// The URL of `receiver` (an index below [`Self::receivers`]; the first one past it).
    fn url(&self, receiver: usize) -> &UrlTemplate {
        self.urls.get(receiver).unwrap_or(&self.urls[0])
    }

    /// The scheme and authority of `receiver`'s URL, where its connections go.
    ///
    /// # Errors
    /// [`RenderError`] if they do not form a URI (the spec's validation prevents it).
    pub fn origin(&self, receiver: usize) -> Result<Uri, RenderError> {
        self.url(receiver)
            .base
            .parse::<Uri>()
            .map_err(|e| RenderError::Url(e.to_string()))
    }

    /// Whether requests to `receiver` go to an `https` URL.
    #[must_use]
    pub fn https(&self, receiver: usize) -> bool {
        self.url(receiver).https
    }

    /// Renders one event for `receiver`.
    ///
    /// # Errors
    /// [`RenderError`] when a templated URL does not form a valid URI.
    pub fn render(&self, event: &Event, receiver: usize) -> Result<RenderedRequest, RenderError> {
        let url = self.url(receiver);
        // Nothing templated: serialize the body straight from the event. Otherwise build the
        // event's JSON object once for the lookups.
        if let Headers::Static(headers) = &self.headers
            && self.body.is_none()
            && url.path.is_static()
        {
            let body = if self.method.has_body() {
                let body = EmqxBody {
                    event,
                    context: self.context(),
                };
                Bytes::from(
                    serde_json::to_vec(&body).map_err(|e| RenderError::Body(e.to_string()))?,
                )
            } else {
                Bytes::new()
            };
            return Ok(RenderedRequest {
                method: self.method.as_http(),
                uri: url.render(&Map::new())?,
                headers: headers.clone(),
                body,
            });
        }
        let object = self.object(event);
        let uri = url.render(&object)?;
        let headers = match &self.headers {
            Headers::Static(map) => map.clone(),
            Headers::Templated(templates) => {
                let mut map = HeaderMap::with_capacity(templates.len());
                for (name, template) in templates {
                    // A value that renders to CR/LF/NUL is left out (EMQX does the same).
                    match HeaderValue::from_str(&template.render(&object)) {
                        Ok(value) => {
                            map.append(name.clone(), value);
                        }
                        Err(_) => {
                            tracing::debug!(webhook = %self.name, header = %name, "header left out: invalid value")
                        }
                    }
                }
                map
            }
        };
        let body = if !self.method.has_body() {
            Bytes::new()
        } else if let Some(template) = &self.body {
            Bytes::from(template.render(&object))
        } else {
            Bytes::from(Value::Object(object).to_string())
        };
        Ok(RenderedRequest {
            method: self.method.as_http(),
            uri,
            headers,
            body,
        })
    }
}

impl Renderer {
    /// Appends the body `event` alone would have to `out` (a batch joins them).
    ///
    /// # Errors
    /// [`RenderError::Body`] if the event does not serialize (`out` is then as it was).
    pub fn append_body(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), RenderError> {
        match &self.body {
            Some(template) => {
                out.extend_from_slice(template.render(&self.object(event)).as_bytes());
                Ok(())
            }
            None => {
                let before = out.len();
                let body = EmqxBody {
                    event,
                    context: self.context(),
                };
                serde_json::to_writer(&mut *out, &body).map_err(|e| {
                    out.truncate(before);
                    RenderError::Body(e.to_string())
                })
            }
        }
    }

    /// The request to `receiver` carrying a batch's `body` (the events' bodies joined as the
    /// batch's format says). A batched webhook's URLs and headers hold no placeholders (its
    /// spec's validation sees to it): they are the same for every event.
    ///
    /// # Errors
    /// [`RenderError::Url`] if the URL does not form a URI.
    pub fn batch(
        &self,
        body: Vec<u8>,
        format: BatchFormat,
        receiver: usize,
    ) -> Result<RenderedRequest, RenderError> {
        let mut headers = match &self.headers {
            Headers::Static(map) => map.clone(),
            Headers::Templated(_) => HeaderMap::new(),
        };
        // NDJSON is not one JSON document: the default content type says so.
        if format == BatchFormat::Ndjson
            && headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|value| value == "application/json")
        {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
        }
        Ok(RenderedRequest {
            method: self.method.as_http(),
            uri: self.url(receiver).render(&Map::new())?,
            headers,
            body: Bytes::from(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = UrlTemplate::parse("http://localhost:5000").expect("plain");
        assert_eq!(
            ok.render(&Map::new()).expect("uri").to_string(),
            "http://localhost:5000/"
        );
        let templated =
            UrlTemplate::parse("https://h.example/in/${clientid}?t=${topic}").expect("templated");
        assert!(templated.https);
        let mut context = Map::new();
        context.insert("clientid".into(), "a b".into());
        context.insert("topic".into(), "t/1".into());
        assert_eq!(
            templated.render(&context).expect("uri").to_string(),
            "https://h.example/in/a%20b?t=t%2F1"
        );
        for bad in [
            "localhost",
            "http://",
            "http://u:p@h/",
            "http://h/#frag",
            "http://${x}/",
        ] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
