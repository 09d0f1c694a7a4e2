//! The names a peer's certificate presents, and whether one of them is a
//! trusted peer: a small DER walk over the X.509 structure (RFC 5280) to
//! the subject's common names (OID 2.5.4.3) and the subject alternative
//! name extension's DNS names (OID 2.5.29.17, `dNSName`).
//!
//! The walk is only ever given a certificate rustls and webpki have
//! already checked against the CA, but it trusts nothing: a malformed
//! structure yields `None`, never a panic.
//!
//! Names compare as DNS names do: ASCII case-insensitively, a trailing
//! dot ignored. A wildcard in a certificate (`*.pool.example.com`) matches
//! no peer: a peer is named exactly (RFC 5922 §7.2).

/// The names a certificate presents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames<'a> {
    /// The subject's common names (CN), usually one.
    pub common_names: Vec<&'a str>,
    /// The DNS names of the subject alternative name extension.
    pub dns_names: Vec<&'a str>,
}

impl<'a> CertNames<'a> {
    /// The first configured peer that one of the names is, if any.
    pub fn trusted<'p>(&self, peers: &'p [String]) -> Option<&'p str> {
        peers
            .iter()
            .find(|peer| self.common_names.iter().chain(&self.dns_names).any(|name| same_name(name, peer)))
            .map(String::as_str)
    }

    /// The names, for a log line: `CN=a, DNS=b, DNS=c` (or `no names`).
    pub fn describe(&self) -> String {
        let cn = self.common_names.iter().map(|n| format!("CN={n}"));
        let dns = self.dns_names.iter().map(|n| format!("DNS={n}"));
        let all: Vec<String> = cn.chain(dns).collect();
        if all.is_empty() { "no names".to_string() } else { all.join(", ") }
    }
}

/// True when the name a certificate presents is the trusted `peer`:
/// equal ignoring ASCII case and a trailing dot; wildcards never match.
pub fn same_name(presented: &str, peer: &str) -> bool {
    let presented = presented.strip_suffix('.').unwrap_or(presented);
    let peer = peer.strip_suffix('.').unwrap_or(peer);
    !presented.is_empty() && !presented.contains('*') && presented.eq_ignore_ascii_case(peer)
}

/// Checks a trusted peer name of the configuration: a DNS name (letters,
/// digits, hyphens, dots; labels of 1 to 63 characters, 253 in all), no
/// wildcard. Returns it lowercased, without a trailing dot.
pub fn peer_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("{text:?} is not a DNS name (the peer's certificate CN or SAN DNS name, no wildcard)"));
    }
    Ok(name.to_ascii_lowercase())
}

