//! RFC 7208's grammar for an SPF record, checked before the record is
//! evaluated: mail-auth evaluates records the grammar refuses (a CIDR
//! length out of range, a domain-spec without a valid top label, control
//! characters between terms), where RFC 7208 says `permerror`. The check
//! covers the record of the checked domain; an `include:` or `redirect=`
//! target is evaluated by mail-auth as it stands.

/// Why a record is not an SPF record RFC 7208 section 12 accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError(pub(crate) String);

/// The records among a name's TXT records that are SPF records (RFC 7208
/// section 4.5: `v=spf1` then a space or the end, in any case).
pub(crate) fn spf_records(txt: &[Vec<u8>]) -> Vec<&[u8]> {
    txt.iter()
        .map(Vec::as_slice)
        .filter(|r| {
            r.len() >= 6
                && r[..6].eq_ignore_ascii_case(b"v=spf1")
                && matches!(r.get(6), None | Some(b' '))
        })
        .collect()
}

/// Checks one record against the grammar of RFC 7208 section 12.
pub(crate) fn check(record: &[u8]) -> Result<(), SyntaxError> {
    let bad = |why: String| Err(SyntaxError(why));
    let Ok(text) = std::str::from_utf8(record) else {
        return bad("not 7-bit ASCII".into());
    };
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return bad("a character outside visible ASCII and space".into());
    }
    let mut terms = text.split(' ').filter(|t| !t.is_empty());
    terms.next(); // v=spf1, checked by spf_records
    let (mut redirect, mut exp) = (false, false);
    for term in terms {
        term_ok(term, &mut redirect, &mut exp)
            .map_err(|why| SyntaxError(format!("{term:?}: {why}")))?;
    }
    Ok(())
}

fn term_ok(term: &str, redirect: &mut bool, exp: &mut bool) -> Result<(), String> {
    let name_end = term.find([':', '/', '=']).unwrap_or(term.len());
    if term[name_end..].starts_with('=') {
        let (name, value) = (&term[..name_end], &term[name_end + 1..]);
        let mut chars = name.chars();
        let name_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return Err("not a modifier name".into());
        }
        return match name.to_ascii_lowercase().as_str() {
            "redirect" | "exp" => {
                let seen = if name.eq_ignore_ascii_case("exp") {
                    exp
                } else {
                    redirect
                };
                if std::mem::replace(seen, true) {
                    return Err("given twice".into());
                }
                domain_spec(value)
            }
            _ => macro_string(value).map(|_| ()),
        };
    }
    let directive = term.strip_prefix(['+', '-', '?', '~']).unwrap_or(term);
    let name_end = directive.find([':', '/']).unwrap_or(directive.len());
    let (name, rest) = directive.split_at(name_end);
    match name.to_ascii_lowercase().as_str() {
        "all" if rest.is_empty() => Ok(()),
        "include" | "exists" => match rest.strip_prefix(':') {
            Some(spec) => domain_spec(spec),
            None => Err("needs a domain-spec".into()),
        },
        "ptr" => match rest.strip_prefix(':') {
            Some(spec) => domain_spec(spec),
            None if rest.is_empty() => Ok(()),
            None => Err("a ptr takes no CIDR length".into()),
        },
        "a" | "mx" => {
            let rest = dual_cidr(rest)?;
            match rest.strip_prefix(':') {
                Some(spec) => domain_spec(spec),
                None if rest.is_empty() => Ok(()),
                None => Err("malformed".into()),
            }
        }
        "ip4" => network::<std::net::Ipv4Addr>(rest, 32),
        "ip6" => network::<std::net::Ipv6Addr>(rest, 128),
        _ => Err("not a mechanism".into()),
    }
}

/// `:network[/length]` of an `ip4` or `ip6` mechanism.
fn network<A: std::str::FromStr>(rest: &str, max: u32) -> Result<(), String> {
    let rest = rest.strip_prefix(':').ok_or("needs an address")?;
    let (net, len) = rest
        .split_once('/')
        .map_or((rest, None), |(n, l)| (n, Some(l)));
    net.parse::<A>()
        .map_err(|_| format!("{net:?} is not an address of this family"))?;
    len.map_or(Ok(()), |l| cidr(l, max).map(|_| ()))
}

/// A CIDR length: no leading zero, at most `max`.
fn cidr(digits: &str, max: u32) -> Result<u32, String> {
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    match digits.parse::<u32>() {
        Ok(n) if ok && n <= max => Ok(n),
        _ => Err(format!("/{digits} is not a CIDR length of 0 to {max}")),
    }
}

