//! The MX rules against a real DNS server: NSD serves a test zone on a
//! loopback port for the length of the test, and the hickory resolver asks it.
//! Skipped, with a printed reason, when NSD is not installed (`.ci/run`
//! installs it).

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postel_mx::{HickoryResolver, Resolver, RouteError, RouteOptions, route};
use postel_proto::types::Host;

const ZONE: &str = r"$ORIGIN postel.test.
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
";

/// NSD running on a loopback port; stopped by its PID when dropped.
struct Nsd {
    child: Child,
    addr: SocketAddr,
    _dir: PathBuf,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        // SIGTERM lets NSD stop its server processes too; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(40));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nsd_binary() -> Option<PathBuf> {
    ["/usr/sbin/nsd", "/usr/local/sbin/nsd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn start_nsd() -> Option<Nsd> {
    let Some(nsd) = nsd_binary() else {
        eprintln!("skipped: nsd is not installed (.ci/run installs it)");
        return None;
    };
    // A free port: bind, read it, release it for NSD.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("postel-nsd-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("postel.test.zone"), ZONE).unwrap();
    let d = dir.display();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  username: \"\"\n  database: \"\"\n  zonesdir: \"{d}\"\n  \
pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
verbosity: 1\nremote-control:\n  control-enable: no\nzone:\n  name: postel.test\n  zonefile: postel.test.zone\n"
    );
    std::fs::write(dir.join("nsd.conf"), conf).unwrap();
    let child = Command::new(nsd)
        .args(["-d", "-c"])
        .arg(dir.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some(Nsd {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: dir,
    })
}

#[test]
fn mx_rules_against_nsd() {
    let Some(server) = start_nsd() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resolver = HickoryResolver::with_servers(&[server.addr]).unwrap();
        // Wait for NSD to answer, at most 10 seconds.
        let mut up = false;
        for _ in 0..100 {
            if matches!(
                resolver.ipv4("plain.postel.test").await,
                Ok(postel_mx::Answer::Records { .. })
            ) {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "nsd did not start");
        let opts = RouteOptions::default();
        let go = |domain: &'static str| {
            let resolver = resolver.clone();
            let opts = opts.clone();
            async move {
                let host = Host::try_from(domain).unwrap();
                let mut random = |n: usize| n - 1;
                route(&resolver, &host, &opts, &mut random).await
            }
        };

        let r = go("mail1.postel.test").await.unwrap();
        let names: Vec<_> = r.exchangers.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mx-a.mail1.postel.test",
                "mx-b.mail1.postel.test",
                "mx-c.mail1.postel.test"
            ]
        );
        assert!(!r.implicit, "the domain's own A record is not used");
        let b: Vec<IpAddr> = r.exchangers[1].addresses.clone();
        assert_eq!(
            b,
            [
                "2001:db8::2".parse::<IpAddr>().unwrap(),
                "192.0.2.2".parse().unwrap()
            ]
        );

        let r = go("PLAIN.postel.test").await.unwrap();
        assert!(r.implicit);
        assert_eq!(
            r.exchangers[0].addresses,
            ["192.0.2.10".parse::<IpAddr>().unwrap()]
        );

        let r = go("alias.postel.test").await.unwrap();
        assert_eq!(
            r.exchangers[0].name, "plain.postel.test",
            "the CNAME target replaces the domain"
        );

        let e = go("nomail.postel.test").await.unwrap_err();
        assert!(matches!(e, RouteError::NullMx { .. }));

        let e = go("nowhere.postel.test").await.unwrap_err();
        assert!(matches!(e, RouteError::NoSuchDomain { .. }), "{e:?}");

        let r = go("cnamex.postel.test").await.unwrap();
        assert_eq!(
            r.exchangers[0].addresses,
            ["192.0.2.1".parse::<IpAddr>().unwrap()],
            "an exchange that is a CNAME is followed"
        );
    });
}
