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
//! | Rule | Where |
//! |------|-------|
//! | address literals used as is, no DNS | [`route::route`] |
//! | names compared as ASCII lower case, IDNs as A-labels, absolute queries | [`route::route`], [`HickoryResolver`] |
//! | MX first; a CNAME's target replaces the domain | [`Resolver::mx`] returns the canonical name |
//! | MX records exclude the domain's own A/AAAA; no MX means the implicit MX | [`route::route`] |
//! | NXDOMAIN permanent; SERVFAIL, timeouts temporary, no A fallback | [`route::RouteError`] |
//! | null MX: 556 5.1.10, mixed by policy | [`route::MixedNullMx`] |
//! | IP-address exchanges refused unless allowed | [`route::RouteOptions::allow_ip_exchange`] |
//! | preference order, duplicates removed, equal preferences shuffled | [`route::order`] |
//! | relaying: only exchangers better than this host, else 5.4.6 | [`route::RouteOptions::local_names`] |
//! | family policy, 5 addresses over at least 2 hosts | [`route::RouteOptions`] |
//! | caching within TTLs, RFC 2308 negative caching | hickory's cache |
#![forbid(unsafe_code)]

mod hickory;
pub mod resolver;
pub mod route;

pub use hickory::{BuildError, HickoryResolver};
pub use resolver::{Answer, DnsFailure, MxRecord, Resolver};
pub use route::{Exchanger, Family, MixedNullMx, Route, RouteError, RouteOptions, route};
