//! `${field}` templates for URLs, headers and bodies.
//!
//! A placeholder names a path into the event's JSON: `${clientid}`, `${pub_props.User-Property.k}`,
//! `${payload.temp}` (a field of a JSON payload) or `${.}` (the whole event). A missing value
//! renders as `undefined`, as in EMQX. Unlike EMQX (issue #3786), a placeholder inside a JSON
//! string literal of the template is JSON-escaped, so `"${payload}"` stays valid JSON whatever
//! the payload holds; outside string literals the value is inserted as is (strings raw,
//! numbers as digits, objects as JSON), so `{"data": ${payload}}` embeds a JSON payload.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// How a placeholder's text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// As is.
    Raw,
    /// Inside a JSON string literal: JSON string escapes.
    JsonString,
    /// In a URL path or query: percent-encoded.
    Url,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder { path: Vec<String>, escape: Escape },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// A placeholder that does not close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unclosed placeholder at byte {0}")]
pub struct TemplateError(pub usize);

impl Template {
    /// Parses `text`; `json` tracks JSON string literals to escape placeholders inside them;
    /// `escape` applies to every placeholder otherwise.
    pub(crate) fn parse(text: &str, json: bool, escape: Escape) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        let mut in_string = false;
        while let Some(start) = rest.find("${") {
            let literal = &rest[..start];
            if json {
                in_string = track_strings(literal, in_string);
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(literal.to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or(TemplateError(offset + start))?;
            let name = after[..end].trim();
            let path = if name == "." || name.is_empty() {
                Vec::new()
            } else {
                name.split('.').map(str::to_owned).collect()
            };
            let escape = if json && in_string {
                Escape::JsonString
            } else {
                escape
            };
            segments.push(Segment::Placeholder { path, escape });
            let consumed = start + 2 + end + 1;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(Self { segments })
    }

    /// Whether it has any placeholder.
    #[must_use]
    pub fn is_static(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Renders against an event's JSON object.
    #[must_use]
    pub fn render(&self, context: &Map<String, Value>) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Placeholder { path, escape } => {
                    let text = lookup(context, path);
                    match escape {
                        Escape::Raw => out.push_str(&text),
                        Escape::JsonString => push_json_escaped(&mut out, &text),
                        Escape::Url => push_percent_encoded(&mut out, &text),
                    }
                }
            }
        }
        out
    }
}

/// Follows the string-literal state of JSON text across `literal`.
fn track_strings(literal: &str, mut in_string: bool) -> bool {
    let mut escaped = false;
    for c in literal.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        }
    }
    in_string
}

/// The text of the value at `path`; `payload` is looked into as JSON when needed.
fn lookup<'a>(context: &'a Map<String, Value>, path: &[String]) -> Cow<'a, str> {
    let Some((first, rest)) = path.split_first() else {
        return Cow::Owned(Value::Object(context.clone()).to_string());
    };
    let Some(mut value) = context.get(first) else {
        return Cow::Borrowed("undefined");
    };
    let parsed;
    let mut rest = rest;
    if !rest.is_empty()
        && let Value::String(text) = value
    {
        // A JSON document inside a string field (the payload, typically).
        match serde_json::from_str::<Value>(text) {
            Ok(inner) => {
                parsed = inner;
                value = &parsed;
            }
            Err(_) => return Cow::Borrowed("undefined"),
        }
    }
    while let Some((key, more)) = rest.split_first() {
        match value
            .get(key.as_str())
            .or_else(|| key.parse::<usize>().ok().and_then(|i| value.get(i)))
        {
            Some(next) => value = next,
            None => return Cow::Borrowed("undefined"),
        }
        rest = more;
    }
    Cow::Owned(value_text(value))
}

/// EMQX's text for a value: strings raw, null as `undefined`, the rest as JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".to_owned(),
        other => other.to_string(),
    }
}

fn push_json_escaped(out: &mut String, text: &str) {
    let quoted = Value::String(text.to_owned()).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

fn push_percent_encoded(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn context() -> Map<String, Value> {
        match json!({
            "clientid": "c\"1",
            "qos": 1,
            "payload": "{\"temp\": 21.5, \"tags\": [\"a\"], \"msg\": \"say \\\"hi\\\"\"}",
            "pub_props": {"User-Property": {"k": "v"}},
            "username": "undefined",
        }) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn render(text: &str, json: bool, escape: Escape) -> String {
        Template::parse(text, json, escape)
            .expect("parses")
            .render(&context())
    }

    #[test]
    fn json_strings_are_escaped_and_raw_values_embedded() {
        let body = render(
            r#"{"id":"${clientid}","t":${payload.temp},"raw":${payload},"q":${qos}}"#,
            true,
            Escape::Raw,
        );
        let parsed: Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(parsed["id"], "c\"1");
        assert_eq!(parsed["t"], 21.5);
        assert_eq!(parsed["raw"]["tags"][0], "a");
        assert_eq!(parsed["q"], 1);
        let quoted = render(r#"{"p":"${payload}"}"#, true, Escape::Raw);
        let parsed: Value = serde_json::from_str(&quoted).expect("issue #3786 does not happen");
        assert_eq!(parsed["p"].as_str().map(|s| s.contains("say")), Some(true));
    }

    #[test]
    fn paths_missing_values_and_whole_object() {
        assert_eq!(
            render("${pub_props.User-Property.k}", false, Escape::Raw),
            "v"
        );
        assert_eq!(render("${payload.tags.0}", false, Escape::Raw), "a");
        assert_eq!(
            render("${nothing}/${payload.nothing}", false, Escape::Raw),
            "undefined/undefined"
        );
        let whole: Value = serde_json::from_str(&render("${.}", false, Escape::Raw)).expect("json");
        assert_eq!(whole["qos"], 1);
        assert_eq!(
            render("/d/${clientid}?q=${payload.msg}", false, Escape::Url),
            "/d/c%221?q=say%20%22hi%22"
        );
    }

    #[test]
    fn unclosed_placeholder_is_an_error() {
        assert_eq!(
            Template::parse("a${b", false, Escape::Raw),
            Err(TemplateError(1))
        );
        assert!(
            Template::parse("plain", false, Escape::Raw)
                .expect("ok")
                .is_static()
        );
    }
}
