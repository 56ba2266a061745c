//! Each rule of RFC 5321 section 5.1 and RFC 7505 as a named test, against a
//! resolver made of a table, with a fixed random source.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use postel_mx::{
    Answer, DnsFailure, Family, MixedNullMx, MxRecord, Resolver, Route, RouteError, RouteOptions,
    route,
};
use postel_proto::types::Host;

#[derive(Default)]
struct Table {
    mx: HashMap<String, Result<Answer<MxRecord>, DnsFailure>>,
    a: HashMap<String, Result<Answer<IpAddr>, DnsFailure>>,
    aaaa: HashMap<String, Result<Answer<IpAddr>, DnsFailure>>,
    asked: Mutex<Vec<String>>,
}

impl Table {
    fn mx(mut self, name: &str, records: &[(u16, &str)]) -> Self {
        let records = records
            .iter()
            .map(|(p, e)| MxRecord {
                preference: *p,
                exchange: (*e).to_owned(),
            })
            .collect();
        self.mx.insert(
            name.into(),
            Ok(Answer::Records {
                name: name.into(),
                records,
            }),
        );
        self
    }
    fn mx_answer(mut self, name: &str, answer: Result<Answer<MxRecord>, DnsFailure>) -> Self {
        self.mx.insert(name.into(), answer);
        self
    }
    fn a(mut self, name: &str, addrs: &[&str]) -> Self {
        let records = addrs.iter().map(|a| a.parse().unwrap()).collect();
        self.a.insert(
            name.into(),
            Ok(Answer::Records {
                name: name.into(),
                records,
            }),
        );
        self
    }
    fn aaaa(mut self, name: &str, addrs: &[&str]) -> Self {
        let records = addrs.iter().map(|a| a.parse().unwrap()).collect();
        self.aaaa.insert(
            name.into(),
            Ok(Answer::Records {
                name: name.into(),
                records,
            }),
        );
        self
    }
    fn a_fails(mut self, name: &str) -> Self {
        self.a.insert(name.into(), Err(DnsFailure::ServerFailure));
        self.aaaa
            .insert(name.into(), Err(DnsFailure::ServerFailure));
        self
    }
}

fn nodata(name: &str) -> Answer<IpAddr> {
    Answer::NoData { name: name.into() }
}

impl Resolver for Table {
    async fn mx(&self, name: &str) -> Result<Answer<MxRecord>, DnsFailure> {
        self.asked.lock().unwrap().push(format!("MX {name}"));
        self.mx.get(name).cloned().unwrap_or(Ok(Answer::NoSuchName))
    }
    async fn ipv4(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
        self.asked.lock().unwrap().push(format!("A {name}"));
        self.a.get(name).cloned().unwrap_or(Ok(nodata(name)))
    }
    async fn ipv6(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
        self.asked.lock().unwrap().push(format!("AAAA {name}"));
        self.aaaa.get(name).cloned().unwrap_or(Ok(nodata(name)))
    }
}

fn run(table: &Table, domain: &str, options: &RouteOptions) -> Result<Route, RouteError> {
    // A fixed source: always the last index, so shuffles are predictable.
    let mut random = |n: usize| n - 1;
    run_with(table, domain, options, &mut random)
}

fn run_with(
    table: &Table,
    domain: &str,
    options: &RouteOptions,
    random: &mut (dyn FnMut(usize) -> usize + Send),
) -> Result<Route, RouteError> {
    let host = Host::try_from(domain).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(route(table, &host, options, random))
}

