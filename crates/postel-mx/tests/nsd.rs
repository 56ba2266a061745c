//! The MX rules against a real DNS server: NSD serves a test zone on a
//! loopback port for the length of the test, and the hickory resolver asks it.
//! Skipped, with a printed reason, when NSD is not installed (`.ci/run`
//! installs it).

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use postel_mx::{
    Family, HickoryResolver, MixedNullMx, Resolver, Route, RouteError, RouteOptions, route,
};
use postel_proto::types::Host;
use postel_testkit::Nsd;

const ZONE: &str = r#"$ORIGIN postel.test.
$TTL 60
@               IN SOA  ns.postel.test. hostmaster.postel.test. 1 3600 600 86400 60
@               IN NS   ns
ns              IN A    127.0.0.1
mail1           IN MX   10 mx-a.mail1
mail1           IN MX   10 mx-b.mail1
mail1           IN MX   20 mx-c.mail1
mail1           IN A    192.0.2.250
mx-a.mail1      IN A    192.0.2.1
mx-b.mail1      IN A    192.0.2.2
mx-b.mail1      IN AAAA 2001:db8::2
mx-c.mail1      IN A    192.0.2.3
plain           IN A    192.0.2.10
nomail          IN MX   0 .
alias           IN CNAME plain
cnamex          IN MX   10 exalias.cnamex
exalias.cnamex  IN CNAME mx-a.mail1
ipmx            IN MX   10 192.0.2.7.
ipmx            IN MX   20 mx-c.mail1
iponly          IN MX   10 192.0.2.7.
dangle          IN MX   10 missing.dangle
dangle2         IN MX   10 missing.dangle
dangle2         IN MX   20 mx-a.mail1
nodata          IN TXT  "no mail records here"
mixed           IN MX   0 .
mixed           IN MX   10 mx-a.mail1
loop1           IN CNAME loop2
loop2           IN CNAME loop1
short   1       IN A    192.0.2.30
long    3600    IN A    192.0.2.31
many            IN MX   10 big.many
many            IN MX   20 small.many
big.many        IN A    192.0.2.41
big.many        IN A    192.0.2.42
big.many        IN A    192.0.2.43
big.many        IN A    192.0.2.44
big.many        IN A    192.0.2.45
big.many        IN A    192.0.2.46
small.many      IN A    192.0.2.47
xn--bcher-kva   IN MX   10 mx-a.mail1
"#;

fn start_nsd() -> Option<Nsd> {
    Nsd::start(&[("postel.test", Some(ZONE)), ("broken.test", None)])
}

/// Starts NSD, waits until it answers, and runs `check` with a resolver
/// pointed at it.
fn with_nsd(check: impl AsyncFnOnce(HickoryResolver, Nsd)) {
    let Some(server) = start_nsd() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let resolver =
            HickoryResolver::with_servers_and_timeout(&[server.addr], Duration::from_secs(2), 2)
                .unwrap();
        let mut up = false;
        for _ in 0..100 {
            if matches!(
                resolver.ipv4("ns.postel.test").await,
                Ok(postel_mx::Answer::Records { .. })
            ) {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "nsd did not start");
        check(resolver, server).await;
    });
}

async fn go(
    resolver: &HickoryResolver,
    domain: &str,
    opts: &RouteOptions,
) -> Result<Route, RouteError> {
    let host = Host::try_from(domain).unwrap();
    // The last of equal preferences first: a fixed, visible choice.
    let mut random = |n: usize| n - 1;
    route(resolver, &host, opts, &mut random).await
}

fn names(route: &Route) -> Vec<&str> {
    route.exchangers.iter().map(|e| e.name.as_str()).collect()
}

