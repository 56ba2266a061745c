//! The bit sets negotiated at the start of a milter session: the actions a
//! filter may take at the end of a message, and the protocol steps it may
//! ask the MTA to leave out or not wait for.

use std::fmt;

macro_rules! bit_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$cdoc:meta])* $c:ident = $v:expr,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u32);

        impl $name {
            $($(#[$cdoc])* pub const $c: Self = Self($v);)*
            /// No bit set.
            pub const NONE: Self = Self(0);
            /// Every bit this type names.
            pub const ALL: Self = Self(0 $(| $v)*);

            /// The set from its wire form, keeping bits this type does not name
            /// (so a filter that asks for one is seen to ask for it).
            pub const fn from_bits(bits: u32) -> Self {
                Self(bits)
            }

            /// The wire form.
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// True when every bit of `other` is set here.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Both sets.
            #[must_use]
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// This set without the bits of `other`.
            #[must_use]
            pub const fn without(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, other: Self) -> Self {
                self.union(other)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut set = f.debug_set();
                $(if self.contains(Self::$c) { set.entry(&stringify!($c)); })*
                let unnamed = self.0 & !Self::ALL.0;
                if unnamed != 0 {
                    set.entry(&format_args!("{unnamed:#x}"));
                }
                set.finish()
            }
        }
    };
}

bit_set! {
    /// What a filter may change at the end of a message (the `SMFIF_` bits).
    Actions {
        /// Add header fields.
        ADD_HEADERS = 0x01,
        /// Replace the body.
        CHANGE_BODY = 0x02,
        /// Add recipients.
        ADD_RECIPIENT = 0x04,
        /// Remove recipients.
        DELETE_RECIPIENT = 0x08,
        /// Change or delete header fields (and insert them).
        CHANGE_HEADERS = 0x10,
        /// Hold the message in quarantine.
        QUARANTINE = 0x20,
        /// Change the envelope sender.
        CHANGE_SENDER = 0x40,
        /// Add recipients with ESMTP parameters.
        ADD_RECIPIENT_WITH_PARAMETERS = 0x80,
        /// Choose the macros sent at each stage.
        SET_SYMBOL_LIST = 0x100,
    }
}

bit_set! {
    /// Protocol steps (the `SMFIP_` bits): events a filter does not want
    /// (`NO_*`), events it will not answer (`NO_REPLY_*`), and options.
    Steps {
        /// No connect event.
        NO_CONNECT = 0x01,
        /// No HELO event.
        NO_HELO = 0x02,
        /// No MAIL event.
        NO_MAIL = 0x04,
        /// No RCPT events.
        NO_RCPT = 0x08,
        /// No body chunks.
        NO_BODY = 0x10,
        /// No header events.
        NO_HEADERS = 0x20,
        /// No end-of-headers event.
        NO_END_OF_HEADERS = 0x40,
        /// Header events are not answered.
        NO_REPLY_HEADER = 0x80,
        /// No events for unknown commands.
        NO_UNKNOWN = 0x100,
        /// No DATA event.
        NO_DATA = 0x200,
        /// The filter may answer a body chunk with "skip the rest of the body".
        SKIP = 0x400,
        /// Recipients the MTA refused are sent too.
        REJECTED_RECIPIENTS = 0x800,
        /// The connect event is not answered.
        NO_REPLY_CONNECT = 0x1000,
        /// The HELO event is not answered.
        NO_REPLY_HELO = 0x2000,
        /// The MAIL event is not answered.
        NO_REPLY_MAIL = 0x4000,
        /// RCPT events are not answered.
        NO_REPLY_RCPT = 0x8000,
        /// The DATA event is not answered.
        NO_REPLY_DATA = 0x1_0000,
        /// Unknown-command events are not answered.
        NO_REPLY_UNKNOWN = 0x2_0000,
        /// The end-of-headers event is not answered.
        NO_REPLY_END_OF_HEADERS = 0x4_0000,
        /// Body chunks are not answered.
        NO_REPLY_BODY = 0x8_0000,
        /// Header values are sent with their leading white space.
        HEADER_LEADING_SPACE = 0x10_0000,
    }
}

/// The stages a filter may choose macros for with
/// [`Actions::SET_SYMBOL_LIST`] (the `SMFIM_` numbers), in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Sent with the connect event.
    Connect,
    /// With HELO.
    Helo,
    /// With MAIL.
    Mail,
    /// With each RCPT.
    Rcpt,
    /// With DATA.
    Data,
    /// With the end of the message.
    EndOfMessage,
    /// With the end of the headers.
    EndOfHeaders,
}

impl Stage {
    /// Every stage, indexed by its wire number.
    pub const ALL: [Stage; 7] = [
        Stage::Connect,
        Stage::Helo,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::EndOfMessage,
        Stage::EndOfHeaders,
    ];

    /// The stage of a wire number.
    pub fn from_wire(n: u32) -> Option<Stage> {
        Stage::ALL.get(usize::try_from(n).ok()?).copied()
    }

    /// The position in [`Stage::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The command octet macros for this stage are sent ahead of.
    pub(crate) fn command(self) -> u8 {
        match self {
            Stage::Connect => b'C',
            Stage::Helo => b'H',
            Stage::Mail => b'M',
            Stage::Rcpt => b'R',
            Stage::Data => b'T',
            Stage::EndOfMessage => b'E',
            Stage::EndOfHeaders => b'N',
        }
    }

    /// The macros Postfix sends at this stage by default (its
    /// `milter_*_macros` settings), which filters are written to expect.
    pub fn default_macros(self) -> &'static [&'static str] {
        match self {
            Stage::Connect => &["j", "{daemon_name}", "{daemon_addr}", "v", "_"],
            Stage::Helo => &[
                "{tls_version}",
                "{cipher}",
                "{cipher_bits}",
                "{cert_subject}",
                "{cert_issuer}",
            ],
            Stage::Mail => &[
                "i",
                "{auth_type}",
                "{auth_authen}",
                "{auth_author}",
                "{mail_addr}",
                "{mail_host}",
                "{mail_mailer}",
            ],
            Stage::Rcpt => &["i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"],
            Stage::Data | Stage::EndOfMessage | Stage::EndOfHeaders => &["i"],
        }
    }
}
