//! A name server in the test process: answers from a table over UDP on a
//! loopback port, and leaves unanswered the questions a zone marks as
//! timing out (which NSD cannot do). NSD serves real zone files; this
//! serves what a test builds, byte for byte, malformed records included.

// ok: test support, a dev-dependency only: a failure to bind or read a
// loopback socket fails the test that asked for the server (see lib.rs).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One record of a test zone.
#[derive(Debug, Clone)]
pub enum Rr {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// Preference and exchange.
    Mx(u16, String),
    /// A host name.
    Ptr(String),
    /// The canonical name; followed within the zone.
    Cname(String),
    /// A TXT record of these character-strings.
    Txt(Vec<Vec<u8>>),
    /// Every question of a type the name has no record of goes unanswered.
    Timeout,
}

/// Names (any case, no final dot) and their records.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    names: HashMap<String, Vec<Rr>>,
}

impl Zone {
    /// Adds a record to `name`.
    pub fn add(&mut self, name: &str, rr: Rr) {
        self.names
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .push(rr);
    }

    fn of_type(rr: &Rr, t: RecordType) -> bool {
        matches!(
            (rr, t),
            (Rr::A(_), RecordType::A)
                | (Rr::Aaaa(_), RecordType::AAAA)
                | (Rr::Mx(..), RecordType::MX)
                | (Rr::Ptr(_), RecordType::PTR)
                | (Rr::Txt(_), RecordType::TXT)
                | (Rr::Cname(_), RecordType::CNAME)
        )
    }

    /// The answer records, or `None` to stay silent.
    fn answer(&self, qname: &Name, t: RecordType) -> Option<(ResponseCode, Vec<Record>)> {
        let mut name = qname.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        let mut owner = qname.clone();
        let mut answers = Vec::new();
        for _ in 0..8 {
            let Some(records) = self.names.get(&name) else {
                let code = if answers.is_empty() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                return Some((code, answers));
            };
            let has_type = records.iter().any(|r| Self::of_type(r, t));
            if !has_type && records.iter().any(|r| matches!(r, Rr::Timeout)) {
                return None;
            }
            let cname = records.iter().find_map(|r| match r {
                Rr::Cname(target) if t != RecordType::CNAME => Some(target.clone()),
                _ => None,
            });
            if let Some(target) = cname {
                let target_name = Name::from_str(&format!("{target}.")).ok()?;
                answers.push(Record::from_rdata(
                    owner.clone(),
                    60,
                    RData::CNAME(CNAME(target_name.clone())),
                ));
                owner = target_name;
                name = target.to_ascii_lowercase();
                continue;
            }
            for r in records.iter().filter(|r| Self::of_type(r, t)) {
                let rdata = match r {
                    Rr::A(ip) => RData::A(A(*ip)),
                    Rr::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
                    Rr::Mx(pref, host) => {
                        RData::MX(MX::new(*pref, Name::from_str(&format!("{host}.")).ok()?))
                    }
                    Rr::Ptr(host) => RData::PTR(PTR(Name::from_str(&format!("{host}.")).ok()?)),
                    // A record of no strings is written as one empty string,
                    // as a zone file would have it.
                    Rr::Txt(strings) if strings.is_empty() => {
                        RData::TXT(TXT::from_bytes(vec![b""]))
                    }
                    Rr::Txt(strings) => {
                        RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
                    }
                    Rr::Cname(_) | Rr::Timeout => continue,
                };
                answers.push(Record::from_rdata(owner.clone(), 60, rdata));
            }
            return Some((ResponseCode::NoError, answers));
        }
        Some((ResponseCode::ServFail, Vec::new()))
    }
}

/// A running server; stops when dropped.
pub struct DnsServer {
    /// Where it answers (UDP only).
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `zone` on a free loopback port.
    pub fn start(zone: Zone) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .expect("set a read timeout");
        let addr = socket.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(q) = query.queries.first().cloned() else {
                    continue;
                };
                let answer = zone.answer(q.name(), q.query_type());
                if std::env::var_os("POSTEL_DNS_LOG").is_some() {
                    eprintln!("dns: {} {} -> {answer:?}", q.name(), q.query_type());
                }
                let Some((code, answers)) = answer else {
                    continue;
                };
                let mut response = Message::response(query.metadata.id, OpCode::Query);
                response.metadata.response_code = code;
                response.metadata.authoritative = true;
                response.metadata.recursion_desired = query.metadata.recursion_desired;
                response.metadata.recursion_available = true;
                response.add_query(q);
                response.add_answers(answers);
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        DnsServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
