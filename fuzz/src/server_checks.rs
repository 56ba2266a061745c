//! The property the server fuzz target checks; also run by
//! crates/postel-session/tests/corpus.rs over the committed inputs.

use postel_proto::codec::parse_reply;
use postel_proto::{ParserOptions, Status};

/// The server session: the input, cut into pieces by its own octets, drives a
/// server whose decisions are taken from the input too, along with shutdowns
/// and TLS handshakes. It must never panic, every octet it sends must be a
/// well-formed reply, and once closed it must stay closed and silent.
pub fn check_server(data: &[u8]) {
    use postel_proto::types::{Domain, Mechanism, Reply, ReplyCode};
    use postel_session::server::{Event, Server, ServerConfig};

    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let Ok(host) = Domain::try_from("fuzz.example") else {
        return;
    };
    let mut config = ServerConfig::new(host);
    config.starttls = selector & 1 != 0;
    config.auth_mechanisms = vec![Mechanism::PLAIN, Mechanism::LOGIN];
    config.allow_auth_without_tls = selector & 2 != 0;
    config.max_message_size = (selector & 4 != 0).then_some(64);
    config.lmtp = selector & 8 != 0;
    config.decide_data = selector & 16 != 0;
    config.max_recipients = 3;
    config.max_errors = 1 + usize::from(selector >> 4);
    let mut server = Server::new(config);
    let refusal = Reply::new(ReplyCode::try_from(550).expect("550"), None, "no").expect("reply");
    let mut out = server.transmit();
    let mut decisions = 0u32;
    let mut pos = 0;
    while pos < input.len() {
        let n = usize::from(input[pos] % 23) + 1;
        let chunk = &input[pos..(pos + n).min(input.len())];
        pos += n;
        let was_closed = server.is_closed();
        server.receive(chunk);
        while let Some(event) = server.poll() {
            decisions += 1;
            let accept = (u32::from(selector) >> (decisions % 8)) & 1 == 0;
            let answered = match event {
                Event::Mail(m) if accept => m.accept(&mut server).is_ok(),
                Event::Mail(m) => m.reject(&mut server, refusal.clone()).is_ok(),
                Event::Rcpt(r) if accept => r.accept(&mut server).is_ok(),
                Event::Rcpt(r) => r.reject(&mut server, refusal.clone()).is_ok(),
                Event::Data(d) if accept => d.accept(&mut server).is_ok(),
                Event::Data(d) => d.reject(&mut server, refusal.clone()).is_ok(),
                Event::Message(m) if accept => m.accept(&mut server).is_ok(),
                Event::Message(m) => m.reject(&mut server, refusal.clone()).is_ok(),
                Event::LmtpMessage(m) if accept => m.accept(&mut server).is_ok(),
                Event::LmtpMessage(m) => m.reject(&mut server, refusal.clone()).is_ok(),
                Event::Auth(a) if accept => a.accept(&mut server).is_ok(),
                Event::Auth(a) => a.reject(&mut server, refusal.clone()).is_ok(),
                Event::StartTls => {
                    server.tls_established();
                    true
                }
                _ => true,
            };
            assert!(answered, "a fresh decision is always pending");
        }
        if decisions % 97 == 96 {
            server.shutdown();
        }
        let sent = server.transmit();
        if was_closed {
            assert!(sent.is_empty(), "a closed server stays silent");
        }
        out.extend_from_slice(&sent);
    }
    let mut rest = &out[..];
    while !rest.is_empty() {
        match parse_reply(rest, &ParserOptions::STRICT) {
            Ok(Status::Complete { consumed, .. }) => rest = &rest[consumed..],
            other => panic!("server sent {:?}: {other:?}", String::from_utf8_lossy(rest)),
        }
    }
}
