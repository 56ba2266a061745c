use crate::flags::{Actions, Steps};

/// What went wrong with a filter: it broke the protocol, or asked for what
/// this MTA did not offer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MilterError {
    /// A frame's length is over the limit.
    #[error("frame of {len} octets from the filter is over the {max}-octet limit")]
    FrameTooLong {
        /// The length the frame announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame to send would not fit the four-octet length.
    #[error("frame too large to send")]
    TooLarge,
    /// A frame whose data does not read as its command says.
    #[error("malformed frame from the filter: {0}")]
    Malformed(&'static str),
    /// A response code the protocol does not have.
    #[error("unknown response {:?} from the filter", char::from(*.0))]
    UnknownResponse(u8),
    /// A response that does not fit what was asked.
    #[error("unexpected response from the filter: {0}")]
    Unexpected(&'static str),
    /// The filter speaks a protocol version this side does not.
    #[error("filter speaks milter protocol version {0}, which is not 2 to 6")]
    Version(u32),
    /// The filter asked for actions that were not offered.
    #[error("filter asks for actions {asked:?} beyond those offered")]
    ActionsNotOffered {
        /// What it asked for beyond the offer.
        asked: Actions,
    },
    /// The filter asked for protocol steps that were not offered.
    #[error("filter asks for protocol steps {asked:?} beyond those offered")]
    StepsNotOffered {
        /// What it asked for beyond the offer.
        asked: Steps,
    },
    /// The filter made a change it had not negotiated.
    #[error("filter made a change it did not negotiate ({0:?})")]
    ActionNotNegotiated(Actions),
    /// A value to send has a NUL in it.
    #[error("{0} contains a NUL octet")]
    Nul(&'static str),
    /// The session was used out of order (a bug in the caller).
    #[error("milter session used out of order: {0}")]
    Misuse(&'static str),
}
