//! DKIM signing (RFC 6376, RFC 8463): per-domain keys under their
//! selectors, every key of the author's domain signing (so ed25519-sha256
//! and rsa-sha256 side by side), relaxed/relaxed, the header fields RFC 6376
//! section 5.4.1 advises, From signed once more than it occurs.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderStream, Writable};
use mail_auth::dkim::Canonicalization;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::AuthError;

/// The header fields signed when the message has them (RFC 6376 section
/// 5.4.1), From first. Each is listed as often as it occurs; From once
/// more, so that no From can be added to a signed message.
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// A signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ed25519-sha256 (RFC 8463).
    Ed25519,
    /// rsa-sha256 (RFC 6376), 2048-bit keys when generated.
    Rsa,
}

impl Algorithm {
    /// The `a=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519-sha256",
            Algorithm::Rsa => "rsa-sha256",
        }
    }
}

struct Entry {
    domain: String,
    selector: String,
    key: DkimKey,
}

/// The signing keys of this server's domains.
///
/// ```
/// use postel_auth::{Algorithm, Signer, generate};
///
/// let key = generate(Algorithm::Ed25519).unwrap();
/// let mut signer = Signer::default();
/// signer.add("example.com", "ed1", &key.private_pem).unwrap();
/// let message = b"From: alice@example.com\r\nSubject: hi\r\n\r\nHello\r\n";
/// let fields = signer.sign(message).unwrap().expect("example.com has a key");
/// assert!(fields.starts_with("DKIM-Signature: "));
/// assert!(fields.contains("d=example.com") && fields.contains("s=ed1"));
/// // Mail from a domain without a key is not signed.
/// assert!(signer.sign(b"From: bob@example.org\r\n\r\nx\r\n").unwrap().is_none());
/// ```
#[derive(Default)]
pub struct Signer {
    keys: Vec<Entry>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for e in &self.keys {
            list.entry(&format_args!("{}/{}", e.domain, e.selector));
        }
        list.finish()
    }
}

fn dns_name(what: &'static str, value: &str) -> Result<String, AuthError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(AuthError::Name {
            what,
            value: value.to_owned(),
        })
    }
}

impl Signer {
    /// Adds a key for `domain` under `selector`, from a PEM private key:
    /// PKCS #8 (`PRIVATE KEY`, RSA or Ed25519) or PKCS #1 (`RSA PRIVATE
    /// KEY`).
    pub fn add(&mut self, domain: &str, selector: &str, pem: &str) -> Result<(), AuthError> {
        let domain = dns_name("domain", domain.trim_end_matches('.'))?;
        let selector = dns_name("selector", selector)?;
        let problem = |p: String| AuthError::Key {
            domain: domain.clone(),
            selector: selector.clone(),
            problem: p,
        };
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| problem(format!("not a PEM private key ({e})")))?;
        let key = match &der {
            PrivateKeyDer::Pkcs1(_) => DkimKey::Rsa(
                RsaKey::<Sha256>::from_key_der(der.clone_key())
                    .map_err(|e| problem(e.to_string()))?,
            ),
            PrivateKeyDer::Pkcs8(p) => match RsaKey::<Sha256>::from_key_der(der.clone_key()) {
                Ok(rsa) => DkimKey::Rsa(rsa),
                // Keys written by OpenSSL or dkimpy are PKCS #8 version 1,
                // without the public key.
                Err(_) => DkimKey::Ed25519(
                    Ed25519Key::from_pkcs8_maybe_unchecked_der(p.secret_pkcs8_der())
                        .map_err(|_| problem("neither an RSA nor an Ed25519 key".into()))?,
                ),
            },
            _ => return Err(problem("an EC key; DKIM signs with RSA or Ed25519".into())),
        };
        self.keys.push(Entry {
            domain,
            selector,
            key,
        });
        Ok(())
    }

    /// Adds a key read from a PEM file.
    pub fn load(&mut self, domain: &str, selector: &str, path: &Path) -> Result<(), AuthError> {
        let pem = std::fs::read_to_string(path).map_err(|source| AuthError::KeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        self.add(domain, selector, &pem)
    }

    /// Whether there is no key at all: nothing is ever signed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether any key signs for `domain`.
    pub fn signs_for(&self, domain: &str) -> bool {
        self.keys
            .iter()
            .any(|e| e.domain.eq_ignore_ascii_case(domain.trim_end_matches('.')))
    }

    /// The DKIM-Signature fields (each ending in CRLF, in the order the
    /// keys were added) to prepend to `message`: one per key of the domain
    /// of the message's first From address, or, when it has none, of its
    /// nearest parent domain that has keys (`MAILER-DAEMON@mx.example.org`
    /// signed by example.org, which DMARC's relaxed alignment accepts).
    /// `None` when no such domain has a key or the message has no From.
    pub fn sign(&self, message: &[u8]) -> Result<Option<String>, AuthError> {
        let Some(parsed) = mail_auth::AuthenticatedMessage::parse(message) else {
            return Ok(None);
        };
        let Some(author) = author_domain(&parsed) else {
            return Ok(None);
        };
        let mut candidate = author.as_str();
        let domain = loop {
            if self.keys.iter().any(|e| e.domain == candidate) {
                break candidate.to_owned();
            }
            match candidate.split_once('.') {
                Some((_, parent)) if parent.contains('.') => candidate = parent,
                _ => return Ok(None),
            }
        };
        let names = signed_fields(message);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut fields = String::new();
        for entry in self.keys.iter().filter(|e| e.domain == domain) {
            let field =
                signature_field(entry, &names, &parsed, now).map_err(|e| AuthError::Sign {
                    domain: domain.clone(),
                    problem: e.to_string(),
                })?;
            fields.push_str(&field);
        }
        Ok((!fields.is_empty()).then_some(fields))
    }
}

