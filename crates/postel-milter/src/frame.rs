//! Frames: a four-octet big-endian length, a command octet, its data.
//!
//! [`encode`] writes what the MTA sends; [`Decoder`] takes what a filter
//! sends, a frame at a time, with a size limit, into typed [`Response`]s.

use postel_proto::types::Reply;

use crate::error::MilterError;
use crate::flags::{Actions, Stage, Steps};
use crate::types::Change;

/// The largest body chunk in one frame (the protocol's `MILTER_CHUNK_SIZE`).
pub const MAX_BODY_CHUNK: usize = 65_535;

/// The largest frame a filter may send by default: a replaced body chunk of
/// [`MAX_BODY_CHUNK`] octets and room to spare, as libmilter's own limit.
pub const DEFAULT_MAX_FRAME: usize = 2 * MAX_BODY_CHUNK;

/// Where a client connected from, as the connect event carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectAddress {
    /// An IPv4 or IPv6 address and port.
    Inet(std::net::SocketAddr),
    /// A local socket, by path.
    Unix(String),
    /// Not known (the `U` family).
    Unknown,
}

/// A frame the MTA sends, borrowing its data.
#[derive(Clone, Debug)]
pub(crate) enum Command<'a> {
    Negotiate {
        version: u32,
        actions: Actions,
        steps: Steps,
    },
    Macros {
        stage: Stage,
        pairs: &'a [(&'a str, &'a str)],
    },
    Connect {
        hostname: &'a str,
        address: &'a ConnectAddress,
    },
    Helo(&'a str),
    Mail(&'a [&'a str]),
    Rcpt(&'a [&'a str]),
    Data,
    Header {
        name: &'a [u8],
        value: &'a [u8],
    },
    EndOfHeaders,
    Body(&'a [u8]),
    EndOfBody,
    Unknown(&'a [u8]),
    Abort,
    Quit,
    QuitNoClose,
}

impl Command<'_> {
    /// The command octet.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Command::Negotiate { .. } => b'O',
            Command::Macros { .. } => b'D',
            Command::Connect { .. } => b'C',
            Command::Helo(_) => b'H',
            Command::Mail(_) => b'M',
            Command::Rcpt(_) => b'R',
            Command::Data => b'T',
            Command::Header { .. } => b'L',
            Command::EndOfHeaders => b'N',
            Command::Body(_) => b'B',
            Command::EndOfBody => b'E',
            Command::Unknown(_) => b'U',
            Command::Abort => b'A',
            Command::Quit => b'Q',
            Command::QuitNoClose => b'K',
        }
    }
}

