//! The property the client fuzz target checks; also run by
//! crates/postel-session/tests/corpus.rs over the committed inputs.

/// The client session: the input, after a selector octet, is what the server
/// sends, cut into pieces by its own octets. Whatever it is, the client must
/// not panic, must report every message it was given exactly once with a
/// result per recipient, must never write MAIL in plaintext when TLS is
/// required, and once closed must stay closed and silent. For two inputs
/// in five the body goes in pieces: asked for once per message, and not
/// wanted once ended.
pub fn check_client(data: &[u8]) {
    use postel_proto::types::{
        Domain, ForwardPath, MailParameters, Mailbox, RcptParameters, ReversePath,
    };
    use postel_session::client::{
        Client, ClientConfig, ClientEvent, Message, MessageBody, TlsPolicy,
    };

    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let (Ok(host), Ok(from), Ok(to)) = (
        Domain::try_from("client.example"),
        Mailbox::try_from("a@client.example"),
        Mailbox::try_from("b@server.example"),
    ) else {
        return;
    };
    let mut config = ClientConfig::new(host);
    config.tls = match selector & 3 {
        0 => TlsPolicy::Never,
        1 => TlsPolicy::Opportunistic,
        _ => TlsPolicy::Required,
    };
    config.pipelining = selector & 4 != 0;
    config.chunking = selector & 8 != 0;
    config.max_reply_octets = 4096;
    // LMTP for a third of the inputs: the length is the only octet left.
    config.lmtp = data.len().is_multiple_of(3);
    let required = config.tls == TlsPolicy::Required;
    let streamed = data.len() % 5 < 2;
    const BODY: &[u8] = b"Subject: fuzz\r\n\r\n.body\r\n";
    let mut client = Client::new(config);
    let messages = 1 + usize::from((selector >> 4) & 3);
    let recipients = 1 + usize::from(selector >> 6);
    for _ in 0..messages {
        let mut params = MailParameters::default();
        params.smtputf8 = selector & 0x10 != 0;
        client.send(Message {
            from: ReversePath::Mailbox(from.clone()),
            params,
            recipients: vec![
                (ForwardPath::Mailbox(to.clone()), RcptParameters::default());
                recipients
            ],
            data: if streamed {
                MessageBody::Streamed {
                    size: Some(BODY.len() as u64),
                    utf8_header: false,
                }
            } else {
                BODY.to_vec().into()
            },
        });
    }
    client.finish();
    let mut reported = vec![0u32; messages];
    let mut wanted = 0usize;
    let mut tls = false;
    let mut ended = false;
    let mut pos = 0;
    let mut check = |client: &mut Client, ended: &mut bool, tls: &mut bool| {
        while let Some(event) = client.poll() {
            assert!(!*ended, "an event after the session ended: {event:?}");
            match event {
                ClientEvent::Delivered(o) => {
                    assert_eq!(o.recipients.len(), recipients, "a result per recipient");
                    reported[o.message] += 1;
                }
                ClientEvent::StartTls => {
                    client.tls_established();
                    *tls = true;
                }
                ClientEvent::Failed(_) | ClientEvent::Closed => *ended = true,
                ClientEvent::BodyWanted => {
                    assert!(streamed, "a whole body is never asked for");
                    assert!(client.wants_body());
                    wanted += 1;
                    assert!(wanted <= messages, "asked for more bodies than messages");
                    // Cut just before the leading dot, to be stuffed.
                    let (head, tail) = BODY.split_at(17);
                    client.send_body(head);
                    client.send_body(tail);
                    client.end_body();
                    assert!(!client.wants_body());
                }
                _ => {}
            }
        }
        let out = client.transmit();
        if required && !*tls {
            assert!(
                memchr::memmem::find(&out, b"MAIL FROM").is_none(),
                "MAIL in plaintext under required TLS"
            );
        }
        if *ended {
            assert!(client.is_closed());
        }
        out
    };
    check(&mut client, &mut ended, &mut tls);
    while pos < input.len() {
        let n = usize::from(input[pos] % 29) + 1;
        let chunk = &input[pos..(pos + n).min(input.len())];
        pos += n;
        let was_closed = client.is_closed();
        client.receive(chunk);
        let out = check(&mut client, &mut ended, &mut tls);
        if was_closed {
            assert!(out.is_empty(), "a closed client stays silent");
        }
    }
    if client.is_closed() {
        assert!(
            reported.iter().all(|&n| n == 1),
            "each message reported once: {reported:?}"
        );
    } else {
        assert!(
            reported.iter().all(|&n| n <= 1),
            "no message reported twice: {reported:?}"
        );
    }
}