/// Strips a dual-cidr-length from the end of an `a` or `mx` term:
/// `[ "/" ip4-length ] [ "//" ip6-length ]`.
fn dual_cidr(mut rest: &str) -> Result<&str, String> {
    if let Some(at) = rest.rfind("//") {
        let digits = &rest[at + 2..];
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            cidr(digits, 128)?;
            rest = &rest[..at];
        }
    }
    if let Some(at) = rest.rfind('/') {
        let digits = &rest[at + 1..];
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            cidr(digits, 32)?;
            rest = &rest[..at];
        }
    }
    Ok(rest)
}

/// A macro-string (RFC 7208 section 7.1); whether it ends in a
/// macro-expand.
fn macro_string(s: &str) -> Result<bool, String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut ends_in_macro = false;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                match bytes.get(i + 1) {
                    Some(b'%' | b'_' | b'-') => i += 2,
                    Some(b'{') => {
                        let close = s[i..].find('}').ok_or("an unclosed macro")? + i;
                        let inner = &s[i + 2..close];
                        let mut chars = inner.chars();
                        let letter = chars.next().ok_or("an empty macro")?;
                        if !"sloidphcrtv".contains(letter.to_ascii_lowercase()) {
                            return Err(format!("no macro letter {letter:?}"));
                        }
                        let rest: String = chars.collect();
                        let digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                        let delimiters = digits.strip_prefix(['r', 'R']).unwrap_or(digits);
                        if !delimiters.chars().all(|c| ".-+,/_=".contains(c)) {
                            return Err(format!("a malformed macro %{{{inner}}}"));
                        }
                        i = close + 1;
                    }
                    _ => return Err("a % that starts no macro".into()),
                }
                ends_in_macro = true;
            }
            0x21..=0x7e => {
                i += 1;
                ends_in_macro = false;
            }
            _ => return Err("a character a domain-spec cannot hold".into()),
        }
    }
    Ok(ends_in_macro)
}

/// A domain-spec: a macro-string ending in a macro or in `.toplabel`.
fn domain_spec(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("an empty domain-spec".into());
    }
    if macro_string(spec)? {
        return Ok(());
    }
    let name = spec.strip_suffix('.').unwrap_or(spec);
    let Some((head, top)) = name.rsplit_once('.') else {
        return Err("a domain-spec needs a dot and a top label".into());
    };
    let alnum_dash = !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !top.starts_with('-')
        && !top.ends_with('-');
    if !alnum_dash || !(top.bytes().any(|b| b.is_ascii_alphabetic()) || top.contains('-')) {
        return Err(format!("{top:?} is not a top label"));
    }
    // Without macros the name is looked up as written: an empty or
    // over-long label can never be found (RFC 7208 section 4.3 and 4.8).
    if !spec.contains('%') && head.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err("a label that is empty or longer than 63 octets".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check, spf_records};

    #[test]
    fn the_grammar() {
        for ok in [
            "v=spf1 -all",
            "v=spf1 a mx/24 a:example.com/24//64 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all",
            "v=spf1 include:_spf.example.com exists:%{i}.%{d2}.rbl.example redirect=%{d}",
            "v=spf1 a:foo:bar/baz.example.com moo.cow-far_out=man:dog/cat -all",
            "v=spf1 exp=explain.%{d} ?all ",
            "v=spf1 a:museum.example. ptr:example.com ptr",
        ] {
            assert_eq!(check(ok.as_bytes()), Ok(()), "{ok}");
        }
        for bad in [
            "v=spf1 a/33",
            "v=spf1 a//129",
            "v=spf1 a/24/64",
            "v=spf1 ip4:1.2.3.4/032",
            "v=spf1 ip4:1.2.3.4.5",
            "v=spf1 a:foo-bar",
            "v=spf1 a:example.-com",
            "v=spf1 a:abc.123",
            "v=spf1 a:museum",
            "v=spf1 a:example.com:8080",
            "v=spf1 a:foo.example.com\0",
            "v=spf1 ip4:192.0.2.5\n include:x.example",
            "v=spf1 a:ctrl.example.com\rptr",
            "v=spf1 1up=foo",
            "v=spf1 =all",
            "v=spf1 redirect=-all",
            "v=spf1 exp=-all",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 a:%{z}.example.com",
            "v=spf1 a:mail.example...com",
            "v=spf1 frobnicate",
            "v=spf1 \u{96}all",
        ] {
            assert!(check(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn which_records_are_spf() {
        let txt = [
            b"v=spf1 -all".to_vec(),
            b"V=SPF1".to_vec(),
            b"v=spf10".to_vec(),
            b"other".to_vec(),
        ];
        assert_eq!(spf_records(&txt), [&b"v=spf1 -all"[..], b"V=SPF1"]);
    }
}
