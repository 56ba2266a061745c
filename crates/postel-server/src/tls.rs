//! TLS through rustls (ring provider): the server's certificate, reloadable
//! on SIGHUP, a self-signed one for trying things out, and the client side
//! for outbound STARTTLS.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the certificate and key.
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain and key into a server configuration.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file_error = |path: &Path, problem: String| TlsError::File {
        path: path.to_path_buf(),
        problem,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Writes a fresh self-signed certificate for `hostname` into `dir`; returns
/// the certificate and key paths.
pub fn dev_certificate(dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let generated =
        rcgen::generate_simple_self_signed(vec![hostname.to_owned(), "localhost".to_owned()])
            .map_err(|e| TlsError::Config(e.to_string()))?;
    let io = |path: &Path, e: std::io::Error| TlsError::File {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).map_err(|e| io(&cert, e))?;
    std::fs::write(&key, generated.signing_key.serialize_pem()).map_err(|e| io(&key, e))?;
    Ok((cert, key))
}

/// The server's TLS configuration, swapped in place on reload.
#[derive(Debug, Clone)]
pub struct Certificates {
    paths: (PathBuf, PathBuf),
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Certificates {
    /// Loads the files.
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let config = load(&cert, &key)?;
        Ok(Certificates {
            paths: (cert, key),
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// The configuration for a new handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |c| Arc::clone(&c));
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Reads the files again; on error the old certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.paths.0, &self.paths.1)?;
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(p) => *p.into_inner() = config,
        }
        Ok(())
    }
}

/// The client side for outbound STARTTLS. Opportunistic TLS verifies nothing
/// (RFC 7435: encryption against passive attackers is better than none);
/// `verify` checks the certificate against the bundled web roots instead.
pub fn client_config(verify: bool, roots: rustls::RootCertStore) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| ClientConfig::builder());
    let config = if verify {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny {
                provider: provider(),
                observe: None,
            }))
            .with_no_client_auth()
    };
    Arc::new(config)
}

/// A client that accepts any certificate, as opportunistic TLS does, but
/// notes whether it would have verified with `verifier` for the name:
/// MTA-STS testing mode reports what enforcing would have refused (RFC
/// 8461 section 5). The note is the verification error, if any.
pub fn observing_client_config(
    verifier: Arc<rustls::client::WebPkiServerVerifier>,
) -> (Arc<ClientConfig>, Arc<std::sync::Mutex<Option<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let accept = AcceptAny {
        provider: provider(),
        observe: Some((verifier, Arc::clone(&seen))),
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| ClientConfig::builder())
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(accept))
        .with_no_client_auth();
    (Arc::new(config), seen)
}

/// The verifier verified TLS uses, for `observing_client_config`.
pub fn verifier(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, TlsError> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// Accepts any certificate: opportunistic TLS; with `observe`, notes what
/// the verifier would have said of it.
#[derive(Debug)]
pub(crate) struct AcceptAny {
    provider: Arc<rustls::crypto::CryptoProvider>,
    observe: Option<Observer>,
}

impl AcceptAny {
    /// Accepts any certificate, notes nothing: what other verifiers use
    /// for the handshake signatures.
    pub(crate) fn signatures() -> AcceptAny {
        AcceptAny {
            provider: provider(),
            observe: None,
        }
    }
}

type Observer = (
    Arc<rustls::client::WebPkiServerVerifier>,
    Arc<std::sync::Mutex<Option<String>>>,
);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some((verifier, seen)) = &self.observe
            && let Err(e) = verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        {
            *seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(format!("invalid peer certificate: {e}"));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
