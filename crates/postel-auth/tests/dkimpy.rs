#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! DKIM against an implementation nobody here wrote: dkimpy (Debian's
//! python3-dkim) signs and postel-auth verifies, postel-auth signs and
//! dkimpy verifies, with the same keys; and the example of RFC 8463
//! appendix A (`data/rfc8463-a3.eml`: one message signed with ed25519-sha256
//! and rsa-sha256) verifies. Keys are served by a name server on a loopback
//! port; dkimpy gets the same records.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use postel_auth::{Algorithm, Authenticator, DnsConfig, GeneratedKey, Outcome, Signer, generate};
use postel_testkit::dns::{DnsServer, Rr, Zone};

const MESSAGE: &[u8] = b"From: Alice <alice@example.com>\r\n\
To: bob@example.net\r\n\
Subject: Lunch\r\n\
Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n\
Message-ID: <lunch-1@example.com>\r\n\
\r\n\
Noon at the usual place?\r\n\
\r\n\
-- \r\n\
Alice\r\n";

/// RFC 8463 appendix A.2: the keys of football.example.com.
const RFC8463_KEYS: &[(&str, &str)] = &[
    (
        "brisbane._domainkey.football.example.com",
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    ),
    (
        "test._domainkey.football.example.com",
        "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
    ),
];

struct Keys {
    dir: PathBuf,
    rsa: GeneratedKey,
    ed: GeneratedKey,
    /// Published under the selectors `wrong` and `wronged`: not the keys
    /// that sign.
    other_rsa: GeneratedKey,
    other_ed: GeneratedKey,
}

impl Keys {
    fn new() -> Keys {
        let dir = postel_testkit::temp_dir("dkimpy");
        let keys = Keys {
            rsa: generate(Algorithm::Rsa).unwrap(),
            ed: generate(Algorithm::Ed25519).unwrap(),
            other_rsa: generate(Algorithm::Rsa).unwrap(),
            other_ed: generate(Algorithm::Ed25519).unwrap(),
            dir,
        };
        std::fs::write(keys.dir.join("rsa.pem"), &keys.rsa.private_pem).unwrap();
        std::fs::write(keys.dir.join("ed.pem"), &keys.ed.private_pem).unwrap();
        keys
    }