/// A reader of DER: one tag-length-value after another.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element's tag and contents; `None` at the end or on a
    /// malformed element (multi-byte tags and lengths over 4 bytes, which
    /// no certificate field here uses, included).
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes.iter().fold(0usize, |len, &b| (len << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let (value, after) = rest.split_at(len);
        self.0 = after;
        Some((tag, value))
    }

    /// The next element's contents if it has `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.next().filter(|(t, _)| *t == tag).map(|(_, value)| value)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
/// `[0]` EXPLICIT: the version of a certificate.
const VERSION: u8 = 0xa0;
/// `[3]` EXPLICIT: the extensions of a certificate.
const EXTENSIONS: u8 = 0xa3;
/// `[2]` IMPLICIT IA5String: a `dNSName` in GeneralNames.
const DNS_NAME: u8 = 0x82;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: [u8; 3] = [0x55, 0x1d, 0x11];

/// A directory string as text: UTF8String, PrintableString, IA5String, or
/// a TeletexString that is plain ASCII. Other forms are not names here.
fn directory_string(tag: u8, value: &[u8]) -> Option<&str> {
    match tag {
        0x0c | 0x13 | 0x16 => core::str::from_utf8(value).ok(),
        0x14 if value.is_ascii() => core::str::from_utf8(value).ok(),
        _ => None,
    }
}

/// The common names and SAN DNS names of a DER certificate, or `None` if
/// it is not one.
pub fn certificate_names(der: &[u8]) -> Option<CertNames<'_>> {
    let certificate = Der(der).expect(SEQUENCE)?;
    let mut tbs = Der(Der(certificate).expect(SEQUENCE)?);
    let (mut tag, _) = tbs.next()?;
    if tag == VERSION {
        (tag, _) = tbs.next()?; // then the serial number
    }
    if tag != 0x02 {
        return None;
    }
    tbs.expect(SEQUENCE)?; // signature algorithm
    tbs.expect(SEQUENCE)?; // issuer
    tbs.expect(SEQUENCE)?; // validity
    let subject = tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?; // subject public key info
    let mut names = CertNames::default();
    let mut rdns = Der(subject);
    while let Some(rdn) = rdns.next() {
        let (SET, mut attributes) = (rdn.0, Der(rdn.1)) else { return None };
        while let Some(attribute) = attributes.next() {
            let (SEQUENCE, mut fields) = (attribute.0, Der(attribute.1)) else { return None };
            let oid = fields.expect(OID)?;
            let (tag, value) = fields.next()?;
            if oid == COMMON_NAME {
                if let Some(cn) = directory_string(tag, value) {
                    names.common_names.push(cn);
                }
            }
        }
    }
    // Issuer and subject unique ids may come before the extensions.
    while let Some((tag, value)) = tbs.next() {
        if tag != EXTENSIONS {
            continue;
        }
        let mut extensions = Der(Der(value).expect(SEQUENCE)?);
        while let Some(extension) = extensions.next() {
            let (SEQUENCE, mut fields) = (extension.0, Der(extension.1)) else { return None };
            if fields.expect(OID)? != SUBJECT_ALT_NAME {
                continue;
            }
            let (mut tag, mut value) = fields.next()?;
            if tag == 0x01 {
                (tag, value) = fields.next()?; // the critical flag
            }
            if tag != OCTET_STRING {
                return None;
            }
            let mut general_names = Der(Der(value).expect(SEQUENCE)?);
            while let Some((tag, value)) = general_names.next() {
                if tag == DNS_NAME {
                    names.dns_names.push(core::str::from_utf8(value).ok().filter(|n| n.is_ascii())?);
                }
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(cn: Option<&str>, sans: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
        if let Some(cn) = cn {
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn peers(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| peer_name(n).unwrap()).collect()
    }

    #[test]
    fn the_common_name_and_the_san_dns_names_are_read() {
        let der = certificate(Some("lync-pool.example.com"), &["pool1.example.com", "pool2.example.com"]);
        let names = certificate_names(&der).unwrap();
        assert_eq!(names.common_names, ["lync-pool.example.com"]);
        assert_eq!(names.dns_names, ["pool1.example.com", "pool2.example.com"]);
        assert_eq!(names.describe(), "CN=lync-pool.example.com, DNS=pool1.example.com, DNS=pool2.example.com");
        let no_san = certificate(Some("Lync Pool"), &[]);
        let names = certificate_names(&no_san).unwrap();
        assert_eq!((names.common_names, names.dns_names), (vec!["Lync Pool"], vec![]));
        let no_cn = certificate(None, &["pool1.example.com"]);
        assert_eq!(certificate_names(&no_cn).unwrap().common_names, Vec::<&str>::new());
    }

    #[test]
    fn a_peer_is_trusted_by_its_cn_or_any_san_dns_name_in_any_case() {
        let trusted = peers(&["pool.example.com", "LYNC2.Example.COM."]);
        assert_eq!(trusted, ["pool.example.com", "lync2.example.com"]);
        let by_cn = certificate(Some("Pool.Example.com"), &["other.example.org"]);
        assert_eq!(certificate_names(&by_cn).unwrap().trusted(&trusted), Some("pool.example.com"));
        let by_san = certificate(Some("Lync Front End"), &["fe1.example.com", "lync2.example.com."]);
        assert_eq!(certificate_names(&by_san).unwrap().trusted(&trusted), Some("lync2.example.com"));
        let neither = certificate(Some("pool.example.com.evil.test"), &["evil.test", "example.com"]);
        assert_eq!(certificate_names(&neither).unwrap().trusted(&trusted), None);
        let nothing = certificate(None, &[]);
        assert_eq!(certificate_names(&nothing).unwrap().trusted(&trusted), None);
    }

    #[test]
    fn wildcards_and_near_misses_never_match() {
        assert!(same_name("POOL.example.com", "pool.example.com"));
        assert!(same_name("pool.example.com.", "pool.example.com"));
        assert!(!same_name("*.example.com", "pool.example.com"));
        assert!(!same_name("*", "*"));
        assert!(!same_name("pool.example.co", "pool.example.com"));
        assert!(!same_name("", ""));
        let wildcard = certificate(None, &["*.example.com"]);
        assert_eq!(certificate_names(&wildcard).unwrap().trusted(&peers(&["pool.example.com"])), None);
    }

    #[test]
    fn configured_peer_names_must_be_dns_names() {
        assert_eq!(peer_name("Pool-1.Example.com").unwrap(), "pool-1.example.com");
        for bad in ["", ".", "*.example.com", "pool..example.com", "-pool.example.com", "pool example.com", "pool_1.x"]
        {
            assert!(peer_name(bad).is_err(), "{bad:?}");
        }
        assert!(peer_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn garbage_and_every_truncation_yield_none_or_names_never_a_panic() {
        let der = certificate(Some("pool.example.com"), &["pool.example.com"]);
        for len in 0..der.len() {
            assert_eq!(certificate_names(&der[..len]), None, "truncated to {len}");
        }
        for i in 0..der.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bent = der.clone();
                bent[i] ^= flip;
                let _ = certificate_names(&bent);
            }
        }
        assert_eq!(certificate_names(b""), None);
        assert_eq!(certificate_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(certificate_names(&[0x1f, 0x01, 0x00]), None);
    }
}
