//! DANE for SMTP (RFC 7672): which exchangers of a domain have TLSA
//! records that DNSSEC vouches for, and the certificate check those records
//! ask for.
//!
//! DANE applies to an exchanger when the domain's MX records validated (or,
//! without MX records, the domain's own address records), the exchanger's
//! address records validated, and its `_25._tcp` TLSA records validated
//! (RFC 7672 section 2.2). Only DANE-TA(2) and DANE-EE(3) records are usable
//! for SMTP (section 3.1); PKIX usages are ignored. When DANE applies, TLS is
//! mandatory; when no usable record matches, or the look-ups fail or are
//! bogus, the exchanger is not used, never in cleartext.

use std::sync::Arc;

use postel_mx::{DnsFailure, HickoryResolver, Security, Tlsa};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::tls::AcceptAny;

/// What DANE says of one exchanger.
#[derive(Debug, Clone)]
pub(crate) enum HostDane {
    /// Not secured by DNSSEC, or no TLSA records: other policies apply.
    None,
    /// TLS is mandatory, and the certificate must match one of these
    /// usable records (never empty).
    Records(Arc<Vec<Tlsa>>),
    /// Validated TLSA records exist but none is usable: TLS is mandatory,
    /// unauthenticated (RFC 7672 section 2.2).
    Unusable,
    /// The DNSSEC status or the TLSA records could not be had: the
    /// exchanger must not be used now.
    Failed(String),
}

impl HostDane {
    /// Whether DANE governs the exchanger.
    pub(crate) fn applies(&self) -> bool {
        !matches!(self, HostDane::None)
    }
}

/// Whether a record is usable for SMTP: DANE-TA or DANE-EE, a known
/// selector and matching type (RFC 7672 section 3.1, RFC 6698 section 2.1).
fn usable(t: &Tlsa) -> bool {
    matches!(t.usage, 2 | 3) && matches!(t.selector, 0 | 1) && matches!(t.matching, 0..=2)
}

/// Whether `domain`'s exchangers can be DANE-protected at all: its MX
/// records validated, or without MX records its own address records
/// (RFC 7672 section 2.2.1). A failure is the look-up's.
pub(crate) async fn domain_secure(
    resolver: &HickoryResolver,
    domain: &str,
) -> Result<bool, DnsFailure> {
    if !resolver.validates() {
        return Ok(false);
    }
    Ok(match resolver.mx_security(domain).await? {
        Some(security) => security == Security::Secure,
        None => resolver.address_security(domain).await? == Some(Security::Secure),
    })
}

/// What DANE says of the exchanger `host` of a domain whose MX records
/// validated (RFC 7672 sections 2.2.2 and 2.2.3).
pub(crate) async fn for_host(resolver: &HickoryResolver, host: &str) -> HostDane {
    match resolver.address_security(host).await {
        Ok(Some(Security::Secure)) => {}
        Ok(_) => return HostDane::None,
        Err(e) => return HostDane::Failed(format!("address look-up of {host} failed: {e}")),
    }
    let name = format!("_25._tcp.{host}");
    match resolver.tlsa(&name).await {
        Ok((Security::Secure, records)) if !records.is_empty() => {
            let records: Vec<Tlsa> = records.into_iter().filter(usable).collect();
            if records.is_empty() {
                HostDane::Unusable
            } else {
                HostDane::Records(Arc::new(records))
            }
        }
        Ok(_) => HostDane::None,
        Err(e) => HostDane::Failed(format!("TLSA look-up of {name} failed: {e}")),
    }
}

/// What DANE says of `domain`'s exchangers, a line each, for `postel
/// tls-policy check`.
pub(crate) async fn explain(resolver: &HickoryResolver, domain: &str) -> String {
    use std::fmt::Write as _;
    match domain_secure(resolver, domain).await {
        Err(e) => {
            return format!(
                "DANE: the DNSSEC status of {domain} is unknown ({e}): delivery is deferred"
            );
        }
        Ok(false) => {
            return format!("DANE: the MX records of {domain} are not signed: DANE does not apply");
        }
        Ok(true) => {}
    }
    let hosts: Vec<String> = match postel_mx::Resolver::mx(resolver, domain).await {
        Ok(postel_mx::Answer::Records { mut records, .. }) => {
            records.sort_by_key(|r| r.preference);
            records.into_iter().map(|r| r.exchange).collect()
        }
        Ok(postel_mx::Answer::NoData { name }) => vec![name],
        Ok(postel_mx::Answer::NoSuchName) | Err(_) => Vec::new(),
    };
    let mut out = String::from("DANE: the MX records validated");
    for host in hosts {
        let _ = match for_host(resolver, &host).await {
            HostDane::Records(records) => {
                write!(
                    out,
                    "
  {host}: DANE, TLSA {}",
                    describe(&records).join(", ")
                )
            }
            HostDane::Unusable => write!(
                out,
                "
  {host}: DANE, no usable TLSA record: TLS required, unauthenticated"
            ),
            HostDane::None => write!(
                out,
                "
  {host}: no TLSA record: other policies apply"
            ),
            HostDane::Failed(why) => write!(
                out,
                "
  {host}: not used: {why}"
            ),
        };
    }
    out
}

/// The TLSA records as zone file text, `3 1 1 <hex>`, for logs and TLS-RPT.
pub(crate) fn describe(records: &[Tlsa]) -> Vec<String> {
    records
        .iter()
        .map(|t| {
            use std::fmt::Write as _;
            let mut line = format!("{} {} {} ", t.usage, t.selector, t.matching);
            for b in &t.data {
                let _ = write!(line, "{b:02x}");
            }
            line
        })
        .collect()
}