/// Appends `command` as one frame to `out`. Strings are sent NUL-terminated,
/// so one with a NUL in it is refused: it would end early on the other side.
pub(crate) fn encode(command: &Command<'_>, out: &mut Vec<u8>) -> Result<(), MilterError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(command.code());
    let written = write_data(command, out);
    if let Err(e) = written {
        out.truncate(start);
        return Err(e);
    }
    let len = u32::try_from(out.len() - start - 4).map_err(|_| MilterError::TooLarge)?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn write_data(command: &Command<'_>, out: &mut Vec<u8>) -> Result<(), MilterError> {
    match command {
        Command::Negotiate {
            version,
            actions,
            steps,
        } => {
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(&actions.bits().to_be_bytes());
            out.extend_from_slice(&steps.bits().to_be_bytes());
        }
        Command::Macros { stage, pairs } => {
            out.push(stage.command());
            for (name, value) in *pairs {
                c_string(name, "macro name", out)?;
                c_string(value, "macro value", out)?;
            }
        }
        Command::Connect { hostname, address } => {
            c_string(hostname, "client hostname", out)?;
            match address {
                ConnectAddress::Inet(a) => {
                    out.push(if a.is_ipv4() { b'4' } else { b'6' });
                    out.extend_from_slice(&a.port().to_be_bytes());
                    c_string(&a.ip().to_string(), "client address", out)?;
                }
                ConnectAddress::Unix(path) => {
                    out.push(b'L');
                    out.extend_from_slice(&[0, 0]);
                    c_string(path, "client socket", out)?;
                }
                ConnectAddress::Unknown => out.push(b'U'),
            }
        }
        Command::Helo(name) => c_string(name, "HELO name", out)?,
        Command::Mail(args) | Command::Rcpt(args) => {
            for a in *args {
                c_string(a, "address or parameter", out)?;
            }
        }
        Command::Header { name, value } => {
            c_bytes(name, "header name", out)?;
            c_bytes(value, "header value", out)?;
        }
        Command::Body(chunk) => out.extend_from_slice(chunk),
        Command::Unknown(line) => c_bytes(line, "unknown command", out)?,
        Command::Data
        | Command::EndOfHeaders
        | Command::EndOfBody
        | Command::Abort
        | Command::Quit
        | Command::QuitNoClose => {}
    }
    Ok(())
}

fn c_string(s: &str, what: &'static str, out: &mut Vec<u8>) -> Result<(), MilterError> {
    c_bytes(s.as_bytes(), what, out)
}

fn c_bytes(s: &[u8], what: &'static str, out: &mut Vec<u8>) -> Result<(), MilterError> {
    if s.contains(&0) {
        return Err(MilterError::Nul(what));
    }
    out.extend_from_slice(s);
    out.push(0);
    Ok(())
}

/// A frame a filter sent, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The answer to option negotiation.
    Negotiate {
        /// The filter's protocol version.
        version: u32,
        /// The actions it wants.
        actions: Actions,
        /// The protocol steps it wants.
        steps: Steps,
        /// Macro names per stage it chose (with [`Actions::SET_SYMBOL_LIST`]).
        macros: Vec<(Stage, Vec<String>)>,
    },
    /// Accept: no further events for this message (or connection).
    Accept,
    /// Go on.
    Continue,
    /// Accept and throw the message away.
    Discard,
    /// Refuse (the MTA's own 5xx).
    Reject,
    /// Refuse for now (the MTA's own 4xx).
    Tempfail,
    /// Refuse with this reply (4xx or 5xx).
    ReplyCode(Reply<'static>),
    /// Still working: restart the time-out.
    Progress,
    /// Send no more body chunks.
    Skip,
    /// Hold the message, for this reason.
    Quarantine(String),
    /// The filter is shutting down: close the SMTP session with 421.
    Shutdown,
    /// Fail the SMTP connection.
    ConnectionFailure,
    /// A chunk of the replacement body.
    ReplaceBody(Vec<u8>),
    /// A header, recipient or sender change, and the action it needs.
    Change {
        /// The change.
        change: Change,
        /// The action that must have been negotiated for it.
        needs: Actions,
    },
}

/// Splits a byte stream from a filter into frames.
#[derive(Debug)]
pub struct Decoder {
    buffer: Vec<u8>,
    start: usize,
    max_frame: usize,
}

impl Decoder {
    /// A decoder refusing frames longer than `max_frame` octets.
    pub fn new(max_frame: usize) -> Self {
        Decoder {
            buffer: Vec::new(),
            start: 0,
            max_frame,
        }
    }

    /// Octets read from the filter.
    pub fn extend(&mut self, input: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(input);
    }

    /// Octets received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next whole frame, decoded; `Ok(None)` until one has arrived. An
    /// oversized frame is refused as soon as its length is read.
    pub fn next_response(&mut self) -> Result<Option<Response>, MilterError> {
        let pending = &self.buffer[self.start..];
        let Some(len) = pending.first_chunk::<4>().map(|l| u32::from_be_bytes(*l)) else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| MilterError::TooLarge)?;
        if len == 0 {
            return Err(MilterError::Malformed("empty frame"));
        }
        if len > self.max_frame {
            return Err(MilterError::FrameTooLong {
                len,
                max: self.max_frame,
            });
        }
        let Some(frame) = pending.get(4..4 + len) else {
            return Ok(None);
        };
        let response = decode(frame[0], &frame[1..])?;
        self.start += 4 + len;
        if self.start > 64 * 1024 && self.start * 2 > self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(response))
    }
}

