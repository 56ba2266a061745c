//! The little HTTPS that delivery needs: one HTTP/1.0 request over TLS
//! whose certificate is verified, to a host looked up through the
//! delivery resolver, with the response bounded in size. MTA-STS fetches
//! its policies with it (RFC 8461 section 3.3), TLS-RPT posts its reports
//! (RFC 8460 section 5.3.2).

use std::sync::Arc;

use postel_mx::{Answer, HickoryResolver, Resolver as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A response: status code, header fields, body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header fields, names in lower case.
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first field named `name` (lower case).
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An `https://host[:port]/path` address, parsed; `None` for anything
/// else (userinfo, a fragment, another scheme).
pub(crate) fn parse_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.contains('@') || path.contains('#') || authority.is_empty() {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (authority, 443),
    };
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (valid && !host.is_empty()).then(|| (host.to_ascii_lowercase(), port, path.to_owned()))
}

/// Sends `method path` to `host:port` with `extra` header lines (each
/// ending in CRLF) and `body`; reads at most `limit` octets of response.
pub(crate) async fn request(
    resolver: &HickoryResolver,
    tls: &Arc<rustls::ClientConfig>,
    (host, port): (&str, u16),
    (method, path, extra): (&str, &str, &str),
    body: &[u8],
    limit: usize,
) -> Result<Response, String> {
    let mut addrs = Vec::new();
    for answer in [resolver.ipv4(host).await, resolver.ipv6(host).await] {
        if let Ok(Answer::Records { records, .. }) = answer {
            addrs.extend(records);
        }
    }
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    let tcp = tokio::net::TcpStream::connect((*addr, port))
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let mut stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let head =
        format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: postel\r\n{extra}\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let read = (&mut stream)
        .take(limit as u64)
        .read_to_end(&mut response)
        .await;
    match read {
        Ok(_) => {}
        // Many HTTP servers close without TLS's close_notify; with
        // HTTP/1.0 the end of the connection is the end of the body.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.to_string()),
    }
    parse_response(&response)
}

/// Splits a response into status, fields and body; a body shorter or
/// longer than its Content-Length is an error (a connection cut short).
fn parse_response(response: &[u8]) -> Result<Response, String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the response header")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let body = response[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let fields: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let response = Response {
        status,
        fields,
        body,
    };
    if let Some(length) = response.field("content-length")
        && length.parse::<usize>().ok() != Some(response.body.len())
    {
        return Err("the body is shorter or longer than its Content-Length".into());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_responses() {
        assert_eq!(
            parse_url("https://Reports.Example/tlsrpt"),
            Some(("reports.example".into(), 443, "/tlsrpt".into()))
        );
        assert_eq!(
            parse_url("https://r.example:8443"),
            Some(("r.example".into(), 8443, "/".into()))
        );
        for bad in [
            "http://r.example/",
            "https://u@r.example/",
            "https://r.example:x/",
            "https:///x",
            "https://r example/",
        ] {
            assert_eq!(parse_url(bad), None, "{bad}");
        }
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.field("content-type")),
            (200, Some("text/plain"))
        );
        assert_eq!(r.body, b"ok");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
