//! Runnable examples of the Postel crates: `cargo run --example sink` and
//! `cargo run --example gateway`. The sink's session loop lives here so that
//! tests can drive it with real clients.

use std::io::{Read, Write};
use std::net::TcpStream;

use postel_proto::types::Domain;
use postel_session::server::{Event, Server, ServerConfig};

/// A message the sink received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The reverse path, as written in MAIL FROM.
    pub from: String,
    /// The forward paths, as written in RCPT TO.
    pub to: Vec<String>,
    /// The message, dot-stuffing removed.
    pub data: Vec<u8>,
}

fn misuse(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Serves one connection on blocking std I/O, accepting every message and
/// handing each to `deliver`.
pub fn sink_session(
    mut stream: TcpStream,
    mut deliver: impl FnMut(Received),
) -> std::io::Result<()> {
    let mut config = ServerConfig::new(Domain::try_from("sink.localhost").map_err(misuse)?);
    config.greeting = "postel sink ready".into();
    let mut server = Server::new(config);
    let mut buf = [0u8; 16 * 1024];
    let mut current = Received {
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
    };
    loop {
        stream.write_all(&server.transmit())?;
        if server.is_closed() {
            return Ok(());
        }
        stream.set_read_timeout(server.timeout())?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        server.receive(&buf[..n]);
        while let Some(event) = server.poll() {
            match event {
                Event::Mail(m) => {
                    current.from = m.from.to_string();
                    current.to.clear();
                    current.data.clear();
                    m.accept(&mut server).map_err(misuse)?;
                }
                Event::Rcpt(r) => {
                    current.to.push(r.to.to_string());
                    r.accept(&mut server).map_err(misuse)?;
                }
                Event::Body(data) => current.data.extend_from_slice(&data),
                Event::Message(m) => {
                    deliver(current.clone());
                    m.accept(&mut server).map_err(misuse)?;
                }
                Event::MessageAborted(_) | Event::Reset => current.data.clear(),
                _ => {}
            }
        }
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
