//! Client and server connected in memory, run through each scenario: the
//! whole dialogue with no sockets, step by step.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_proto::types::{
    Domain, ForwardPath, MailParameters, Mailbox, Mechanism, RcptParameters, Reply, ReplyCode,
    ReversePath, Secret,
};
use postel_session::client::{
    Client, ClientConfig, ClientError, ClientEvent, Message, MessageBody, Outcome, RecipientResult,
    TlsPolicy,
};
use postel_session::server::{Event, Server, ServerConfig};

fn domain(s: &'static str) -> Domain<'static> {
    Domain::try_from(s).unwrap()
}

fn to(addr: &'static str) -> (ForwardPath<'static>, RcptParameters<'static>) {
    (
        ForwardPath::Mailbox(Mailbox::try_from(addr).unwrap()),
        RcptParameters::default(),
    )
}

fn message(recipients: &[&'static str], data: &[u8]) -> Message {
    Message {
        from: ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap()),
        params: MailParameters::default(),
        recipients: recipients.iter().map(|r| to(r)).collect(),
        data: data.to_vec().into(),
    }
}

/// A client and a server with a policy: recipients whose local part starts
/// with "perm" get 550, with "temp" 450; bodies containing "REJECT" get 554.
struct Pair {
    client: Client,
    server: Server,
    bodies: Vec<Vec<u8>>,
    current: Vec<u8>,
    outcomes: Vec<Outcome>,
    failures: Vec<ClientError>,
    closed: bool,
    wire: Vec<u8>,
    /// The pieces a message in pieces is fed in, on each `BodyWanted`.
    pieces: Vec<Vec<u8>>,
}

impl Pair {
    fn new(client: ClientConfig, server: Server) -> Self {
        Pair {
            client: Client::new(client),
            server,
            bodies: Vec::new(),
            current: Vec::new(),
            outcomes: Vec::new(),
            failures: Vec::new(),
            closed: false,
            wire: Vec::new(),
            pieces: Vec::new(),
        }
    }

    fn run(&mut self) {
        for _ in 0..200 {
            let to_client = self.server.transmit();
            self.client.receive(&to_client);
            while let Some(e) = self.client.poll() {
                match e {
                    ClientEvent::StartTls => {
                        self.server.tls_established();
                        self.client.tls_established();
                    }
                    ClientEvent::Delivered(o) => self.outcomes.push(o),
                    ClientEvent::Failed(e) => self.failures.push(e),
                    ClientEvent::Closed => self.closed = true,
                    ClientEvent::BodyWanted => {
                        assert!(self.client.wants_body());
                        for piece in &self.pieces {
                            self.client.send_body(piece);
                        }
                        self.client.end_body();
                        assert!(!self.client.wants_body());
                    }
                    other => panic!("{other:?}"),
                }
            }
            let to_server = self.client.transmit();
            self.wire.extend_from_slice(&to_server);
            self.server.receive(&to_server);
            while let Some(e) = self.server.poll() {
                match e {
                    Event::Mail(m) => m.accept(&mut self.server).unwrap(),
                    Event::Rcpt(r) => {
                        let local =
                            r.to.mailbox()
                                .map(|m| m.local_part().as_str().to_owned())
                                .unwrap_or_default();
                        let code = if local.starts_with("perm") {
                            550
                        } else if local.starts_with("temp") {
                            450
                        } else {
                            0
                        };
                        if code == 0 {
                            r.accept(&mut self.server).unwrap();
                        } else {
                            let reply =
                                Reply::new(ReplyCode::try_from(code).unwrap(), None, "policy")
                                    .unwrap();
                            r.reject(&mut self.server, reply).unwrap();
                        }
                    }
                    Event::Body(b) => self.current.extend_from_slice(&b),
                    Event::Message(m) => {
                        let body = std::mem::take(&mut self.current);
                        if body.windows(6).any(|w| w == b"REJECT") {
                            let reply =
                                Reply::new(ReplyCode::try_from(554).unwrap(), None, "content")
                                    .unwrap();
                            m.reject(&mut self.server, reply).unwrap();
                        } else {
                            self.bodies.push(body);
                            m.accept(&mut self.server).unwrap();
                        }
                    }
                    Event::Auth(a) => {
                        if a.credentials.password.expose() == "secret" {
                            a.accept(&mut self.server).unwrap();
                        } else {
                            let reply =
                                Reply::new(ReplyCode::try_from(535).unwrap(), None, "bad").unwrap();
                            a.reject(&mut self.server, reply).unwrap();
                        }
                    }
                    _ => {}
                }
            }
            if self.client.is_closed() && self.server.transmit().is_empty() {
                return;
            }
        }
        panic!("the pair did not finish");
    }

    fn results(&self, i: usize) -> Vec<&'static str> {
        self.outcomes[i]
            .recipients
            .iter()
            .map(|(_, r)| match r {
                RecipientResult::Delivered(_) => "delivered",
                RecipientResult::Transient(_) => "transient",
                RecipientResult::Permanent(_) => "permanent",
            })
            .collect()
    }
}