/// No exchanger has an address, and no look-up failed: permanent.
fn assert_no_address_for_good(e: &RouteError) {
    assert!(
        matches!(
            e,
            RouteError::NoAddress {
                temporary: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_permanent());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn nsd_rule_1_address_literal_needs_no_dns() {
    // The resolver points at a port nobody answers: a look-up would time out.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = HickoryResolver::with_servers_and_timeout(
        &[silent.local_addr().unwrap()],
        Duration::from_millis(200),
        1,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = go(&resolver, "[192.0.2.9]", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exchangers[0].addresses, [ip("192.0.2.9")]);
        let r = go(&resolver, "[IPv6:2001:db8::9]", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exchangers[0].addresses, [ip("2001:db8::9")]);
    });
}

#[test]
fn nsd_rule_2_case_and_idn() {
    with_nsd(async |resolver, _nsd| {
        let r = go(&resolver, "PLAIN.Postel.TEST", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(names(&r), ["plain.postel.test"]);
        let r = go(&resolver, "bücher.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(
            names(&r),
            ["mx-a.mail1.postel.test"],
            "the A-label form was asked"
        );
    });
}

#[test]
fn nsd_rule_3_cname_domain_and_loop() {
    with_nsd(async |resolver, _nsd| {
        let r = go(&resolver, "alias.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(
            names(&r),
            ["plain.postel.test"],
            "the CNAME target replaces the domain"
        );
        assert!(r.implicit);
        let e = go(&resolver, "loop1.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(!e.is_permanent(), "a CNAME loop is temporary: {e:?}");
    });
}

#[test]
fn nsd_rule_4_and_9_mx_order_equal_and_different_preferences() {
    with_nsd(async |resolver, _nsd| {
        let r = go(&resolver, "mail1.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        let prefs: Vec<u16> = r.exchangers.iter().map(|e| e.preference).collect();
        assert_eq!(prefs, [10, 10, 20]);
        assert_eq!(names(&r)[2], "mx-c.mail1.postel.test");
        let mut equal = names(&r)[..2].to_vec();
        equal.sort_unstable();
        assert_eq!(equal, ["mx-a.mail1.postel.test", "mx-b.mail1.postel.test"]);
        assert!(!r.implicit, "the domain's own A record is not used");
        assert!(
            r.exchangers
                .iter()
                .all(|e| !e.addresses.contains(&ip("192.0.2.250")))
        );
        // Both orders of the equal pair occur across random choices.
        let mut seen = std::collections::HashSet::new();
        for pick in 0..2 {
            let host = Host::try_from("mail1.postel.test").unwrap();
            let mut random = move |_n: usize| pick;
            let r = route(&resolver, &host, &RouteOptions::default(), &mut random)
                .await
                .unwrap();
            seen.insert(r.exchangers[0].name.clone());
        }
        assert_eq!(seen.len(), 2, "equal preferences are shuffled: {seen:?}");
    });
}

#[test]
fn nsd_rule_5_nodata_means_implicit_mx() {
    with_nsd(async |resolver, _nsd| {
        let r = go(&resolver, "plain.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        assert!(r.implicit);
        assert_eq!(r.exchangers[0].preference, 0);
        assert_eq!(r.exchangers[0].addresses, [ip("192.0.2.10")]);
        // NODATA for MX and no address either: nowhere to go, permanently.
        let e = go(&resolver, "nodata.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert_no_address_for_good(&e);
    });
}

#[test]
fn nsd_rule_6_nxdomain_servfail_refused_timeout() {
    with_nsd(async |resolver, nsd| {
        let e = go(&resolver, "nowhere.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, RouteError::NoSuchDomain { .. }), "{e:?}");
        assert!(e.is_permanent());
        assert_eq!(e.status().1.to_string(), "5.1.2");

        // A zone NSD is configured for but could not load answers SERVFAIL.
        let e = go(&resolver, "mail.broken.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                RouteError::Dns {
                    failure: postel_mx::DnsFailure::ServerFailure,
                    temporary: true,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.status().0.get(), 451);

        // NSD refuses names outside its zones: temporary by default, permanent by option.
        let e = go(&resolver, "example.org", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                RouteError::Dns {
                    failure: postel_mx::DnsFailure::Refused,
                    temporary: true,
                    ..
                }
            ),
            "{e:?}"
        );
        let mut strict = RouteOptions::default();
        strict.refused_is_temporary = false;
        let e = go(&resolver, "example.org", &strict).await.unwrap_err();
        assert!(e.is_permanent(), "{e:?}");
        drop(nsd);
    });

    // A socket that never answers: a timeout, temporary.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = HickoryResolver::with_servers_and_timeout(
        &[silent.local_addr().unwrap()],
        Duration::from_millis(300),
        1,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = go(&resolver, "plain.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                RouteError::Dns {
                    temporary: true,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(!e.is_permanent());
    });
}

#[test]
fn nsd_rule_7_null_mx_and_mixed() {
    with_nsd(async |resolver, _nsd| {
        let e = go(&resolver, "nomail.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, RouteError::NullMx { .. }));
        let (code, enhanced) = e.status();
        assert_eq!((code.get(), enhanced.to_string().as_str()), (556, "5.1.10"));

        let e = go(&resolver, "mixed.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, RouteError::NullMx { .. }),
            "strict by default: {e:?}"
        );
        let mut lenient = RouteOptions::default();
        lenient.mixed_null_mx = MixedNullMx::Lenient;
        let r = go(&resolver, "mixed.postel.test", &lenient).await.unwrap();
        assert_eq!(names(&r), ["mx-a.mail1.postel.test"]);
    });
}

#[test]
fn nsd_rule_8_ip_looking_and_cname_exchanges_dangling_mx() {
    with_nsd(async |resolver, _nsd| {
        let r = go(&resolver, "ipmx.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(
            names(&r),
            ["mx-c.mail1.postel.test"],
            "the IP-looking exchange is dropped"
        );
        let e = go(&resolver, "iponly.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert!(e.is_permanent(), "{e:?}");

        let r = go(&resolver, "cnamex.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(
            r.exchangers[0].addresses,
            [ip("192.0.2.1")],
            "an exchange that is a CNAME is followed"
        );

        // An exchange with no address is skipped; if none is left, permanent.
        let r = go(&resolver, "dangle2.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        assert_eq!(names(&r), ["mx-a.mail1.postel.test"]);
        let e = go(&resolver, "dangle.postel.test", &RouteOptions::default())
            .await
            .unwrap_err();
        assert_no_address_for_good(&e);
    });
}

#[test]
fn nsd_rule_10_relaying_drops_this_host_and_worse() {
    with_nsd(async |resolver, _nsd| {
        let mut opts = RouteOptions::default();
        opts.local_names = vec!["mx-c.mail1.postel.test".into()];
        let r = go(&resolver, "mail1.postel.test", &opts).await.unwrap();
        assert_eq!(r.exchangers.len(), 2);
        assert!(names(&r).iter().all(|n| *n != "mx-c.mail1.postel.test"));

        let mut opts = RouteOptions::default();
        opts.local_addresses = vec![ip("192.0.2.2")];
        let e = go(&resolver, "mail1.postel.test", &opts).await.unwrap_err();
        assert!(matches!(e, RouteError::Loop { .. }), "{e:?}");
        assert_eq!(e.status().1.to_string(), "5.4.6");
    });
}

#[test]
fn nsd_rule_11_families_and_caps() {
    with_nsd(async |resolver, _nsd| {
        let r = go(&resolver, "mail1.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        let b = r
            .exchangers
            .iter()
            .find(|e| e.name.starts_with("mx-b"))
            .unwrap();
        assert_eq!(b.addresses, [ip("2001:db8::2"), ip("192.0.2.2")]);

        let mut v4 = RouteOptions::default();
        v4.family = Family::Ipv4Only;
        let r = go(&resolver, "mail1.postel.test", &v4).await.unwrap();
        let b = r
            .exchangers
            .iter()
            .find(|e| e.name.starts_with("mx-b"))
            .unwrap();
        assert_eq!(b.addresses, [ip("192.0.2.2")]);

        let mut v4first = RouteOptions::default();
        v4first.family = Family::Ipv4First;
        let r = go(&resolver, "mail1.postel.test", &v4first).await.unwrap();
        let b = r
            .exchangers
            .iter()
            .find(|e| e.name.starts_with("mx-b"))
            .unwrap();
        assert_eq!(b.addresses, [ip("192.0.2.2"), ip("2001:db8::2")]);

        // Six addresses on the first host, one on the second: five in all,
        // and the second host keeps its place.
        let r = go(&resolver, "many.postel.test", &RouteOptions::default())
            .await
            .unwrap();
        let total: usize = r.exchangers.iter().map(|e| e.addresses.len()).sum();
        assert_eq!(total, 5);
        assert_eq!(
            names(&r),
            ["big.many.postel.test", "small.many.postel.test"]
        );
        assert_eq!(r.exchangers[1].addresses, [ip("192.0.2.47")]);
    });
}

#[test]
fn nsd_rule_12_answers_cached_within_their_ttl_only() {
    with_nsd(async |resolver, nsd| {
        let opts = RouteOptions::default();
        go(&resolver, "short.postel.test", &opts).await.unwrap();
        go(&resolver, "long.postel.test", &opts).await.unwrap();
        // The server goes away: the hour-long answer is still known, the
        // one-second answer expires and the retry asks again, and fails.
        drop(nsd);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = go(&resolver, "long.postel.test", &opts).await.unwrap();
        assert_eq!(r.exchangers[0].addresses, [ip("192.0.2.31")]);
        let e = go(&resolver, "short.postel.test", &opts).await.unwrap_err();
        assert!(!e.is_permanent(), "{e:?}");
    });
}
