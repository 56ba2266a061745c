//! Decisions the application owes the server: handles that must be answered
//! exactly once, with `accept` or `reject`, each taking the handle by value.

use postel_proto::types::{ForwardPath, MailParameters, RcptParameters, Reply, ReversePath};

use super::{Pending, Server};
use crate::sasl::Credentials;

/// Identifies one decision of one server, so that a handle cannot answer
/// another server or a question that is no longer open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) server: u64,
    pub(crate) seq: u64,
}

/// A handle answered at the wrong time: it is handed back, unused.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Misuse<T> {
    /// The handle, still unanswered (boxed: this path is rare, the handle large).
    pub handle: Box<T>,
    /// What was wrong.
    pub reason: MisuseReason,
}

/// Why a decision handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MisuseReason {
    /// The handle belongs to another server, or to a question the server no
    /// longer asks (the connection was shut down, or the handle is stale).
    #[error("this server is not waiting for this decision")]
    NotPending,
    /// A rejection must be a 4yz or 5yz reply.
    #[error("a rejection needs a 4yz or 5yz reply")]
    NotARejection,
}

macro_rules! decision {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* pub $field:ident : $ty:ty),* $(,)? }, $kind:ident) => {
        $(#[$doc])*
        #[must_use = "the server waits until the decision is answered with accept or reject"]
        #[derive(Debug)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
            pub(crate) token: Token,
        }

        impl $name {
            /// Accepts, with the standard positive reply.
            pub fn accept(self, server: &mut Server) -> Result<(), Misuse<Self>> {
                self.answer(server, None)
            }

            /// Accepts with a reply of the application's own, such as a 250 that
            /// names the queue id. A reply that is not 2yz is treated as a
            /// rejection would be: it must be 4yz or 5yz.
            pub fn accept_with(self, server: &mut Server, reply: Reply<'static>) -> Result<(), Misuse<Self>> {
                if reply.code().is_positive() {
                    self.answer(server, Some(Ok(reply)))
                } else {
                    self.reject(server, reply)
                }
            }

            /// Refuses with `reply`, which must be 4yz (try later) or 5yz (never).
            pub fn reject(self, server: &mut Server, reply: Reply<'static>) -> Result<(), Misuse<Self>> {
                if !(reply.code().is_transient() || reply.code().is_permanent()) {
                    return Err(Misuse { handle: Box::new(self), reason: MisuseReason::NotARejection });
                }
                self.answer(server, Some(Err(reply)))
            }

            fn answer(
                self,
                server: &mut Server,
                reply: Option<Result<Reply<'static>, Reply<'static>>>,
            ) -> Result<(), Misuse<Self>> {
                if !server.is_pending(Pending::$kind, self.token) {
                    return Err(Misuse { handle: Box::new(self), reason: MisuseReason::NotPending });
                }
                server.decide(Pending::$kind, reply);
                Ok(())
            }
        }
    };
}

decision!(
    /// MAIL FROM: may this sender start a transaction?
    MailRequest {
        /// The reverse path.
        pub from: ReversePath<'static>,
        /// Its parameters, already checked against what the server advertises.
        pub params: MailParameters<'static>,
    },
    Mail
);

decision!(
    /// RCPT TO: is this recipient accepted? Relay policy belongs here.
    RcptRequest {
        /// The forward path.
        pub to: ForwardPath<'static>,
        /// Its parameters (DSN's NOTIFY and ORCPT, or others).
        pub params: RcptParameters<'static>,
    },
    Rcpt
);

decision!(
    /// DATA, before its 354: may this transaction send its message? Asked
    /// only with [`ServerConfig::decide_data`](super::ServerConfig::decide_data).
    DataRequest {},
    Data
);

decision!(
    /// The end of a message: accept it (after storing it durably) or refuse it.
    MessageRequest {
        /// Octets of the message body received.
        pub size: u64,
        /// The recipients accepted in this transaction.
        pub recipients: usize,
        /// `Received` fields in the message's header section: its hop count.
        pub received: usize,
        /// The `Delivered-To` values of its header section, for a final
        /// delivery agent's loop check (at most 64).
        pub delivered_to: Vec<String>,
    },
    Message
);

decision!(
    /// LMTP's end of a message, for one accepted recipient (RFC 2033 section
    /// 4.2): accept once the message is delivered for this recipient, or
    /// refuse for this recipient alone. The server asks once per accepted
    /// recipient, in RCPT order, and sends each answer as its reply.
    LmtpMessageRequest {
        /// The recipient this decision is for.
        pub recipient: ForwardPath<'static>,
        /// Its position among the accepted recipients, from 0.
        pub index: usize,
        /// Octets of the message body received.
        pub size: u64,
        /// `Received` fields in the message's header section.
        pub received: usize,
        /// The `Delivered-To` values of its header section (at most 64).
        pub delivered_to: Vec<String>,
    },
    LmtpMessage
);

decision!(
    /// AUTH: are these credentials good?
    AuthRequest {
        /// The SASL mechanism used.
        pub mechanism: &'static str,
        /// What the client presented.
        pub credentials: Credentials,
    },
    Auth
);