/// Reads the data of one response frame.
fn decode(code: u8, data: &[u8]) -> Result<Response, MilterError> {
    let mut r = Fields(data);
    let response = match code {
        b'O' => {
            let version = r.u32("negotiation version")?;
            let actions = Actions::from_bits(r.u32("negotiation actions")?);
            let steps = Steps::from_bits(r.u32("negotiation steps")?);
            let mut macros = Vec::new();
            while !r.0.is_empty() {
                let stage = r.u32("macro stage")?;
                let stage = Stage::from_wire(stage).ok_or(MilterError::Malformed("macro stage"))?;
                let names = r.string("macro list")?;
                macros.push((stage, names.split_whitespace().map(str::to_owned).collect()));
            }
            return Ok(Response::Negotiate {
                version,
                actions,
                steps,
                macros,
            });
        }
        b'a' => Response::Accept,
        b'c' => Response::Continue,
        b'd' => Response::Discard,
        b'r' => Response::Reject,
        b't' => Response::Tempfail,
        b'p' => Response::Progress,
        b's' => Response::Skip,
        b'4' => Response::Shutdown,
        b'f' => Response::ConnectionFailure,
        b'y' => Response::ReplyCode(reply_code(&r.string("reply text")?)?),
        b'q' => Response::Quarantine(r.string("quarantine reason")?),
        b'+' => Response::Change {
            change: Change::AddRecipient {
                address: r.string("recipient")?,
                parameters: None,
            },
            needs: Actions::ADD_RECIPIENT,
        },
        b'2' => Response::Change {
            change: Change::AddRecipient {
                address: r.string("recipient")?,
                parameters: r.optional_string("recipient parameters")?,
            },
            needs: Actions::ADD_RECIPIENT_WITH_PARAMETERS,
        },
        b'-' => Response::Change {
            change: Change::DeleteRecipient(r.string("recipient")?),
            needs: Actions::DELETE_RECIPIENT,
        },
        b'e' => Response::Change {
            change: Change::ChangeSender {
                address: r.string("sender")?,
                parameters: r.optional_string("sender parameters")?,
            },
            needs: Actions::CHANGE_SENDER,
        },
        b'b' => return Ok(Response::ReplaceBody(data.to_vec())),
        b'h' => Response::Change {
            change: Change::AddHeader {
                name: r.string("header name")?,
                value: r.string("header value")?,
            },
            needs: Actions::ADD_HEADERS,
        },
        b'i' | b'm' => {
            let index = r.u32("header index")?;
            let name = r.string("header name")?;
            let value = r.string("header value")?;
            if code == b'i' {
                Response::Change {
                    change: Change::InsertHeader { index, name, value },
                    needs: Actions::ADD_HEADERS,
                }
            } else {
                Response::Change {
                    change: Change::ChangeHeader { index, name, value },
                    needs: Actions::CHANGE_HEADERS,
                }
            }
        }
        other => return Err(MilterError::UnknownResponse(other)),
    };
    if !r.0.is_empty() {
        return Err(MilterError::Malformed("data after the last field"));
    }
    Ok(response)
}

/// A filter's own SMTP reply (`smfi_setreply`): one or more lines of
/// `4xx`/`5xx`, CR LF between them, the last without.
fn reply_code(text: &str) -> Result<Reply<'static>, MilterError> {
    let mut wire = text.trim_end_matches(['\r', '\n']).to_owned();
    wire.push_str("\r\n");
    let parsed =
        postel_proto::codec::parse_reply(wire.as_bytes(), &postel_proto::ParserOptions::STRICT)
            .ok()
            .and_then(postel_proto::Status::complete)
            .filter(|(_, used)| *used == wire.len())
            .map(|(reply, _)| reply.into_owned())
            .ok_or(MilterError::Malformed("reply text"))?;
    if !matches!(parsed.code().get(), 400..=599) {
        return Err(MilterError::Malformed("reply code outside 4xx and 5xx"));
    }
    Ok(parsed)
}

/// Reads fields off a frame's data.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u32(&mut self, what: &'static str) -> Result<u32, MilterError> {
        let (n, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or(MilterError::Malformed(what))?;
        self.0 = rest;
        Ok(u32::from_be_bytes(*n))
    }

    fn string(&mut self, what: &'static str) -> Result<String, MilterError> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(MilterError::Malformed(what))?;
        let s = std::str::from_utf8(&self.0[..end]).map_err(|_| MilterError::Malformed(what))?;
        self.0 = &self.0[end + 1..];
        Ok(s.to_owned())
    }

    fn optional_string(&mut self, what: &'static str) -> Result<Option<String>, MilterError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        self.string(what).map(|s| Some(s).filter(|s| !s.is_empty()))
    }
}