fn server_config() -> ServerConfig {
    ServerConfig::new(domain("mx.example.net"))
}

fn client_config() -> ClientConfig {
    ClientConfig::new(domain("client.example.org"))
}

const BODY: &[u8] = b"Subject: test\r\n\r\n.leading dot\r\nbody\r\n";

fn deliver(server: ServerConfig, client: ClientConfig, messages: Vec<Message>) -> Pair {
    let mut pair = Pair::new(client, Server::new(server));
    for m in messages {
        pair.client.send(m);
    }
    pair.client.finish();
    pair.run();
    pair
}

#[test]
fn pipelined_with_chunking() {
    let p = deliver(
        server_config(),
        client_config(),
        vec![message(&["a@example.net", "b@example.net"], BODY)],
    );
    assert_eq!(p.results(0), ["delivered", "delivered"]);
    assert_eq!(p.bodies, [BODY]);
    let wire = String::from_utf8_lossy(&p.wire);
    assert!(
        wire.contains(&format!("BDAT {} LAST", BODY.len())),
        "{wire}"
    );
    assert!(
        wire.contains(&format!("SIZE={}", BODY.len())),
        "SIZE is declared when offered: {wire}"
    );
    assert!(p.closed && p.failures.is_empty());
}

#[test]
fn data_with_dot_stuffing_when_chunking_is_off() {
    let mut server = server_config();
    server.chunking = false;
    let p = deliver(
        server,
        client_config(),
        vec![message(&["a@example.net"], BODY)],
    );
    assert_eq!(p.bodies, [BODY]);
    assert!(String::from_utf8_lossy(&p.wire).contains("\r\n..leading dot\r\n"));
}

#[test]
fn without_pipelining_commands_go_one_by_one() {
    let mut server = server_config();
    server.pipelining = false;
    server.chunking = false;
    let p = deliver(
        server,
        client_config(),
        vec![message(
            &["a@example.net", "perm@example.net", "c@example.net"],
            BODY,
        )],
    );
    assert_eq!(p.results(0), ["delivered", "permanent", "delivered"]);
    assert_eq!(p.bodies.len(), 1);
}

#[test]
fn each_recipient_gets_its_own_result() {
    let p = deliver(
        server_config(),
        client_config(),
        vec![message(
            &["ok@example.net", "perm1@example.net", "temp1@example.net"],
            BODY,
        )],
    );
    assert_eq!(p.results(0), ["delivered", "permanent", "transient"]);
    let (_, RecipientResult::Transient(r)) = &p.outcomes[0].recipients[2] else {
        panic!()
    };
    assert_eq!(r.code().get(), 450, "the server's full reply is kept");
}

#[test]
fn no_recipient_accepted_then_the_next_message() {
    for chunking in [true, false] {
        let mut server = server_config();
        server.chunking = chunking;
        let p = deliver(
            server,
            client_config(),
            vec![
                message(&["perm@example.net", "temp@example.net"], BODY),
                message(&["ok@example.net"], BODY),
            ],
        );
        assert_eq!(
            p.results(0),
            ["permanent", "transient"],
            "chunking {chunking}"
        );
        assert_eq!(p.results(1), ["delivered"]);
        assert_eq!(p.bodies, [BODY], "only the second body was taken");
    }
}

#[test]
fn refused_message_gives_accepted_recipients_the_final_reply() {
    let p = deliver(
        server_config(),
        client_config(),
        vec![
            message(&["a@example.net", "perm@example.net"], b"REJECT me\r\n"),
            message(&["b@example.net"], BODY),
        ],
    );
    assert_eq!(p.results(0), ["permanent", "permanent"]);
    assert_eq!(p.results(1), ["delivered"]);
}

