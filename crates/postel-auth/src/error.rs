//! What can go wrong outside a check: building the resolver, reading and
//! using keys. A check itself never fails; its failures are results
//! (`temperror`, `permerror`).

use std::path::PathBuf;

/// An error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The resolver could not be built from the DNS configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Resolver(String),
    /// A key file could not be read.
    #[error("cannot read the DKIM key {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key is not a PEM private key of a kind DKIM signs with.
    #[error("DKIM key for {domain} (selector {selector}): {problem}")]
    Key {
        /// The signing domain.
        domain: String,
        /// The selector.
        selector: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A domain or selector that cannot appear in a DNS name.
    #[error("{what} {value:?} is not a DNS name")]
    Name {
        /// `domain` or `selector`.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// Signing failed (the message has no header section to sign, or the
    /// crypto library refused).
    #[error("cannot sign for {domain}: {problem}")]
    Sign {
        /// The signing domain.
        domain: String,
        /// Why.
        problem: String,
    },
    /// Key generation failed.
    #[error("cannot generate a key: {0}")]
    Generate(String),
}
