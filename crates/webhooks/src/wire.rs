//! HTTP/1.1 on the wire for pipelined `http` lanes: a rendered request becomes bytes, and
//! bytes become answers, one complete response at a time.
//!
//! Why not hyper here: hyper's HTTP/1.1 client sends one request per connection at a time
//! (no pipelining), and EMQX's webhooks pipeline (`enable_pipelining`, 100 by default). The
//! request side is ours because we only ever send what we render; the response side uses
//! `httparse` (hyper's own parser) for the status line, headers and chunk sizes. https lanes
//! keep hyper (TLS, HTTP/2).

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::{
    client::{Answer, RESPONSE_KEPT},
    render::RenderedRequest,
};

/// Response headers parsed at most.
const MAX_HEADERS: usize = 64;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Body bytes read at most; a longer body ends the connection after its answer.
const MAX_BODY: usize = 64 * 1024;

/// Why the bytes from the receiver are not HTTP/1.1 we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The head is malformed.
    #[error("invalid HTTP response: {0}")]
    Parse(String),
    /// The head is longer than 16 KiB.
    #[error("HTTP response head too long")]
    HeadTooLong,
}

/// Appends `request` (with `extra` headers) to `out` as an HTTP/1.1 request in origin form
/// with a `Host` header and a `content-length` (ours: a caller's own framing headers are left
/// out, so they cannot desynchronize the connection).
pub fn encode(request: &RenderedRequest, extra: &HeaderMap, out: &mut BytesMut) {
    let target = request
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let target = if target.is_empty() { "/" } else { target };
    out.reserve(128 + target.len() + request.body.len());
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !request.headers.contains_key(header::HOST)
        && let Some(authority) = request.uri.authority()
    {
        put_header(out, header::HOST.as_str(), authority.as_str().as_bytes());
    }
    for (name, value) in request.headers.iter().chain(extra.iter()) {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        put_header(out, name.as_str(), value.as_bytes());
    }
    let has_body = !request.body.is_empty()
        || matches!(request.method, http::Method::POST | http::Method::PUT);
    if has_body {
        let mut length = itoa::Buffer::new();
        put_header(
            out,
            header::CONTENT_LENGTH.as_str(),
            length.format(request.body.len()).as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&request.body);
}

fn put_header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A complete answer taken off the connection.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The answer.
    pub answer: Answer,
    /// Whether the connection can carry more requests after this answer.
    pub reusable: bool,
}

/// How the body of the response being read ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// No length: the body runs to the end of the connection.
    UntilClose,
}

/// Takes one complete answer off the front of `buffer`, if all of it is there. `eof`: the
/// receiver closed the connection, so a body without a length ends here.
///
/// # Errors
/// [`WireError`] on bytes that are not an HTTP/1.1 response.
pub fn take_answer(buffer: &mut BytesMut, eof: bool) -> Result<Option<Parsed>, WireError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(buffer) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD => {
                return Err(WireError::HeadTooLong);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(WireError::Parse(error.to_string())),
        };
        let code = response.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError::Parse(format!("status {code}")))?;
        if status.is_informational() {
            // 1xx: an interim answer; the real one follows.
            buffer.advance(head_len);
            continue;
        }
        let http10 = response.version == Some(0);
        let mut framing = Framing::UntilClose;
        let mut keep_alive = !http10;
        // Headers are only kept for answers that are not 2xx (Retry-After matters there).
        let mut kept = HeaderMap::new();
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| WireError::Parse("invalid content-length".into()))?;
                if framing != Framing::Chunked {
                    framing = Framing::Length(length);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let chunked = std::str::from_utf8(h.value).is_ok_and(|v| {
                    v.rsplit(',')
                        .next()
                        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                });
                framing = if chunked {
                    Framing::Chunked
                } else {
                    Framing::UntilClose
                };
            } else if h.name.eq_ignore_ascii_case("connection") {
                let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                if value.split(',').any(|t| t.trim() == "close") {
                    keep_alive = false;
                } else if value.split(',').any(|t| t.trim() == "keep-alive") {
                    keep_alive = true;
                }
            }
            if !status.is_success()
                && let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(h.name.as_bytes()),
                    HeaderValue::from_bytes(h.value),
                )
            {
                kept.append(name, value);
            }
        }
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            framing = Framing::Length(0);
        }
        let body = &buffer[head_len..];
        let (body_start, consumed, reusable) = match framing {
            Framing::Length(length) if length > MAX_BODY => {
                // Too long to read: the answer counts, the connection does not go on.
                let start = Bytes::copy_from_slice(&body[..body.len().min(RESPONSE_KEPT)]);
                (start, buffer.len(), false)
            }
            Framing::Length(length) => {
                if body.len() < length {
                    return Ok(None);
                }
                let start = Bytes::copy_from_slice(&body[..length.min(RESPONSE_KEPT)]);
                (start, head_len + length, keep_alive)
            }
            Framing::Chunked => match dechunk(body)? {
                None if body.len() > MAX_BODY => {
                    let start = Bytes::copy_from_slice(&body[..body.len().min(RESPONSE_KEPT)]);
                    (start, buffer.len(), false)
                }
                None => return Ok(None),
                Some((start, used)) => (start, head_len + used, keep_alive),
            },
            Framing::UntilClose => {
                if !eof && body.len() <= MAX_BODY {
                    return Ok(None);
                }
                let start = Bytes::copy_from_slice(&body[..body.len().min(RESPONSE_KEPT)]);
                (start, buffer.len(), false)
            }
        };
        buffer.advance(consumed);
        return Ok(Some(Parsed {
            answer: Answer {
                status,
                headers: kept,
                body_start,
            },
            reusable,
        }));
    }
}