#[test]
fn starttls_when_offered() {
    let mut server = server_config();
    server.starttls = true;
    let p = deliver(
        server,
        client_config(),
        vec![message(&["a@example.net"], BODY)],
    );
    assert_eq!(p.results(0), ["delivered"]);
    let wire = String::from_utf8_lossy(&p.wire);
    assert_eq!(
        wire.matches("EHLO").count(),
        2,
        "EHLO again after TLS: {wire}"
    );
    assert!(p.server.is_tls());
}

#[test]
fn required_tls_that_is_not_offered_fails_transiently() {
    let mut client = client_config();
    client.tls = TlsPolicy::Required;
    let p = deliver(
        server_config(),
        client,
        vec![message(&["a@example.net"], BODY)],
    );
    assert_eq!(p.failures, [ClientError::TlsUnavailable]);
    assert_eq!(p.results(0), ["transient"]);
    assert!(p.bodies.is_empty());
}

#[test]
fn auth_plain_over_tls() {
    let mut server = server_config();
    server.auth_mechanisms = vec![Mechanism::PLAIN];
    server.require_auth = true;
    let mut client = client_config();
    client.auth = Some(("user".into(), Secret::new("secret".into())));
    let mut pair = Pair::new(client.clone(), Server::new_tls(server.clone()));
    pair.client.send(message(&["a@example.net"], BODY));
    pair.client.finish();
    pair.run();
    assert_eq!(pair.results(0), ["delivered"]);

    client.auth = Some(("user".into(), Secret::new("wrong".into())));
    let mut pair = Pair::new(client, Server::new_tls(server));
    pair.client.send(message(&["a@example.net"], BODY));
    pair.client.finish();
    pair.run();
    assert!(matches!(&pair.failures[..], [ClientError::Refused(r)] if r.code().get() == 535));
    assert_eq!(pair.results(0), ["permanent"]);
}

#[test]
fn several_messages_on_one_connection() {
    let messages = (0..5)
        .map(|i| message(&["a@example.net"], format!("message {i}\r\n").as_bytes()))
        .collect();
    let p = deliver(server_config(), client_config(), messages);
    assert_eq!(p.outcomes.len(), 5);
    assert_eq!(p.bodies.len(), 5);
    assert_eq!(p.bodies[4], b"message 4\r\n");
    assert_eq!(String::from_utf8_lossy(&p.wire).matches("EHLO").count(), 1);
}

#[test]
fn helo_fallback_when_ehlo_is_refused() {
    // A scripted server that knows only RFC 821.
    let mut client = Client::new(client_config());
    client.send(message(&["a@example.net"], b"hi\r\n"));
    client.finish();
    let script: [(&[u8], &str); 7] = [
        (b"220 old.example SMTP\r\n", "EHLO client.example.org\r\n"),
        (
            b"502 Command not implemented\r\n",
            "HELO client.example.org\r\n",
        ),
        (b"250 old.example\r\n", "MAIL FROM:<sender@example.org>\r\n"),
        (b"250 OK\r\n", "RCPT TO:<a@example.net>\r\n"),
        (b"250 OK\r\n", "DATA\r\n"),
        (b"354 go\r\n", "hi\r\n.\r\n"),
        (b"250 OK\r\n", "QUIT\r\n"),
    ];
    for (server_says, client_should_say) in script {
        client.receive(server_says);
        while let Some(e) = client.poll() {
            if let ClientEvent::Delivered(o) = e {
                assert!(matches!(o.recipients[0].1, RecipientResult::Delivered(_)));
            }
        }
        assert_eq!(
            String::from_utf8(client.transmit()).unwrap(),
            client_should_say
        );
    }
    client.receive(b"221 bye\r\n");
    assert!(matches!(client.poll(), Some(ClientEvent::Closed)));
}

#[test]
fn refused_greeting_fails_every_message() {
    let mut client = Client::new(client_config());
    client.send(message(&["a@example.net"], b"hi\r\n"));
    client.receive(b"554 5.3.2 No service\r\n");
    let Some(ClientEvent::Delivered(o)) = client.poll() else {
        panic!()
    };
    assert!(matches!(o.recipients[0].1, RecipientResult::Permanent(_)));
    assert!(matches!(
        client.poll(),
        Some(ClientEvent::Failed(ClientError::Refused(_)))
    ));
    assert!(client.is_closed());
}