/// One key's DKIM-Signature field, on mail-auth's canonicalization and
/// crypto but written here: folded between tags and between the names of
/// `h=`, never inside `bh=` (some verifiers, dkimpy among them, do not take
/// the folding white space RFC 6376 allows there; mail-auth's writer folds
/// wherever a line grows long), `b=` folded every 64 characters. `b=`
/// signs the canonicalized fields, then this field relaxed with `b=` empty
/// (RFC 6376 section 3.7).
fn signature_field(
    entry: &Entry,
    names: &[&'static str],
    parsed: &mail_auth::AuthenticatedMessage<'_>,
    now: u64,
) -> mail_auth::Result<String> {
    let key = &entry.key;
    let template = mail_auth::dkim::Signature {
        v: 1,
        a: key.algorithm(),
        d: entry.domain.clone(),
        s: entry.selector.clone(),
        h: names.iter().map(|n| (*n).to_owned()).collect(),
        ch: Canonicalization::Relaxed,
        cb: Canonicalization::Relaxed,
        ..Default::default()
    };
    let fields = Fields {
        fields: parsed.headers.iter(),
        body: parsed
            .raw_message
            .get(parsed.body_offset as usize..)
            .unwrap_or_default(),
    };
    // The fields it signs (each occurrence, and From once more) as `h=`
    // lists them, canonicalized, and the canonicalized body.
    let (_, headers, signed, body) = template.canonicalize(fields);
    if signed.is_empty() {
        return Err(mail_auth::Error::NoHeadersFound);
    }
    let signature = mail_auth::dkim::Signature {
        h: signed,
        bh: key.hash(body).as_ref().to_vec(),
        t: now,
        ..template
    };
    let algorithm = match key.algorithm() {
        mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
        _ => "rsa-sha256",
    };
    let mut h_lines = vec![String::from("h=")];
    for (i, name) in signature.h.iter().enumerate() {
        let piece = if i == 0 {
            name.clone()
        } else {
            format!(":{name}")
        };
        if h_lines.last().is_some_and(|l| l.len() + piece.len() > 70) {
            h_lines.push(String::new());
        }
        if let Some(line) = h_lines.last_mut() {
            line.push_str(&piece);
        }
    }
    let mut lines = vec![
        format!(
            "v=1; a={algorithm}; c=relaxed/relaxed; d={}; s={};",
            signature.d, signature.s
        ),
        format!("t={};", signature.t),
    ];
    let last = h_lines.len() - 1;
    for (i, l) in h_lines.into_iter().enumerate() {
        lines.push(if i == last { format!("{l};") } else { l });
    }
    lines.push(format!("bh={};", STANDARD.encode(&signature.bh)));
    // Relaxed: unfolded, one space where each fold is, the name in lower
    // case, no space around the colon, `b=` empty.
    let canonical = format!("dkim-signature:{} b=", lines.join(" "));
    let b = key.sign(Signed {
        headers,
        field: canonical.as_bytes(),
    })?;
    let b = STANDARD.encode(b);
    let mut field = String::from("DKIM-Signature: ");
    field.push_str(&lines.join("\r\n\t"));
    field.push_str("\r\n\tb=");
    for (i, chunk) in b.as_bytes().chunks(64).enumerate() {
        if i > 0 {
            field.push_str("\r\n\t  ");
        }
        field.push_str(&String::from_utf8_lossy(chunk));
    }
    field.push_str("\r\n");
    Ok(field)
}

/// A parsed message's fields, as mail-auth's canonicalization reads them.
struct Fields<'x> {
    fields: std::slice::Iter<'x, (&'x [u8], &'x [u8])>,
    body: &'x [u8],
}

impl<'x> HeaderStream<'x> for Fields<'x> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        self.fields.next().copied()
    }

    fn body(&mut self) -> &'x [u8] {
        self.body
    }
}

/// What a signature signs: the canonicalized fields, then its own field.
struct Signed<'a> {
    headers: mail_auth::dkim::canonicalize::CanonicalHeaders<'a>,
    field: &'a [u8],
}

impl Writable for Signed<'_> {
    fn write(self, writer: &mut impl mail_auth::common::headers::Writer) {
        self.headers.write(writer);
        writer.write(self.field);
    }
}