/// A whole chunked body at the front of `body`: its first bytes (up to [`RESPONSE_KEPT`])
/// and how many bytes it took, trailers included; `None` if it is not all there yet.
fn dechunk(body: &[u8]) -> Result<Option<(Bytes, usize)>, WireError> {
    let mut at = 0;
    let mut kept = BytesMut::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&body[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(WireError::Parse("invalid chunk size".into())),
        };
        at += size_len;
        let Ok(size) = usize::try_from(size) else {
            return Err(WireError::Parse("chunk too large".into()));
        };
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let rest = &body[at..];
                let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some((kept.freeze(), at)));
                }
            }
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        let room = RESPONSE_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&body[at..at + size.min(room)]);
        if &body[at + size..at + size + 2] != b"\r\n" {
            return Err(WireError::Parse("chunk not followed by CRLF".into()));
        }
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: http::Method, uri: &str, body: &str) -> RenderedRequest {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        RenderedRequest {
            method,
            uri: uri.parse().expect("uri"),
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn requests_go_out_in_origin_form_with_host_and_our_length() {
        let mut out = BytesMut::new();
        let mut extra = HeaderMap::new();
        extra.insert("webhook-id", HeaderValue::from_static("evt_1"));
        encode(
            &request(http::Method::POST, "http://h:8/a/b?x=1", "{}"),
            &extra,
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"POST /a/b?x=1 HTTP/1.1\r\nhost: h:8\r\ncontent-type: application/json\r\n\
              webhook-id: evt_1\r\ncontent-length: 2\r\n\r\n{}"
        );
        out.clear();
        encode(
            &request(http::Method::GET, "http://h", ""),
            &HeaderMap::new(),
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"GET / HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\n\r\n"
        );
    }

    fn take(bytes: &str, eof: bool) -> (Result<Option<Parsed>, WireError>, usize) {
        let mut buffer = BytesMut::from(bytes);
        let result = take_answer(&mut buffer, eof);
        (result, buffer.len())
    }

    #[test]
    fn answers_are_taken_one_at_a_time_when_whole() {
        let two = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 503 Busy\r\n\
                   Retry-After: 7\r\ncontent-length: 4\r\n\r\nbusy";
        let mut buffer = BytesMut::from(two);
        let first = take_answer(&mut buffer, false).expect("ok").expect("whole");
        assert_eq!(first.answer.status, StatusCode::OK);
        assert_eq!(&first.answer.body_start[..], b"ok");
        assert!(first.answer.headers.is_empty(), "2xx headers are not kept");
        assert!(first.reusable);
        let second = take_answer(&mut buffer, false).expect("ok").expect("whole");
        assert_eq!(second.answer.status.as_u16(), 503);
        assert_eq!(second.answer.headers["retry-after"], "7");
        assert!(buffer.is_empty());
        // Not all there yet: nothing taken, nothing consumed.
        let (partial, left) = take("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab", false);
        assert!(partial.expect("ok").is_none());
        assert_eq!(left, 40, "nothing consumed");
        let (partial, _) = take("HTTP/1.1 200 O", false);
        assert!(partial.expect("ok").is_none());
    }

    #[test]
    fn framing_chunked_interim_no_content_and_close() {
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                       3\r\nabc\r\n2;x=y\r\nde\r\n0\r\ntrailer: 1\r\n\r\nNEXT";
        let mut buffer = BytesMut::from(chunked);
        let parsed = take_answer(&mut buffer, false).expect("ok").expect("whole");
        assert_eq!(&parsed.answer.body_start[..], b"abcde");
        assert_eq!(&buffer[..], b"NEXT");
        let (partial, _) = take(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nab",
            false,
        );
        assert!(partial.expect("ok").is_none());

        let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (parsed, left) = take(interim, false);
        assert_eq!(
            parsed.expect("ok").expect("whole").answer.status.as_u16(),
            204
        );
        assert_eq!(left, 0);

        let close = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(!take(close, false).0.expect("ok").expect("whole").reusable);
        let old = "HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(!take(old, false).0.expect("ok").expect("whole").reusable);
        let old_kept = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n";
        assert!(
            take(old_kept, false)
                .0
                .expect("ok")
                .expect("whole")
                .reusable
        );

        // No length: the body ends with the connection.
        let unframed = "HTTP/1.1 200 OK\r\n\r\nall of it";
        assert!(take(unframed, false).0.expect("ok").is_none());
        let parsed = take(unframed, true).0.expect("ok").expect("whole");
        assert_eq!(&parsed.answer.body_start[..], b"all of it");
        assert!(!parsed.reusable);
    }

    #[test]
    fn garbage_and_overlong_answers_are_errors_or_end_the_connection() {
        assert!(matches!(
            take("SSH-2.0-OpenSSH\r\n\r\n", false).0,
            Err(WireError::Parse(_))
        ));
        let long_head = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD + 1));
        assert_eq!(
            take(&long_head, false).0.err(),
            Some(WireError::HeadTooLong)
        );
        let bad_length = "HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n";
        assert!(take(bad_length, false).0.is_err());
        let huge = format!(
            "HTTP/1.1 500 Oops\r\ncontent-length: {}\r\n\r\n{}",
            MAX_BODY + 1,
            "x".repeat(1000)
        );
        let parsed = take(&huge, false).0.expect("ok").expect("whole");
        assert_eq!(parsed.answer.status.as_u16(), 500);
        assert_eq!(parsed.answer.body_start.len(), RESPONSE_KEPT);
        assert!(!parsed.reusable);
    }
}