#[test]
fn garbage_from_the_server_fails_transiently() {
    let mut client = Client::new(client_config());
    client.send(message(&["a@example.net"], b"hi\r\n"));
    client.receive(b"hello there\r\n");
    let Some(ClientEvent::Delivered(o)) = client.poll() else {
        panic!()
    };
    assert!(matches!(o.recipients[0].1, RecipientResult::Transient(_)));
    assert!(matches!(
        client.poll(),
        Some(ClientEvent::Failed(ClientError::Protocol(_)))
    ));
}

#[test]
fn rfc5321_timeouts_follow_the_dialogue() {
    let mut client = Client::new(client_config());
    assert_eq!(
        client.timeout(),
        Some(std::time::Duration::from_secs(300)),
        "greeting"
    );
    client.finish();
    client.receive(b"220 x\r\n");
    while client.poll().is_some() {}
    assert_eq!(
        client.timeout(),
        Some(std::time::Duration::from_secs(300)),
        "EHLO"
    );
}

/// A message in pieces cut at the awkward places (between CR and LF, just
/// before a leading dot), by DATA and by BDAT.
fn streamed(chunking: bool, max: Option<u64>, body: &[u8], cuts: &[usize]) -> Pair {
    let mut server = server_config();
    server.chunking = chunking;
    server.max_message_size = max;
    let mut pair = Pair::new(client_config(), Server::new(server));
    let mut at = 0;
    for &cut in cuts.iter().chain([&body.len()]) {
        pair.pieces.push(body[at..cut].to_vec());
        at = cut;
    }
    let mut m = message(&["a@example.net", "b@example.net"], b"");
    // Without SIZE when there is a limit: the refusal must come from the
    // body, not from MAIL.
    m.data = MessageBody::Streamed {
        size: max.is_none().then_some(body.len() as u64),
        utf8_header: false,
    };
    pair.client.send(m);
    pair.client.finish();
    pair.run();
    pair
}

#[test]
fn a_message_in_pieces_arrives_whole_by_data_and_by_bdat() {
    let body = b"Subject: pieces\r\n\r\n.leading dot\r\n..two\r\nend\r\n";
    // Cut between CR and LF, right before a leading dot, inside a line.
    let cuts = [16, 17, 19, 20, 33, 34, 40];
    for chunking in [false, true] {
        let p = streamed(chunking, None, body, &cuts);
        assert_eq!(
            p.results(0),
            ["delivered", "delivered"],
            "chunking {chunking}"
        );
        assert_eq!(p.bodies, [body.to_vec()], "chunking {chunking}");
        let wire = String::from_utf8_lossy(&p.wire);
        assert!(wire.contains(&format!("SIZE={}", body.len())), "{wire}");
        if chunking {
            assert_eq!(wire.matches("BDAT ").count(), cuts.len() + 2, "{wire}");
            assert!(wire.contains("BDAT 0 LAST\r\n"), "{wire}");
        } else {
            assert!(wire.contains("\r\n...two\r\n"), "{wire}");
        }
        assert!(p.closed && p.failures.is_empty());
    }
}

#[test]
fn a_message_in_pieces_too_large_for_the_server_fails_without_hanging() {
    let body = vec![b'x'; 5000];
    for chunking in [false, true] {
        let mut with_lines = Vec::new();
        for line in body.chunks(70) {
            with_lines.extend_from_slice(line);
            with_lines.extend_from_slice(b"\r\n");
        }
        let p = streamed(chunking, Some(1000), &with_lines, &[100, 2000, 4000]);
        assert_eq!(
            p.results(0),
            ["permanent", "permanent"],
            "chunking {chunking}"
        );
        assert!(p.bodies.is_empty());
        assert!(p.closed, "QUIT after the refusal, chunking {chunking}");
        let wire = String::from_utf8_lossy(&p.wire);
        assert!(!wire.contains("SIZE="), "{wire}");
        assert!(
            wire.contains(if chunking {
                "BDAT 0 LAST"
            } else {
                "xx\r\n.\r\n"
            }),
            "{wire}"
        );
    }
}
