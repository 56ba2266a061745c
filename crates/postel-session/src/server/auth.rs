//! The AUTH exchange (RFC 4954): mechanism checks, the 334 challenges of
//! PLAIN and LOGIN, and the credentials handed to the application.

use std::ops::ControlFlow;

use postel_proto::types::{InitialResponse, Reply, ReplyCode, SaslResponse};
use postel_proto::{CommandError, Status};

use super::{AuthRequest, Event, Pending, Phase, SaslStep, Server, reply};
use crate::sasl::{self, Credentials};

impl Server {
    /// Reads the client's next line of an AUTH exchange.
    pub(super) fn poll_sasl(&mut self) -> ControlFlow<Option<Event>> {
        let Phase::Sasl(step, mechanism) = &self.phase else {
            return ControlFlow::Continue(());
        };
        let (step, mechanism) = (step.clone(), *mechanism);
        match postel_proto::codec::parse_sasl_line(self.input.unread(), &self.config.parser) {
            Ok(Status::Incomplete) => return ControlFlow::Break(None),
            Ok(Status::Complete { value, consumed }) => {
                let value = value.into_owned();
                self.input.consume(consumed);
                if let Some(event) = self.sasl_line(step, mechanism, value) {
                    return ControlFlow::Break(Some(event));
                }
            }
            Err(bad) => {
                self.drop_input(&bad);
                self.phase = Phase::Command;
                let answer = match bad.error {
                    CommandError::Line(postel_proto::LineError::TooLong { .. }) => {
                        Reply::SASL_LINE_TOO_LONG
                    }
                    CommandError::Line(_) => bad.error.reply(),
                    _ => reply(501, Some((5, 5, 2)), "Cannot decode response"),
                };
                self.error(&answer);
            }
        }
        ControlFlow::Continue(())
    }

    pub(super) fn auth(
        &mut self,
        mechanism: &str,
        initial: Option<InitialResponse<'static>>,
    ) -> Option<Event> {
        if self.config.auth_mechanisms.is_empty() {
            self.error(&Reply::NOT_IMPLEMENTED);
            return None;
        }
        if !self.tls && !self.config.allow_auth_without_tls {
            // RFC 4954 section 6: 538 when the mechanism needs encryption.
            self.send(&reply(
                538,
                Some((5, 7, 11)),
                "Encryption required for requested authentication mechanism",
            ));
            return None;
        }
        if self.helo.is_none() || !self.extended {
            self.error(&reply(503, Some((5, 5, 1)), "Send EHLO first"));
            return None;
        }
        if self.authenticated {
            self.error(&reply(503, Some((5, 5, 1)), "Already authenticated"));
            return None;
        }
        if self.transaction.is_some() {
            self.error(&reply(
                503,
                Some((5, 5, 1)),
                "AUTH not allowed during a mail transaction",
            ));
            return None;
        }
        let offered = self.config.auth_mechanisms.iter().find(|m| m.is(mechanism));
        let name: &'static str = match offered {
            Some(m) if m.is("PLAIN") => "PLAIN",
            Some(m) if m.is("LOGIN") => "LOGIN",
            _ => {
                self.send(&reply(
                    504,
                    Some((5, 5, 4)),
                    "Unrecognized authentication type",
                ));
                return None;
            }
        };
        let step = if name == "PLAIN" {
            SaslStep::Plain
        } else {
            SaslStep::LoginUser
        };
        match initial {
            Some(InitialResponse::Base64(data)) => {
                let line = SaslResponse::Data(data);
                self.sasl_line(step, name, line)
            }
            Some(InitialResponse::Empty) => {
                let line = SaslResponse::Data(postel_proto::types::Secret::new(
                    std::borrow::Cow::default(),
                ));
                self.sasl_line(step, name, line)
            }
            None => {
                self.challenge(&step);
                self.phase = Phase::Sasl(step, name);
                None
            }
        }
    }

    fn challenge(&mut self, step: &SaslStep) {
        let text = match step {
            SaslStep::Plain => None,
            SaslStep::LoginUser => Some("VXNlcm5hbWU6"), // "Username:"
            SaslStep::LoginPassword(_) => Some("UGFzc3dvcmQ6"), // "Password:"
        };
        let code = ReplyCode::AUTH_CONTINUE;
        // An empty challenge is `334 ` and CRLF, with the space, as RFC 4954
        // section 4 shows it.
        let r =
            Reply::new(code, None, text.unwrap_or("")).unwrap_or_else(|_| Reply::code_only(code));
        self.send(&r);
    }

    fn sasl_line(
        &mut self,
        step: SaslStep,
        mechanism: &'static str,
        line: SaslResponse<'static>,
    ) -> Option<Event> {
        self.phase = Phase::Command;
        let data = match line {
            SaslResponse::Cancel => {
                self.send(&reply(501, Some((5, 0, 0)), "Authentication cancelled"));
                return None;
            }
            SaslResponse::Data(d) => d,
        };
        let Some(decoded) = sasl::decode_base64(data.expose()) else {
            self.error(&reply(501, Some((5, 5, 2)), "Cannot decode response"));
            return None;
        };
        let credentials = match step {
            // An empty message (`AUTH PLAIN =`, or an empty line after the
            // 334) is a PLAIN message without credentials (RFC 4954 section 4:
            // `=` is an empty initial response, not a request for a
            // challenge): it fails below and ends the exchange.
            SaslStep::Plain => sasl::parse_plain(&decoded),
            SaslStep::LoginUser => {
                let Ok(user) = String::from_utf8(decoded) else {
                    self.error(&reply(501, Some((5, 5, 2)), "Cannot decode response"));
                    return None;
                };
                let next = SaslStep::LoginPassword(user);
                self.challenge(&next);
                self.phase = Phase::Sasl(next, mechanism);
                return None;
            }
            SaslStep::LoginPassword(user) => String::from_utf8(decoded).ok().map(|p| Credentials {
                authorization_id: String::new(),
                authentication_id: user,
                password: postel_proto::types::Secret::new(p),
            }),
        };
        let Some(credentials) = credentials else {
            self.error(&reply(
                501,
                Some((5, 5, 2)),
                "Malformed authentication response",
            ));
            return None;
        };
        let token = self.ask(Pending::Auth);
        Some(Event::Auth(AuthRequest {
            mechanism,
            credentials,
            token,
        }))
    }
}
