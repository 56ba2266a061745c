//! The PROXY protocol (`HAProxy`'s, versions 1 and 2) on a listener behind a
//! load balancer: the header a trusted proxy sends before the SMTP session,
//! naming the original client, which is then what the relay policy, limits,
//! the Received header and the logs see.
//!
//! The header is read with exact-size reads, so not one octet of the SMTP
//! session after it is consumed, and within a deadline and a size cap: a
//! malformed or oversized header closes the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a proxy has to send the header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Version 1: "a line of at most 107 characters including the CRLF".
const V1_MAX: usize = 107;
/// Version 2's signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The most of version 2's address block and TLVs taken; the addresses need
/// 36, and proxies send a few TLVs (`HAProxy`'s own limit is 536 in all).
const V2_MAX_BODY: usize = 1024;

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProxyError {
    /// Not a PROXY header at all.
    #[error("no PROXY protocol header")]
    Missing,
    /// A version 1 line that does not follow the grammar.
    #[error("malformed PROXY v1 header")]
    BadV1,
    /// A version 2 header with a bad version, command, family or length.
    #[error("malformed PROXY v2 header")]
    BadV2,
    /// More than the cap.
    #[error("PROXY header too long")]
    TooLong,
    /// The proxy did not finish the header in time.
    #[error("PROXY header timed out")]
    Timeout,
    /// The connection failed.
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// Reads the PROXY header at the start of `tcp`: the original client's
/// address, or `None` for a header that names none (v1 `UNKNOWN`, v2
/// `LOCAL`, health checks), when the proxy's own address stands.
pub(crate) async fn read_header(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    tokio::time::timeout(HEADER_TIMEOUT, read(tcp))
        .await
        .map_err(|_| ProxyError::Timeout)?
}

async fn read(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    let io = |e: std::io::Error| ProxyError::Io(e.to_string());
    let mut start = [0u8; 5];
    tcp.read_exact(&mut start).await.map_err(io)?;
    if &start == b"PROXY" {
        let mut line = start.to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(ProxyError::TooLong);
            }
            let mut b = [0u8; 1];
            tcp.read_exact(&mut b).await.map_err(io)?;
            line.push(b[0]);
        }
        return parse_v1(&line);
    }
    if start != V2_SIGNATURE[..5] {
        return Err(ProxyError::Missing);
    }
    let mut head = [0u8; 16];
    head[..5].copy_from_slice(&start);
    tcp.read_exact(&mut head[5..]).await.map_err(io)?;
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_BODY {
        return Err(ProxyError::TooLong);
    }
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.map_err(io)?;
    parse_v2(&head, &body)
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT CRLF`, or `PROXY UNKNOWN ... CRLF`.
pub(crate) fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyError::BadV1)?;
    let text = text.strip_suffix("\r\n").ok_or(ProxyError::BadV1)?;
    let mut words = text.split(' ');
    if words.next() != Some("PROXY") {
        return Err(ProxyError::BadV1);
    }
    let family = words.next().ok_or(ProxyError::BadV1)?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = words.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::BadV1);
    };
    let port = |p: &str| {
        // No sign, no leading zero: the grammar's decimal port.
        (!p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0')))
        .then(|| p.parse::<u16>().ok())
        .flatten()
    };
    // The destination must parse too; only the source is used.
    let (src, _dst): (IpAddr, IpAddr) = match family {
        "TCP4" => (
            src.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
            dst.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
            dst.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
        ),
        _ => return Err(ProxyError::BadV1),
    };
    let (Some(sport), Some(_)) = (port(sport), port(dport)) else {
        return Err(ProxyError::BadV1);
    };
    Ok(Some(SocketAddr::new(src, sport)))
}

/// Version 2: the 16-octet head (signature, version and command, family and
/// transport, length) and the body it announces.
pub(crate) fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    if head[..12] != V2_SIGNATURE || head[12] >> 4 != 2 {
        return Err(ProxyError::BadV2);
    }
    match head[12] & 0x0f {
        // LOCAL: the proxy's own connection, such as a health check.
        0 => return Ok(None),
        1 => {}
        _ => return Err(ProxyError::BadV2),
    }
    match head[13] {
        // TCP over IPv4: 4 + 4 + 2 + 2 octets.
        0x11 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([body[8], body[9]]),
            )))
        }
        // TCP over IPv6: 16 + 16 + 2 + 2 octets.
        0x21 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let ip = Ipv6Addr::from(octets);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([body[32], body[33]]),
            )))
        }
        // UNSPEC: no address to use.
        0x00 => Ok(None),
        _ => Err(ProxyError::BadV2),
    }
}

#[cfg(test)]
mod tests {
    // A failed assertion is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn v1_lines_of_the_specification() {
        let tcp4 = parse_v1(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\n");
        assert_eq!(tcp4, Ok(Some("192.0.2.1:56324".parse().unwrap())));
        let tcp6 = parse_v1(b"PROXY TCP6 2001:db8::1 2001:db8::2 4242 25\r\n");
        assert_eq!(tcp6, Ok(Some("[2001:db8::1]:4242".parse().unwrap())));
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Ok(None));
        assert_eq!(parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), Ok(None));
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 25 extra\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 065535 25\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 70000 25\r\n",
            b"PROXY TCP5 192.0.2.1 198.51.100.1 1 25\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 1 25\n",
        ] {
            assert_eq!(
                parse_v1(bad),
                Err(ProxyError::BadV1),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn head(command: u8, family: u8, len: u16) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[..12].copy_from_slice(&V2_SIGNATURE);
        h[12] = 0x20 | command;
        h[13] = family;
        h[14..].copy_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn v2_addresses_local_and_bad_headers() {
        let body = [192, 0, 2, 1, 198, 51, 100, 1, 0xdc, 0x04, 0, 25];
        assert_eq!(
            parse_v2(&head(1, 0x11, 12), &body),
            Ok(Some("192.0.2.1:56324".parse().unwrap()))
        );
        let mut six = [0u8; 36];
        six[0] = 0x20;
        six[1] = 0x01;
        six[15] = 1;
        six[32..34].copy_from_slice(&4242u16.to_be_bytes());
        assert_eq!(
            parse_v2(&head(1, 0x21, 36), &six),
            Ok(Some("[2001::1]:4242".parse().unwrap()))
        );
        assert_eq!(parse_v2(&head(0, 0x00, 0), &[]), Ok(None), "LOCAL");
        assert_eq!(
            parse_v2(&head(2, 0x11, 12), &body),
            Err(ProxyError::BadV2),
            "command"
        );
        assert_eq!(
            parse_v2(&head(1, 0x11, 8), &body[..8]),
            Err(ProxyError::BadV2),
            "short"
        );
        assert_eq!(
            parse_v2(&head(1, 0x31, 12), &body),
            Err(ProxyError::BadV2),
            "AF_UNIX"
        );
        let mut v1 = head(1, 0x11, 12);
        v1[12] = 0x11;
        assert_eq!(parse_v2(&v1, &body), Err(ProxyError::BadV2), "version");
    }
}
