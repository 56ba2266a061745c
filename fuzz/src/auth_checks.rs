//! Mail authentication's own parsing against any message or record: the
//! removal of forged Authentication-Results, the SPF grammar check, the
//! signer (which parses the message with mail-auth, as verification does
//! for every message that arrives), and the Authentication-Results writer
//! with any text in its values.

use postel_auth::results::{MethodResult, authentication_results, strip_own_results};
use postel_auth::{Signer, spf::record_problem};

/// A key made for this check only.
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MFECAQEwBQYDK2VwBCIEIO20UudASw5KKYJxXgoVRkzGM9IHPwGKXSbstkUouBQx
gSEAip71Nb7/u8Y3TLeXXiqUBchNj0XFPjeZFPkU1oqdmg8=
-----END PRIVATE KEY-----
";

pub fn check_auth(data: &[u8]) {
    if let Some(kept) = strip_own_results(data, "mx.example.net") {
        assert!(kept.len() < data.len(), "removal removes");
        assert!(
            strip_own_results(&kept, "mx.example.net").is_none(),
            "nothing of ours is left after removal"
        );
    }

    let _ = record_problem(data);

    let mut signer = Signer::default();
    signer.add("example.com", "f", KEY).expect("the key loads");
    if let Ok(Some(fields)) = signer.sign(data) {
        assert!(fields.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"));
        assert!(fields.ends_with("\r\n"));
        let lines: Vec<&str> = fields.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(
            lines[1..].iter().all(|l| l.starts_with('\t')),
            "folded with tabs"
        );
    }

    let text = String::from_utf8_lossy(data);
    let half = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    let (reason, value) = text.split_at(half);
    let field = authentication_results(
        "mx.example.net",
        &[MethodResult {
            method: "dkim",
            result: "fail",
            reason: Some(reason.to_owned()),
            properties: vec![("header.d", value.to_owned())],
        }],
    );
    let body = field.strip_suffix("\r\n").expect("a line end");
    for (i, line) in body.split("\r\n").enumerate() {
        assert!(i == 0 || line.starts_with('\t'), "a fold, not a new field");
        assert!(!line.contains(['\r', '\n']), "no bare line ends");
    }
}
