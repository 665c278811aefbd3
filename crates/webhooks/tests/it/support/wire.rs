//! HTTP/1.1 requests read off a raw socket, for receivers written against TCP so a test
//! sees exactly what went over the wire.

use tokio::{io::AsyncReadExt, net::TcpStream};

/// The next request on `stream`: its head (request line and headers, with the blank line)
/// and its `content-length` bytes of body. `input` keeps what was read past it. `None`
/// once the connection ends.
pub async fn read_request(
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    let head_end = loop {
        if let Some(at) = input.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        fill(stream, input).await?;
    };
    let head = String::from_utf8_lossy(&input[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|value| value.trim().parse::<usize>().ok())
        })
        .unwrap_or(0);
    while input.len() < head_end + length {
        fill(stream, input).await?;
    }
    let body = input[head_end..head_end + length].to_vec();
    input.drain(..head_end + length);
    Some((head, body))
}

/// Reads what comes next onto `input`; `None` at the end of the connection.
async fn fill(stream: &mut TcpStream, input: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            input.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