/// The lower-case domain of the first address of the first From field.
fn author_domain(parsed: &mail_auth::AuthenticatedMessage<'_>) -> Option<String> {
    let from = parsed.from.first()?;
    let (_, domain) = from.rsplit_once('@')?;
    Some(domain.trim_end_matches('.').to_ascii_lowercase())
}

/// The names to give mail-auth's signer for this message: each advised
/// field the message has (the signer signs every occurrence of a name it
/// is given and lists each in `h=`), and From a second time, which it
/// lists once more than From occurs.
fn signed_fields(message: &[u8]) -> Vec<&'static str> {
    let header_end = memchr_end_of_header(message);
    let mut list = vec!["From"];
    list.extend(
        SIGNED_FIELDS
            .iter()
            .copied()
            .filter(|name| *name == "From" || count_fields(&message[..header_end], name) > 0),
    );
    list
}

fn memchr_end_of_header(message: &[u8]) -> usize {
    let mut at = 0;
    while at < message.len() {
        let line_end = message[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |i| at + i + 1);
        if matches!(&message[at..line_end], b"\r\n" | b"\n") {
            return at;
        }
        at = line_end;
    }
    message.len()
}

fn count_fields(header: &[u8], name: &str) -> usize {
    header
        .split(|&b| b == b'\n')
        .filter(|line| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()..].trim_ascii_start().first() == Some(&b':')
        })
        .count()
}

/// A generated key: the private key to keep, the record to publish.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The private key, PEM (PKCS #8 for Ed25519, PKCS #1 for RSA).
    pub private_pem: String,
    /// The TXT record's value for `selector._domainkey.domain`
    /// (`v=DKIM1; k=...; p=...`).
    pub dns_record: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("algorithm", &self.algorithm)
            .field("dns_record", &self.dns_record)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair: Ed25519, or 2048-bit RSA.
pub fn generate(algorithm: Algorithm) -> Result<GeneratedKey, AuthError> {
    use mail_auth::dkim::generate::DkimKeyPair;
    let failed = |e: mail_auth::Error| AuthError::Generate(e.to_string());
    let (label, pair, k, public) = match algorithm {
        Algorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519().map_err(failed)?;
            let public = pair.public_key().to_vec();
            ("PRIVATE KEY", pair, "ed25519", public)
        }
        Algorithm::Rsa => {
            let pair = DkimKeyPair::generate_rsa(2048).map_err(failed)?;
            // Published as a `SubjectPublicKeyInfo`, which every verifier reads.
            let public = rsa_spki(pair.public_key());
            ("RSA PRIVATE KEY", pair, "rsa", public)
        }
    };
    Ok(GeneratedKey {
        algorithm,
        private_pem: pem(label, pair.private_key()),
        dns_record: format!("v=DKIM1; k={k}; p={}", STANDARD.encode(public)),
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// DER: a tag and its contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// An `RSAPublicKey` (PKCS #1) wrapped as a `SubjectPublicKeyInfo`.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier: rsaEncryption (1.2.840.113549.1.1.1), NULL.
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0];
    bits.extend_from_slice(pkcs1);
    let mut inner = RSA_ALGORITHM.to_vec();
    inner.extend(der(0x03, &bits));
    der(0x30, &inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_fields_are_given_and_from_twice() {
        let m = b"From: a@example.com\r\nTo: b@x\r\nTo: c@x\r\nX-Other: 1\r\nsubject : s\r\n\r\nFrom: body\r\n";
        assert_eq!(signed_fields(m), ["From", "From", "Subject", "To"]);
    }

    #[test]
    fn bad_names_and_keys_are_refused() {
        let key = generate(Algorithm::Ed25519).unwrap();
        let mut s = Signer::default();
        assert!(matches!(
            s.add("exa mple.com", "s", &key.private_pem),
            Err(AuthError::Name { what: "domain", .. })
        ));
        assert!(matches!(
            s.add("example.com", "", &key.private_pem),
            Err(AuthError::Name {
                what: "selector",
                ..
            })
        ));
        assert!(matches!(
            s.add("example.com", "s", "not a key"),
            Err(AuthError::Key { .. })
        ));
        assert!(!s.signs_for("example.com"));
    }

    #[test]
    fn a_subdomain_is_signed_by_its_nearest_parent_with_keys() {
        let key = generate(Algorithm::Ed25519).unwrap();
        let mut s = Signer::default();
        s.add("example.com", "s", &key.private_pem).unwrap();
        let sign = |from: &str| {
            s.sign(format!("From: {from}\r\n\r\nx\r\n").as_bytes())
                .unwrap()
                .map(|f| f.contains("d=example.com;"))
        };
        assert_eq!(sign("MAILER-DAEMON@mx.example.com"), Some(true));
        assert_eq!(sign("a@b.c.example.com"), Some(true));
        assert_eq!(sign("a@example.org"), None);
        assert_eq!(sign("a@com"), None, "never a top-level domain's key");
    }
}
