//! Inputs shared by the benchmarks, and the ratio report printed after a run.
//! Inputs are built once, outside any timed loop.

use std::path::PathBuf;

use postel_proto::types::{BodyType, ForwardPath, Mailbox, ReversePath};
use postel_queue::model::{Arrival, NewMessage, NewRecipient};

/// A realistic client transaction, one line per command, as an MTA sends it
/// with PIPELINING: EHLO, MAIL with SIZE and BODY, three RCPT with DSN
/// parameters, DATA, QUIT.
pub const COMMAND_MIX: [(&str, &[u8]); 7] = [
    ("EHLO", b"EHLO mail.example.org\r\n"),
    ("MAIL", b"MAIL FROM:<sender.name@example.org> SIZE=104857 BODY=8BITMIME\r\n"),
    (
        "RCPT-1",
        b"RCPT TO:<first.recipient@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;first.recipient@example.net\r\n",
    ),
    ("RCPT-2", b"RCPT TO:<second@example.com> NOTIFY=FAILURE\r\n"),
    ("RCPT-3", b"RCPT TO:<third.person@sub.example.co.uk>\r\n"),
    ("DATA", b"DATA\r\n"),
    ("QUIT", b"QUIT\r\n"),
];

/// All of [`COMMAND_MIX`] in one buffer.
pub fn pipelined() -> Vec<u8> {
    COMMAND_MIX
        .iter()
        .flat_map(|(_, l)| l.iter().copied())
        .collect()
}

/// An EHLO reply of eight lines, as a large provider sends it.
pub const EHLO_REPLY: &[u8] = b"250-mx.example.org at your service, [192.0.2.7]\r\n\
250-SIZE 157286400\r\n\
250-8BITMIME\r\n\
250-STARTTLS\r\n\
250-ENHANCEDSTATUSCODES\r\n\
250-PIPELINING\r\n\
250-CHUNKING\r\n\
250 SMTPUTF8\r\n";

/// A single-line reply with an enhanced status code.
pub const SINGLE_REPLY: &[u8] = b"250 2.1.0 Sender <sender.name@example.org> OK\r\n";

/// The code-only reply of an AUTH exchange.
pub const CODE_ONLY_REPLY: &[u8] = b"334\r\n";

/// A dot-stuffed DATA body of about `size` octets with its terminator: text lines
/// of 60 to 78 characters, and when `dotted`, every third line starts with a dot.
pub fn data_body(size: usize, dotted: bool) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "mail",
        "exchange",
        "the",
        "relay",
        "message",
        "of",
        "queue",
        "postmaster",
        "a",
        "delivery",
        "domain",
        "transport",
    ];
    let mut out = Vec::with_capacity(size + 128);
    let mut seed: u32 = 0x1234_5678;
    let mut line = 0usize;
    while out.len() < size {
        if dotted && line.is_multiple_of(3) {
            out.extend_from_slice(b"..");
        }
        let target = 60 + (seed % 19) as usize;
        let start = out.len();
        while out.len() - start < target {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            out.extend_from_slice(WORDS[(seed % 12) as usize].as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(b"\r\n");
        line += 1;
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Where criterion keeps its estimates.
fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        )
        .join("criterion")
}

/// The mean time in nanoseconds criterion measured for `group/function`.
pub fn mean_ns(group: &str, function: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let json = std::fs::read_to_string(path).ok()?;
    let mean = &json[json.find("\"mean\"")?..];
    let point = &mean[mean.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = point.find([',', '}'])?;
    point[..end].trim().parse().ok()
}

/// Prints, for each group, our mean time over each peer's: below 1.0 means
/// we are faster.
pub fn print_ratios(rows: &[(&str, &str, &[&str])]) {
    println!(
        "\n{:<28} {:>12} {:>14} {:>10}",
        "input", "ours (ns)", "peer", "ours/peer"
    );
    for (group, ours, peers) in rows {
        let Some(our) = mean_ns(group, ours) else {
            continue;
        };
        for peer in *peers {
            match mean_ns(group, peer) {
                Some(their) => println!("{group:<28} {our:>12.1} {peer:>14} {:>10.3}", our / their),
                None => println!("{group:<28} {our:>12.1} {peer:>14} {:>10}", "n/a"),
            }
        }
    }
}

/// The envelope the queue benchmarks enqueue: one sender, one recipient.
pub fn queue_message() -> NewMessage {
    let mailbox = |a: &'static str| Mailbox::try_from(a).unwrap_or_else(|_| unreachable!()); // ok: constant
    NewMessage {
        return_path: ReversePath::Mailbox(mailbox("sender@example.org")),
        envid: None,
        ret: None,
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        requiretls: false,
        arrival: Arrival::default(),
        recipients: vec![NewRecipient {
            address: ForwardPath::Mailbox(mailbox("rcpt@example.net")),
            orcpt: None,
            notify: None,
        }],
    }
}
