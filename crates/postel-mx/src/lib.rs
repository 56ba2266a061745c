//! # postel-mx
//!
//! Where a domain's mail goes, as RFC 5321 section 5.1 and RFC 7505 say: the
//! ordered hosts and addresses to try, or a verdict that mail cannot go there
//! (permanent) or not now (temporary), with the status code to report.
//!
//! The algorithm ([`route::route`]) is written against the [`Resolver`] trait,
//! so tests and callers can plug in another resolver; [`HickoryResolver`] is
//! the implementation on hickory-resolver. Randomness is passed in.
//!
//! | # | Rule | RFC | Where |
//! |---|------|-----|-------|
//! | 1 | address literals used as is, no DNS | 5321 §5.1, §4.1.3 | [`route::route`] |
//! | 2 | names compared as ASCII lower case, IDNs as A-labels, absolute queries | 5321 §2.4, 5890 | [`route::route`], [`HickoryResolver`] |
//! | 3 | MX first; a CNAME's target replaces the domain; loops temporary | 5321 §5.1 | [`Resolver::mx`] returns the canonical name |
//! | 4 | any MX record excludes the domain's own A/AAAA | 5321 §5.1 | [`route::route`] |
//! | 5 | NODATA means the implicit MX: the domain at preference 0 | 5321 §5.1 | [`route::route`] |
//! | 6 | NXDOMAIN permanent; SERVFAIL, timeouts temporary, no A fallback; REFUSED/FORMERR by option | 5321 §5.1, 1035 | [`route::RouteError`], [`route::RouteOptions::refused_is_temporary`] |
//! | 7 | null MX: 556 5.1.10, mixed records by policy | 7505 §3, §4.2 | [`route::MixedNullMx`] |
//! | 8 | IP-address exchanges refused unless allowed; CNAME exchanges followed | 5321 §5.1 | [`route::RouteOptions::allow_ip_exchange`] |
//! | 9 | preference order, duplicates removed, equal preferences shuffled | 5321 §5.1 | [`route::order`] |
//! | 10 | relaying: only exchangers better than this host, else 5.4.6 | 5321 §5.1, 3463 | [`route::RouteOptions::local_names`] |
//! | 11 | family policy, 5 addresses over at least 2 hosts | 5321 §5.1, 6724 | [`route::RouteOptions`] |
//! | 12 | cached within TTLs, negative answers per RFC 2308 | 1035, 2308 | hickory's cache |
//!
//! Every rule is tested twice: against a table resolver (`tests/rules.rs`) and
//! against NSD serving a test zone on a loopback port (`tests/nsd.rs`).
//!
//! ```
//! use postel_mx::{Answer, DnsFailure, MxRecord, Resolver, RouteOptions, route};
//! use postel_proto::types::Host;
//! use std::net::IpAddr;
//!
//! /// A resolver with one answer per question, as a test would write it.
//! struct Fixed;
//! impl Resolver for Fixed {
//!     async fn mx(&self, name: &str) -> Result<Answer<MxRecord>, DnsFailure> {
//!         Ok(Answer::Records {
//!             name: name.to_owned(),
//!             records: vec![
//!                 MxRecord { preference: 20, exchange: "backup.example".into() },
//!                 MxRecord { preference: 10, exchange: "primary.example".into() },
//!             ],
//!         })
//!     }
//!     async fn ipv4(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
//!         let last = if name == "primary.example" { 1 } else { 2 };
//!         let ip = IpAddr::from([192, 0, 2, last]);
//!         Ok(Answer::Records { name: name.to_owned(), records: vec![ip] })
//!     }
//!     async fn ipv6(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
//!         Ok(Answer::NoData { name: name.to_owned() })
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let host = Host::try_from("example.com")?;
//! let plan = route(&Fixed, &host, &RouteOptions::default(), &mut |n| n - 1).await?;
//! let order: Vec<&str> = plan.exchangers.iter().map(|e| e.name.as_str()).collect();
//! assert_eq!(order, ["primary.example", "backup.example"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
#![forbid(unsafe_code)]

mod hickory;
pub mod resolver;
pub mod route;

pub use hickory::{BuildError, DnsConfig, Dnssec, HickoryResolver, Security, Tlsa};
pub use resolver::{Answer, DnsFailure, MxRecord, Resolver};
pub use route::{Exchanger, Family, MixedNullMx, Route, RouteError, RouteOptions, route};
