//! SASL for AUTH (RFC 4954): base64, and the PLAIN (RFC 4616) and LOGIN
//! mechanisms. Checking credentials is the application's decision.

use postel_proto::types::Secret;

/// Decodes canonical base64 (RFC 4648 section 4, padding required). `None` for
/// anything else: RFC 4954 section 4 has the server reject a malformed response
/// with 501.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, quad) in b.chunks_exact(4).enumerate() {
        let last = i + 1 == b.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
        // Canonical form: the bits dropped by padding must be zero.
        if pad > 0 && n & ((1 << (8 * pad)) - 1) != 0 {
            return None;
        }
    }
    Some(out)
}

/// Encodes base64 with padding.
pub fn encode_base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Credentials a client presented, for the application to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity to act as, if different from the authenticated one (PLAIN's
    /// authzid). Empty when not given.
    pub authorization_id: String,
    /// The user name.
    pub authentication_id: String,
    /// The password; its `Debug` is redacted.
    pub password: Secret<String>,
}

/// Reads a PLAIN message: `[authzid] NUL authcid NUL passwd` (RFC 4616 section 2).
pub fn parse_plain(message: &[u8]) -> Option<Credentials> {
    let mut parts = message.split(|&b| b == 0);
    let authz = parts.next()?;
    let authc = parts.next()?;
    let pass = parts.next()?;
    if parts.next().is_some() || authc.is_empty() {
        return None;
    }
    Some(Credentials {
        authorization_id: String::from_utf8(authz.to_vec()).ok()?,
        authentication_id: String::from_utf8(authc.to_vec()).ok()?,
        password: Secret::new(String::from_utf8(pass.to_vec()).ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers_rfc4648_section_10() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_base64(plain.as_bytes()), enc);
            assert_eq!(decode_base64(enc).as_deref(), Some(plain.as_bytes()));
        }
        for bad in ["Zg=", "Zg", "Z===", "Zh==", "Zm9v!A==", "Zg==Zg=="] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn plain_messages() {
        let c = parse_plain(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!(
            (c.authorization_id.as_str(), c.authentication_id.as_str()),
            ("", "tim")
        );
        assert_eq!(c.password.expose(), "tanstaaftanstaaf");
        assert!(parse_plain(b"tim\0tanstaaf").is_none());
        assert!(parse_plain(b"\0\0pass").is_none());
        assert!(format!("{c:?}").contains("Secret(..)"));
    }
}