/// Whether `cert` (DER) matches the record's selector and matching type.
fn matches(record: &Tlsa, cert: &[u8]) -> bool {
    let selected = match record.selector {
        0 => cert,
        1 => match subject_public_key_info(cert) {
            Some(spki) => spki,
            None => return false,
        },
        _ => return false,
    };
    match record.matching {
        0 => selected == record.data.as_slice(),
        1 => ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == record.data,
        2 => ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == record.data,
        _ => false,
    }
}

/// One DER element read off the front of some octets.
struct Element<'a> {
    tag: u8,
    /// The element, header included.
    whole: &'a [u8],
    contents: &'a [u8],
    /// What follows it.
    rest: &'a [u8],
}

/// The DER element at the front of `input`; `None` for anything malformed
/// (indefinite or overlong lengths included).
fn element(input: &[u8]) -> Option<Element<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let (contents, after) = rest.split_at(len);
    Some(Element {
        tag,
        whole: &input[..header + len],
        contents,
        rest: after,
    })
}

/// The `SubjectPublicKeyInfo` of an X.509 certificate, as DER (RFC 5280
/// section 4.1: the seventh field of the `TBSCertificate`, the sixth when
/// the version is absent).
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let certificate = element(cert).filter(|e| e.tag == SEQUENCE)?;
    let tbs = element(certificate.contents).filter(|e| e.tag == SEQUENCE)?;
    let mut fields = tbs.contents;
    // [0] version, optional.
    if fields.first() == Some(&0xa0) {
        fields = element(fields)?.rest;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        fields = element(fields)?.rest;
    }
    let spki = element(fields).filter(|e| e.tag == SEQUENCE)?;
    Some(spki.whole)
}

/// The certificate check of a DANE-protected exchanger: the end-entity
/// certificate matches a DANE-EE(3) record (name and dates are not
/// checked, RFC 7672 section 3.1.1), or a certificate the server sent
/// matches a DANE-TA(2) record and the chain from it verifies for the
/// exchanger's name (section 3.1.2).
#[derive(Debug)]
pub(crate) struct DaneVerifier {
    records: Arc<Vec<Tlsa>>,
    signatures: AcceptAny,
}

impl DaneVerifier {
    /// A client configuration that verifies by these records.
    pub(crate) fn client_config(records: Arc<Vec<Tlsa>>) -> Arc<rustls::ClientConfig> {
        let verifier = DaneVerifier {
            records,
            signatures: AcceptAny::signatures(),
        };
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| rustls::ClientConfig::builder())
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Whether a DANE-TA record matches a certificate of the chain and the
    /// chain verifies from it.
    fn trust_anchor_verifies(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> bool {
        let anchors: Vec<&CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| {
                self.records
                    .iter()
                    .any(|r| r.usage == 2 && matches(r, c.as_ref()))
            })
            .collect();
        anchors.into_iter().any(|anchor| {
            let mut roots = rustls::RootCertStore::empty();
            if roots.add(anchor.clone().into_owned()).is_err() {
                return false;
            }
            crate::tls::verifier(roots).is_ok_and(|v| {
                v.verify_server_cert(end_entity, intermediates, server_name, &[], now)
                    .is_ok()
            })
        })
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = self
            .records
            .iter()
            .any(|r| r.usage == 3 && matches(r, end_entity.as_ref()));
        if ee || self.trust_anchor_verifies(end_entity, intermediates, server_name, now) {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::General(
            "DANE: the certificate matches no TLSA record".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    #[test]
    fn the_public_key_is_found_in_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let spki = subject_public_key_info(cert.der()).unwrap();
        assert_eq!(
            spki,
            rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        );
        let sha256 = ring::digest::digest(&ring::digest::SHA256, spki);
        assert!(matches(
            &record(3, 1, 1, sha256.as_ref().to_vec()),
            cert.der()
        ));
        let sha512 = ring::digest::digest(&ring::digest::SHA512, spki);
        assert!(matches(
            &record(3, 1, 2, sha512.as_ref().to_vec()),
            cert.der()
        ));
        assert!(matches(&record(3, 1, 0, spki.to_vec()), cert.der()));
        assert!(matches(&record(3, 0, 0, cert.der().to_vec()), cert.der()));
        let full = ring::digest::digest(&ring::digest::SHA256, cert.der());
        assert!(matches(
            &record(3, 0, 1, full.as_ref().to_vec()),
            cert.der()
        ));
        let mut other = sha256.as_ref().to_vec();
        other[0] ^= 1;
        assert!(!matches(&record(3, 1, 1, other), cert.der()));
        assert!(!matches(
            &record(3, 2, 1, sha256.as_ref().to_vec()),
            cert.der()
        ));
    }

    #[test]
    fn malformed_certificates_have_no_public_key() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x03, 0x30, 0x01],
            &[0x31, 0x00],
        ] {
            assert_eq!(subject_public_key_info(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_dane_usages_are_usable_for_smtp() {
        assert!(usable(&record(3, 1, 1, vec![])));
        assert!(usable(&record(2, 0, 2, vec![])));
        assert!(!usable(&record(1, 1, 1, vec![])));
        assert!(!usable(&record(0, 1, 1, vec![])));
        assert!(!usable(&record(3, 2, 1, vec![])));
        assert!(!usable(&record(3, 1, 3, vec![])));
    }
}
