//! Size limits and the parser's named leniencies.

/// Size limits, in octets. Defaults are the minimums of RFC 5321 section 4.5.3.1,
/// which a receiver may raise but a sender must not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Local part of a mailbox: 64 (section 4.5.3.1.1). Raising it past 255
    /// has no effect: no `LocalPart` is longer.
    pub local_part: usize,
    /// Domain: 255 (section 4.5.3.1.2), which is also the most a `Domain`
    /// holds (RFC 1035 section 2.3.4): it can only be lowered.
    pub domain: usize,
    /// Reverse- or forward-path including the angle brackets: 256 (section 4.5.3.1.3).
    pub path: usize,
    /// Command line including CRLF: 512 (section 4.5.3.1.4). Parameters from
    /// extensions may need more: RFC 1869 section 4.1.2 lets each extension add to
    /// it, so servers that advertise several commonly allow 2048 or more.
    pub command_line: usize,
    /// Reply line including the code and CRLF: 512 (section 4.5.3.1.5).
    pub reply_line: usize,
    /// Text line of a DATA body including CRLF: 1000 (section 4.5.3.1.6).
    pub text_line: usize,
    /// A client line during an AUTH exchange: 12 288. RFC 4954 section 4 requires
    /// at least 12 288 octets for a SASL response, since tokens such as OAuth bearer
    /// tokens exceed the 512 of a command line.
    pub sasl_line: usize,
}

impl Limits {
    /// The limits of RFC 5321 section 4.5.3.1 and RFC 4954 section 4.
    pub const DEFAULT: Limits = Limits {
        local_part: 64,
        domain: 255,
        path: 256,
        command_line: 512,
        reply_line: 512,
        text_line: 1000,
        sasl_line: 12_288,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Options for the command and reply parsers. Strict by default; each leniency is
/// named `allow_*` and says which real peers need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParserOptions {
    /// Size limits.
    pub limits: Limits,
    /// Accept a bare LF as a line ending. RFC 5321 section 2.3.8 requires CRLF; the
    /// ambiguity of bare LF between peers is what SMTP smuggling (CVE-2023-51766)
    /// exploits. Some scripts written against lenient servers send it. Default off.
    pub allow_bare_lf: bool,
    /// Accept `MAIL FROM: <a@b>` with a space after the colon. RFC 5321 section 4.1.2
    /// forbids it, but some older clients and scripts send it and Postfix accepts it
    /// by default (`strict_rfc821_envelopes = no`). Default off.
    pub allow_space_after_colon: bool,
    /// Accept a HELO/EHLO argument that is neither a domain nor an address literal,
    /// such as a Windows machine name with an underscore or a bare IP address
    /// written as a domain. RFC 5321 section 4.1.1.1 requires one of the two, but
    /// the name is informational and many desktop clients send their `NetBIOS` name.
    /// Default off.
    pub allow_nonstandard_helo: bool,
}

impl ParserOptions {
    /// RFC 5321 as written: CRLF only, no extra spaces, standard HELO names.
    pub const STRICT: ParserOptions = ParserOptions {
        limits: Limits::DEFAULT,
        allow_bare_lf: false,
        allow_space_after_colon: false,
        allow_nonstandard_helo: false,
    };

    /// What a public MX meets from real clients: a space after `FROM:`/`TO:` and
    /// nonstandard HELO names are accepted; bare LF stays refused.
    pub const INTEROPERABLE: ParserOptions = ParserOptions {
        limits: Limits::DEFAULT,
        allow_bare_lf: false,
        allow_space_after_colon: true,
        allow_nonstandard_helo: true,
    };
}

impl Default for ParserOptions {
    fn default() -> Self {
        ParserOptions::STRICT
    }
}