fn names(route: &Route) -> Vec<&str> {
    route.exchangers.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn rule_1_address_literal_needs_no_dns() {
    let table = Table::default();
    let r = run(&table, "[192.0.2.7]", &RouteOptions::default()).unwrap();
    assert_eq!(
        r.exchangers[0].addresses,
        ["192.0.2.7".parse::<IpAddr>().unwrap()]
    );
    assert!(table.asked.lock().unwrap().is_empty());
}

#[test]
fn rule_2_names_are_ascii_lower_case_and_idn_becomes_a_labels() {
    let table = Table::default()
        .mx("xn--bcher-kva.example", &[(10, "mx.example")])
        .a("mx.example", &["192.0.2.1"]);
    let r = run(&table, "BÜCHER.example", &RouteOptions::default()).unwrap();
    assert_eq!(names(&r), ["mx.example"]);
    assert_eq!(table.asked.lock().unwrap()[0], "MX xn--bcher-kva.example");
}

#[test]
fn rule_4_mx_records_exclude_the_domains_own_address() {
    let table = Table::default()
        .mx("example.com", &[(10, "mx.example.com")])
        .a("example.com", &["192.0.2.99"])
        .a("mx.example.com", &["192.0.2.1"]);
    let r = run(&table, "example.com", &RouteOptions::default()).unwrap();
    assert_eq!(names(&r), ["mx.example.com"]);
    assert!(!r.implicit);
}

#[test]
fn rule_5_no_mx_means_the_implicit_mx() {
    let table = Table::default()
        .mx_answer(
            "example.com",
            Ok(Answer::NoData {
                name: "target.example.net".into(),
            }),
        )
        .a("target.example.net", &["192.0.2.5"]);
    let r = run(&table, "example.com", &RouteOptions::default()).unwrap();
    assert!(r.implicit);
    assert_eq!(r.exchangers[0].preference, 0);
    assert_eq!(
        names(&r),
        ["target.example.net"],
        "rule 3: the CNAME target replaces the domain"
    );
}

#[test]
fn rule_6_nxdomain_is_permanent_servfail_is_temporary_without_fallback() {
    let table = Table::default();
    let e = run(&table, "nowhere.example", &RouteOptions::default()).unwrap_err();
    assert!(e.is_permanent());
    assert_eq!(e.status().0.get(), 550);

    let table = Table::default()
        .mx_answer("example.com", Err(DnsFailure::ServerFailure))
        .a("example.com", &["192.0.2.1"]);
    let e = run(&table, "example.com", &RouteOptions::default()).unwrap_err();
    assert!(!e.is_permanent());
    assert_eq!(e.status().1.to_string(), "4.4.3");
    assert!(
        !table
            .asked
            .lock()
            .unwrap()
            .iter()
            .any(|q| q.starts_with("A ")),
        "no fallback to A"
    );

    let table = Table::default().mx_answer("example.com", Err(DnsFailure::Refused));
    assert!(
        !run(&table, "example.com", &RouteOptions::default())
            .unwrap_err()
            .is_permanent()
    );
    let mut strict = RouteOptions::default();
    strict.refused_is_temporary = false;
    assert!(
        run(&table, "example.com", &strict)
            .unwrap_err()
            .is_permanent()
    );
}

#[test]
fn rule_7_null_mx() {
    let table = Table::default().mx("nomail.example", &[(0, "")]);
    let e = run(&table, "nomail.example", &RouteOptions::default()).unwrap_err();
    assert!(matches!(e, RouteError::NullMx { .. }) && e.is_permanent());
    let (code, enhanced) = e.status();
    assert_eq!(
        (code.get(), enhanced.to_string()),
        (556, "5.1.10".to_string())
    );

    let table = Table::default()
        .mx("mixed.example", &[(0, ""), (10, "mx.mixed.example")])
        .a("mx.mixed.example", &["192.0.2.3"]);
    assert!(matches!(
        run(&table, "mixed.example", &RouteOptions::default()),
        Err(RouteError::NullMx { .. })
    ));
    let mut lenient = RouteOptions::default();
    lenient.mixed_null_mx = MixedNullMx::Lenient;
    assert_eq!(
        names(&run(&table, "mixed.example", &lenient).unwrap()),
        ["mx.mixed.example"]
    );
}

#[test]
fn rule_8_ip_address_exchange_is_unusable_by_default() {
    let table = Table::default()
        .mx("example.com", &[(10, "192.0.2.1"), (20, "mx.example.com")])
        .a("mx.example.com", &["192.0.2.2"]);
    assert_eq!(
        names(&run(&table, "example.com", &RouteOptions::default()).unwrap()),
        ["mx.example.com"]
    );
    let mut allow = RouteOptions::default();
    allow.allow_ip_exchange = true;
    assert_eq!(
        names(&run(&table, "example.com", &allow).unwrap()),
        ["192.0.2.1", "mx.example.com"]
    );
}

#[test]
fn rule_9_preference_order_duplicates_and_shuffle() {
    let table = Table::default()
        .mx(
            "example.com",
            &[
                (20, "c.example"),
                (10, "b.example"),
                (10, "a.example"),
                (20, "C.EXAMPLE"),
                (5, "z.example"),
            ],
        )
        .a("a.example", &["192.0.2.1"])
        .a("b.example", &["192.0.2.2"])
        .a("c.example", &["192.0.2.3"])
        .a("z.example", &["192.0.2.26"]);
    let mut o = RouteOptions::default();
    o.max_addresses = 10;
    let r = run(&table, "example.com", &o).unwrap();
    // The fixed source (always the last index) keeps the sorted order.
    assert_eq!(
        names(&r),
        ["z.example", "a.example", "b.example", "c.example"]
    );
    // Another random source gives another order of equal preferences only.
    let mut first = |_: usize| 0;
    let host = Host::try_from("example.com").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let r2 = rt.block_on(route(&table, &host, &o, &mut first)).unwrap();
    assert_eq!(
        names(&r2),
        ["z.example", "b.example", "a.example", "c.example"]
    );
}

#[test]
fn rule_10_relaying_drops_this_host_and_worse() {
    let table = Table::default()
        .mx(
            "example.com",
            &[
                (10, "primary.example"),
                (20, "me.example"),
                (30, "backup.example"),
            ],
        )
        .a("primary.example", &["192.0.2.1"])
        .a("me.example", &["192.0.2.2"])
        .a("backup.example", &["192.0.2.3"]);
    let mut o = RouteOptions::default();
    o.local_names = vec!["me.example".into()];
    assert_eq!(
        names(&run(&table, "example.com", &o).unwrap()),
        ["primary.example"]
    );

    let table = Table::default().mx("example.com", &[(10, "me.example"), (20, "backup.example")]);
    let e = run(&table, "example.com", &o).unwrap_err();
    assert!(matches!(e, RouteError::Loop { .. }) && e.is_permanent());
    assert_eq!(e.status().1.to_string(), "5.4.6");

    // Found by address; the better host failed temporarily: temporary.
    let table = Table::default()
        .mx(
            "example.com",
            &[(10, "primary.example"), (20, "alias.example")],
        )
        .a_fails("primary.example")
        .a("alias.example", &["198.51.100.7"]);
    let mut o = RouteOptions::default();
    o.local_addresses = vec!["198.51.100.7".parse().unwrap()];
    let e = run(&table, "example.com", &o).unwrap_err();
    assert!(!e.is_permanent(), "{e:?}");

    // Found by address after an exchanger of the same preference: that one
    // is dropped too, since it is not better than this host.
    let table = Table::default()
        .mx(
            "example.com",
            &[(10, "peer.example"), (10, "alias.example")],
        )
        .a("peer.example", &["192.0.2.1"])
        .a("alias.example", &["198.51.100.7"]);
    for pick in 0..2 {
        let mut random = move |_n: usize| pick;
        let e = run_with(&table, "example.com", &o, &mut random).unwrap_err();
        assert!(matches!(e, RouteError::Loop { .. }), "{e:?}");
    }
}

#[test]
fn rule_11_families_and_caps() {
    let table = Table::default()
        .mx("example.com", &[(10, "big.example"), (20, "small.example")])
        .a("big.example", &["192.0.2.1", "192.0.2.2", "192.0.2.3"])
        .aaaa(
            "big.example",
            &["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"],
        )
        .a("small.example", &["192.0.2.9"]);
    let r = run(&table, "example.com", &RouteOptions::default()).unwrap();
    let all: Vec<String> = r
        .exchangers
        .iter()
        .flat_map(|e| e.addresses.iter().map(ToString::to_string))
        .collect();
    assert_eq!(all.len(), 5, "at most 5 addresses");
    assert_eq!(
        names(&r),
        ["big.example", "small.example"],
        "at least 2 hosts"
    );
    assert!(all[0].contains(':'), "IPv6 first");

    // One host with many IPv6 addresses: an IPv4 address still takes the last place.
    let table = Table::default()
        .mx("example.com", &[(10, "v6heavy.example")])
        .a("v6heavy.example", &["192.0.2.1"])
        .aaaa(
            "v6heavy.example",
            &[
                "2001:db8::1",
                "2001:db8::2",
                "2001:db8::3",
                "2001:db8::4",
                "2001:db8::5",
                "2001:db8::6",
            ],
        );
    let r = run(&table, "example.com", &RouteOptions::default()).unwrap();
    let addrs = &r.exchangers[0].addresses;
    assert_eq!(addrs.len(), 5);
    assert!(
        addrs[..4].iter().all(IpAddr::is_ipv6) && addrs[4].is_ipv4(),
        "{addrs:?}"
    );

    let mut v4 = RouteOptions::default();
    v4.family = Family::Ipv4Only;
    let r = run(&table, "example.com", &v4).unwrap();
    assert!(
        r.exchangers
            .iter()
            .flat_map(|e| &e.addresses)
            .all(IpAddr::is_ipv4)
    );
}

#[test]
fn rule_11_no_address_is_temporary_only_if_a_lookup_failed() {
    let table = Table::default().mx("example.com", &[(10, "gone.example")]);
    let e = run(&table, "example.com", &RouteOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            RouteError::NoAddress {
                temporary: false,
                ..
            }
        ) && e.is_permanent()
    );
    let table = Table::default()
        .mx(
            "example.com",
            &[(10, "flaky.example"), (20, "gone.example")],
        )
        .a_fails("flaky.example");
    let e = run(&table, "example.com", &RouteOptions::default()).unwrap_err();
    assert!(matches!(
        e,
        RouteError::NoAddress {
            temporary: true,
            ..
        }
    ));
    // A host with no address is skipped.
    let table = Table::default()
        .mx("example.com", &[(10, "gone.example"), (20, "ok.example")])
        .a("ok.example", &["192.0.2.4"]);
    assert_eq!(
        names(&run(&table, "example.com", &RouteOptions::default()).unwrap()),
        ["ok.example"]
    );
}