    fn records(&self) -> Vec<(String, String)> {
        let mut r: Vec<(String, String)> = vec![
            (
                "rsa._domainkey.example.com".into(),
                self.rsa.dns_record.clone(),
            ),
            (
                "ed._domainkey.example.com".into(),
                self.ed.dns_record.clone(),
            ),
            (
                "wrong._domainkey.example.com".into(),
                self.other_rsa.dns_record.clone(),
            ),
            (
                "wronged._domainkey.example.com".into(),
                self.other_ed.dns_record.clone(),
            ),
            (
                "arc._domainkey.list.example.org".into(),
                self.rsa.dns_record.clone(),
            ),
        ];
        r.extend(
            RFC8463_KEYS
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        r
    }

    fn key_file(&self, algorithm: &str) -> PathBuf {
        self.dir.join(if algorithm == "rsa-sha256" {
            "rsa.pem"
        } else {
            "ed.pem"
        })
    }
}

fn zone(records: &[(String, String)]) -> Zone {
    let mut zone = Zone::default();
    for (name, value) in records {
        let strings = value.as_bytes().chunks(255).map(<[u8]>::to_vec).collect();
        zone.add(name, Rr::Txt(strings));
    }
    zone
}

fn dkimpy(python: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dkimpy.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn authenticator(server: &DnsServer) -> Authenticator {
    let dns = DnsConfig {
        servers: vec![server.addr],
        timeout: Duration::from_secs(2),
        attempts: 1,
        ..Default::default()
    };
    Authenticator::new(&dns, "mx.example.net").unwrap()
}

/// The outcome of each signature as postel-auth sees it.
async fn ours(auth: &Authenticator, message: &[u8]) -> Vec<Outcome> {
    auth.verify(message, None)
        .await
        .dkim
        .iter()
        .map(|d| d.outcome)
        .collect()
}

/// `message` with `from` replaced by `to` once.
fn changed(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(message.to_vec())
        .unwrap()
        .replacen(from, to, 1)
        .into_bytes()
}

/// The cases for one algorithm; how many were checked.
#[allow(clippy::too_many_lines)] // One case after another.
async fn signed_by_dkimpy(
    python: &Path,
    keys: &Keys,
    auth: &Authenticator,
    (algorithm, selector, wrong): (&str, &str, &str),
) -> usize {
    let python = python.to_path_buf();
    let mut checked = 0;
    let key = keys.key_file(algorithm);
    let key = key.to_str().unwrap();
    for canon in [
        "simple/simple",
        "relaxed/relaxed",
        "relaxed/simple",
        "simple/relaxed",
    ] {
        let signed = dkimpy(
            &python,
            &["sign", algorithm, canon, selector, "example.com", key],
            MESSAGE,
        );
        assert_eq!(
            ours(auth, &signed).await,
            [Outcome::Pass],
            "{algorithm} {canon}"
        );
        checked += 1;
    }
    let signed = dkimpy(
        &python,
        &[
            "sign",
            algorithm,
            "relaxed/relaxed",
            selector,
            "example.com",
            key,
        ],
        MESSAGE,
    );
    let verdict = auth.verify(&signed, None).await;
    assert!(
        verdict.header().contains(&format!(
            "dkim=pass header.d=example.com header.s={selector} header.a={algorithm} header.b="
        )),
        "{}",
        verdict.header()
    );
    // A body that no longer matches its hash is `neutral`, as OpenDKIM
    // reports it ("body hash did not verify"); a signature that does not
    // verify is `fail`. Neither passes.
    let body = auth.verify(&changed(&signed, "Noon", "Two"), None).await;
    assert_eq!(
        body.dkim[0].outcome,
        Outcome::Neutral,
        "{algorithm}: a changed body"
    );
    assert!(
        body.header().contains("dkim=neutral reason="),
        "{}",
        body.header()
    );
    checked += 1;
    let header = changed(&signed, "Subject: Lunch", "Subject: Dinner");
    assert_eq!(
        ours(auth, &header).await,
        [Outcome::Fail],
        "{algorithm}: a changed signed header"
    );
    checked += 1;
    let expired = dkimpy(
        &python,
        &[
            "sign",
            algorithm,
            "relaxed/relaxed",
            selector,
            "example.com",
            key,
            "expired",
        ],
        MESSAGE,
    );
    assert!(
        String::from_utf8_lossy(&expired).contains(" x="),
        "dkimpy wrote x="
    );
    let got = ours(auth, &expired).await;
    assert!(
        matches!(got[..], [Outcome::Fail | Outcome::Neutral]),
        "{algorithm} expired: {got:?}"
    );
    checked += 1;
    let wrong_key = dkimpy(
        &python,
        &[
            "sign",
            algorithm,
            "relaxed/relaxed",
            wrong,
            "example.com",
            key,
        ],
        MESSAGE,
    );
    assert_eq!(
        ours(auth, &wrong_key).await,
        [Outcome::Fail],
        "{algorithm}: the wrong key"
    );
    checked += 1;
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn dkimpy_signs_and_postel_verifies() {
    let Some(python) = postel_testkit::debian_python("dkim, nacl", "python3-dkim") else {
        return;
    };
    let keys = Keys::new();
    let server = DnsServer::start(zone(&keys.records()));
    let auth = authenticator(&server);
    let mut checked = 0;
    for (algorithm, selector, wrong) in [
        ("rsa-sha256", "rsa", "wrong"),
        ("ed25519-sha256", "ed", "wronged"),
    ] {
        checked += signed_by_dkimpy(&python, &keys, &auth, (algorithm, selector, wrong)).await;
    }
    println!("dkimpy signed, postel-auth verified: {checked} cases");
    assert_eq!(checked, 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn postel_signs_and_dkimpy_verifies() {
    let Some(python) = postel_testkit::debian_python("dkim, nacl", "python3-dkim") else {
        return;
    };
    let keys = Keys::new();
    let mut signer = Signer::default();
    signer
        .add("example.com", "ed", &keys.ed.private_pem)
        .unwrap();
    signer
        .add("example.com", "rsa", &keys.rsa.private_pem)
        .unwrap();
    let fields = signer.sign(MESSAGE).unwrap().expect("example.com signs");
    let signed = [fields.as_bytes(), MESSAGE].concat();
    let text = String::from_utf8_lossy(&signed);
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(
        text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"),
        "{text}"
    );
    assert!(text.contains("c=relaxed/relaxed"), "{text}");

    let records: serde_like::Json = keys.records().into();
    let dns = keys.dir.join("dns.json");
    std::fs::write(&dns, records.0).unwrap();
    let dns = dns.to_str().unwrap();
    let verify =
        |message: &[u8]| String::from_utf8(dkimpy(&python, &["verify", dns], message)).unwrap();
    assert_eq!(verify(&signed), "pass\npass\n", "both signatures verify");
    // Relaxed header canonicalization: refolding a signed field keeps it.
    let refolded = changed(&signed, "Subject: Lunch", "Subject:   Lunch");
    assert_eq!(verify(&refolded), "pass\npass\n");
    assert_eq!(
        verify(&changed(&signed, "usual", "other")),
        "fail\nfail\n",
        "a changed body"
    );
    // From is signed once more than it occurs: a second From breaks both.
    let added_from = [b"From: mallory@example.org\r\n".as_slice(), &signed].concat();
    assert_eq!(verify(&added_from), "fail\nfail\n", "an added From");

    // And postel-auth verifies its own signatures, through DNS.
    let server = DnsServer::start(zone(&keys.records()));
    let auth = authenticator(&server);
    assert_eq!(ours(&auth, &signed).await, [Outcome::Pass, Outcome::Pass]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_arc_chain_sealed_by_dkimpy_validates() {
    let Some(python) = postel_testkit::debian_python("dkim, nacl", "python3-dkim") else {
        return;
    };
    let keys = Keys::new();
    let server = DnsServer::start(zone(&keys.records()));
    let auth = authenticator(&server);
    // A mailing list received the message, checked it, and seals what it
    // found before passing it on.
    let received = [
        b"Authentication-Results: list.example.org; dkim=none; spf=pass smtp.mailfrom=example.com\r\n"
            .as_slice(),
        MESSAGE,
    ]
    .concat();
    let key = keys.key_file("rsa-sha256");
    let sealed = dkimpy(
        &python,
        &[
            "arcsign",
            "arc",
            "list.example.org",
            key.to_str().unwrap(),
            "list.example.org",
        ],
        &received,
    );
    assert!(String::from_utf8_lossy(&sealed).starts_with("ARC-Seal: i=1;"));
    let verdict = auth.verify(&sealed, None).await;
    assert_eq!(verdict.arc, Outcome::Pass, "{}", verdict.header());
    assert!(
        verdict.header().contains("arc=pass"),
        "{}",
        verdict.header()
    );
    let changed = changed(&sealed, "Noon", "Midnight");
    let verdict = auth.verify(&changed, None).await;
    assert_ne!(verdict.arc, Outcome::Pass, "{}", verdict.header());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rfc8463_example_verifies() {
    let message = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rfc8463-a3.eml"
    ))
    .unwrap();
    // The file has bare LF line ends; the message on the wire has CRLF.
    let message = String::from_utf8(message)
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    let records: Vec<(String, String)> = RFC8463_KEYS
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let server = DnsServer::start(zone(&records));
    let auth = authenticator(&server);
    let verdict = auth.verify(&message, None).await;
    let got: Vec<(String, &str, Outcome)> = verdict
        .dkim
        .iter()
        .map(|d| (d.selector.clone(), d.algorithm.as_str(), d.outcome))
        .collect();
    assert_eq!(
        got,
        [
            ("brisbane".to_owned(), "ed25519-sha256", Outcome::Pass),
            ("test".to_owned(), "rsa-sha256", Outcome::Pass)
        ]
    );
}

mod serde_like {
    /// The records as the JSON object dkimpy.py reads.
    pub(super) struct Json(pub(super) String);

    impl From<Vec<(String, String)>> for Json {
        fn from(records: Vec<(String, String)>) -> Json {
            let body: Vec<String> = records
                .iter()
                .map(|(n, v)| format!("\"{n}\": \"{}\"", v.replace('"', "\\\"")))
                .collect();
            Json(format!("{{{}}}", body.join(", ")))
        }
    }
}
