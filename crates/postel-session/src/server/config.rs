//! What a server offers and how much it accepts.

use std::borrow::Cow;

use postel_proto::ParserOptions;
use postel_proto::types::{Capabilities, Domain, Mechanism};

/// Server settings: the extensions to advertise and the limits to enforce.
/// Built with [`ServerConfig::new`], then adjusted field by field.
///
/// ```
/// use postel_proto::types::{Domain, Mechanism};
/// use postel_session::server::ServerConfig;
/// let mut config = ServerConfig::new(Domain::try_from("mx.example.org")?);
/// config.max_message_size = Some(25 << 20);
/// config.starttls = true;
/// config.auth_mechanisms = vec![Mechanism::PLAIN, Mechanism::LOGIN];
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // One switch per advertised extension.
pub struct ServerConfig {
    /// The name in the greeting and the EHLO reply.
    pub hostname: Domain<'static>,
    /// Text after the name in the 220 greeting.
    pub greeting: Cow<'static, str>,
    /// Largest message in octets, advertised as SIZE (RFC 1870) and checked at
    /// MAIL and again during the body. `None`: SIZE without a limit.
    pub max_message_size: Option<u64>,
    /// Recipients accepted per transaction; more get 452 (RFC 5321 section
    /// 4.5.3.1.8 requires at least 100).
    pub max_recipients: usize,
    /// Protocol errors before the server answers 421 and closes. Stops a peer
    /// from probing forever.
    pub max_errors: usize,
    /// Command lines past the line limit before the server answers 421 and
    /// closes: 3. Each is read to its end in bounded memory, but a client
    /// that sends them is not speaking SMTP.
    pub max_long_lines: usize,
    /// Most `Received` fields a message may carry; one with more is refused
    /// at the end of data with 554 5.4.6 (RFC 5321 section 6.3: a loop).
    /// Default 100, the least that section allows; Postfix's
    /// `hopcount_limit` is 50. `None` counts but never refuses.
    pub max_received: Option<usize>,
    /// Advertise PIPELINING (RFC 2920). Commands are always processed in order.
    pub pipelining: bool,
    /// Advertise 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// Advertise SMTPUTF8 (RFC 6531) and accept UTF-8 addresses with it.
    pub smtputf8: bool,
    /// Advertise CHUNKING and BINARYMIME (RFC 3030) and accept BDAT.
    pub chunking: bool,
    /// Advertise DSN (RFC 3461) and accept its parameters.
    pub dsn: bool,
    /// Advertise ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// Advertise STARTTLS (RFC 3207). Set it only when the driver can start TLS.
    pub starttls: bool,
    /// SASL mechanisms to offer; empty offers no AUTH. PLAIN and LOGIN are
    /// understood by the state machine.
    pub auth_mechanisms: Vec<Mechanism<'static>>,
    /// Offer AUTH before TLS. Off by default: passwords must not cross the
    /// network in the clear (RFC 4954 section 4, RFC 8314).
    pub allow_auth_without_tls: bool,
    /// Refuse MAIL until the client has authenticated (530), as a submission
    /// server does (RFC 6409 section 4.3).
    pub require_auth: bool,
    /// Speak LMTP (RFC 2033) instead of SMTP: LHLO instead of HELO and
    /// EHLO, and after the message one decision, and one reply, per accepted
    /// recipient ([`Event::LmtpMessage`](super::Event::LmtpMessage)).
    pub lmtp: bool,
    /// Ask the application before DATA's 354 ([`Event::Data`](super::Event::Data)),
    /// for instance to consult a filter; otherwise DATA is answered at once.
    pub decide_data: bool,
    /// Offer REQUIRETLS (RFC 8689) once the session is under TLS, and take
    /// `MAIL FROM ... REQUIRETLS` only then: the application keeps the flag
    /// with the message and relays it only over verified TLS.
    pub requiretls: bool,
    /// Grammar options and limits.
    pub parser: ParserOptions,
}

impl ServerConfig {
    /// Defaults: PIPELINING, 8BITMIME, SMTPUTF8, CHUNKING, DSN,
    /// ENHANCEDSTATUSCODES and SIZE without a limit; 100 recipients; 10 errors;
    /// no STARTTLS and no AUTH until configured.
    pub fn new(hostname: Domain<'static>) -> Self {
        ServerConfig {
            hostname,
            greeting: Cow::Borrowed("ESMTP ready"),
            max_message_size: None,
            max_recipients: 100,
            max_errors: 10,
            max_long_lines: 3,
            max_received: Some(100),
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            chunking: true,
            dsn: true,
            enhanced_status_codes: true,
            starttls: false,
            auth_mechanisms: Vec::new(),
            allow_auth_without_tls: false,
            require_auth: false,
            lmtp: false,
            decide_data: false,
            requiretls: false,
            parser: ParserOptions::STRICT,
        }
    }

    /// True when AUTH may be offered and used on a connection in this TLS state.
    pub(crate) fn auth_offered(&self, tls: bool) -> bool {
        !self.auth_mechanisms.is_empty() && (tls || self.allow_auth_without_tls)
    }

    /// The EHLO reply's capabilities for a connection in this TLS state.
    pub(crate) fn capabilities(&self, tls: bool) -> Capabilities<'_> {
        let mut caps = Capabilities::default();
        caps.greeting = Cow::Borrowed(self.hostname.as_str());
        caps.pipelining = self.pipelining;
        caps.size = Some(self.max_message_size);
        caps.eight_bit_mime = self.eight_bit_mime;
        caps.smtputf8 = self.smtputf8;
        caps.chunking = self.chunking;
        caps.binary_mime = self.chunking;
        caps.dsn = self.dsn;
        caps.enhanced_status_codes = self.enhanced_status_codes;
        caps.starttls = self.starttls && !tls;
        caps.requiretls = self.requiretls && tls;
        caps.help = true;
        if self.auth_offered(tls) {
            caps.auth = Some(self.auth_mechanisms.clone());
        }
        caps
    }
}
