//! TLS ClientHello parsing and its JA4 fingerprint (FoxIO's JA4 TLS client
//! fingerprint, `technical_details/JA4.md`), written here from the specification so
//! a test never computes an expected value with the client library it checks.
//!
//! `JA4 = a_b_c`: `a` is `t` (TCP), the highest TLS version offered (`13`, `12`, …),
//! `d` when SNI is sent (else `i`), the number of cipher suites and of extensions (two
//! digits each, GREASE removed), and the first and last character of the first ALPN
//! value (`00` without ALPN); `b` is the first 12 hex digits of the SHA-256 of the
//! sorted cipher suites (4-digit hex, comma-separated); `c` the same of the sorted
//! extensions without SNI and ALPN, then `_` and the signature algorithms in the order
//! sent (GREASE removed from every list). Extension order does not matter, which is why JA4 (unlike JA3) is stable while
//! Chrome shuffles its extensions per connection.

use sha2::{Digest, Sha256};

const SNI: u16 = 0x0000;
const ALPN: u16 = 0x0010;
const SIGNATURE_ALGORITHMS: u16 = 0x000d;
const SUPPORTED_VERSIONS: u16 = 0x002b;

/// What JA4 reads from a ClientHello, GREASE values included (as sent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub cipher_suites: Vec<u16>,
    /// Extension types in the order sent.
    pub extensions: Vec<u16>,
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    pub supported_versions: Vec<u16>,
    pub signature_algorithms: Vec<u16>,
}

/// GREASE values (RFC 8701): `0x?a?a` with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Reads big-endian fields off a byte slice, failing on a short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated ClientHello: wanted {n} bytes, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Result<usize, String> {
        let b = self.take(3)?;
        Ok((b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }
    fn vec8(&mut self) -> Result<&'a [u8], String> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn u16_list(bytes: &[u8]) -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    }
}

impl ClientHello {
    /// Parses a handshake message (type 1, 24-bit length, body), as carried by TLS
    /// handshake records.
    pub fn parse(message: &[u8]) -> Result<ClientHello, String> {
        let mut r = Reader(message);
        let kind = r.u8()?;
        if kind != 1 {
            return Err(format!("handshake message type {kind}, not a ClientHello"));
        }
        let len = r.u24()?;
        let mut r = Reader(r.take(len)?);
        let mut hello = ClientHello {
            legacy_version: r.u16()?,
            ..ClientHello::default()
        };
        r.take(32)?; // random
        r.vec8()?; // legacy session id
        hello.cipher_suites = Reader::u16_list(r.vec16()?);
        r.vec8()?; // compression methods
        if r.0.is_empty() {
            return Ok(hello);
        }
        let mut exts = Reader(r.vec16()?);
        while !exts.0.is_empty() {
            let kind = exts.u16()?;
            let mut data = Reader(exts.vec16()?);
            hello.extensions.push(kind);
            match kind {
                SNI => {
                    let mut list = Reader(data.vec16()?);
                    while !list.0.is_empty() {
                        let name_type = list.u8()?;
                        let name = list.vec16()?;
                        if name_type == 0 {
                            hello.server_name = Some(String::from_utf8_lossy(name).into());
                        }
                    }
                }
                ALPN => {
                    let mut list = Reader(data.vec16()?);
                    while !list.0.is_empty() {
                        hello
                            .alpn
                            .push(String::from_utf8_lossy(list.vec8()?).into());
                    }
                }
                SUPPORTED_VERSIONS => {
                    hello.supported_versions = Reader::u16_list(data.vec8()?);
                }
                SIGNATURE_ALGORITHMS => {
                    hello.signature_algorithms = Reader::u16_list(data.vec16()?);
                }
                _ => {}
            }
        }
        Ok(hello)
    }

    /// The JA4 fingerprint (TCP).
    pub fn ja4(&self) -> String {
        let (a, ciphers, exts) = self.parts();
        format!("{a}_{}_{}", hash12(&ciphers), hash12(&exts))
    }

    /// JA4 unhashed (`JA4_r`): the sorted lists themselves.
    pub fn ja4_r(&self) -> String {
        let (a, ciphers, exts) = self.parts();
        format!("{a}_{ciphers}_{exts}")
    }

    fn parts(&self) -> (String, String, String) {
        let version = self
            .supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.legacy_version);
        let version = match version {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0x0002 => "s2",
            0xfeff => "d1",
            0xfefd => "d2",
            0xfefc => "d3",
            _ => "00",
        };
        let sni = if self.extensions.contains(&SNI) {
            'd'
        } else {
            'i'
        };
        let mut ciphers: Vec<u16> = self
            .cipher_suites
            .iter()
            .copied()
            .filter(|c| !is_grease(*c))
            .collect();
        let mut exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|e| !is_grease(*e))
            .collect();
        let alpn = match self.alpn.first().map(|a| a.as_bytes()) {
            None | Some([]) => "00".to_string(),
            Some(bytes) => {
                let (first, last) = (bytes[0], bytes[bytes.len() - 1]);
                if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                    format!("{}{}", first as char, last as char)
                } else {
                    // Non-alphanumeric: the first hex digit of the first byte and the
                    // last hex digit of the last byte.
                    let hex = format!("{first:02x}{last:02x}");
                    format!("{}{}", &hex[..1], &hex[3..])
                }
            }
        };
        let a = format!(
            "t{version}{sni}{:02}{:02}{alpn}",
            ciphers.len().min(99),
            exts.len().min(99)
        );
        ciphers.sort_unstable();
        exts.retain(|e| *e != SNI && *e != ALPN);
        exts.sort_unstable();
        let list = |v: &[u16]| {
            v.iter()
                .map(|x| format!("{x:04x}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut ext_part = list(&exts);
        // GREASE goes from the signature algorithms too (Chrome 14x+ sends one), as
        // FoxIO's reference implementation does.
        let sigs: Vec<u16> = self
            .signature_algorithms
            .iter()
            .copied()
            .filter(|s| !is_grease(*s))
            .collect();
        if !sigs.is_empty() {
            ext_part.push('_');
            ext_part.push_str(&list(&sigs));
        }
        (a, list(&ciphers), ext_part)
    }
}

/// The first 12 hex digits of the SHA-256 of `text`; twelve zeros for an empty list.
fn hash12(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".into();
    }
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a ClientHello handshake message with these extensions, each given by
    /// type and body.
    fn hello(ciphers: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(0); // no session id
        body.extend(((ciphers.len() * 2) as u16).to_be_bytes());
        for c in ciphers {
            body.extend(c.to_be_bytes());
        }
        body.extend([1, 0]); // null compression
        let mut exts = Vec::new();
        for (kind, data) in extensions {
            exts.extend(kind.to_be_bytes());
            exts.extend((data.len() as u16).to_be_bytes());
            exts.extend(data);
        }
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut msg = vec![1];
        msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    fn u16s(prefix_len: usize, values: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = values.len() * 2;
        if prefix_len == 2 {
            out.extend((n as u16).to_be_bytes());
        } else {
            out.push(n as u8);
        }
        for v in values {
            out.extend(v.to_be_bytes());
        }
        out
    }

    fn extension(kind: u16) -> (u16, Vec<u8>) {
        let data = match kind {
            SNI => {
                let name = b"example.com";
                let mut entry = vec![0];
                entry.extend((name.len() as u16).to_be_bytes());
                entry.extend(name);
                let mut d = (entry.len() as u16).to_be_bytes().to_vec();
                d.extend(entry);
                d
            }
            ALPN => {
                let mut list = Vec::new();
                for p in [&b"h2"[..], b"http/1.1"] {
                    list.push(p.len() as u8);
                    list.extend(p);
                }
                let mut d = (list.len() as u16).to_be_bytes().to_vec();
                d.extend(list);
                d
            }
            SUPPORTED_VERSIONS => u16s(1, &[0x3a3a, 0x0304, 0x0303]),
            _ => vec![0],
        };
        (kind, data)
    }

    fn parse_list(csv: &str) -> Vec<u16> {
        csv.split(',')
            .map(|h| u16::from_str_radix(h, 16).unwrap())
            .collect()
    }

    /// A hello from a published `JA4_ro` (original order): GREASE added where Chrome
    /// puts it, which JA4 must ignore.
    fn from_ja4_ro(ro: &str) -> ClientHello {
        let parts: Vec<&str> = ro.split('_').collect();
        let mut ciphers = vec![0x2a2a];
        ciphers.extend(parse_list(parts[1]));
        let mut sigs = vec![0xaaaa];
        sigs.extend(parse_list(parts[3]));
        let mut exts = vec![extension(0x9a9a)];
        exts.extend(parse_list(parts[2]).into_iter().map(|kind| match kind {
            SIGNATURE_ALGORITHMS => (kind, u16s(2, &sigs)),
            _ => extension(kind),
        }));
        exts.push(extension(0xdada));
        ClientHello::parse(&hello(&ciphers, &exts)).unwrap()
    }

    #[test]
    fn foxio_published_example_matches() {
        // FoxIO's technical_details/JA4.md example (Chrome): JA4_ro → JA4.
        let h = from_ja4_ro(
            "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_0000,0033,000d,0023,000b,ff01,000a,001b,4469,0012,002d,0010,0005,002b,0017,0015_0403,0804,0401,0503,0805,0501,0806,0601",
        );
        assert_eq!(h.server_name.as_deref(), Some("example.com"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.ja4(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(
            h.ja4_r(),
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
        );
    }

    #[test]
    fn a_published_chromium_family_example_with_ech_matches() {
        // Opera 129 (Chromium 145) as published with its JA4_ro: ECH (fe0d) and the
        // new ALPS codepoint (44cd).
        let h = from_ja4_ro(
            "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_fe0d,0033,ff01,0017,001b,000a,0000,0010,0005,002b,002d,0012,000b,44cd,000d,0023_0403,0804,0401,0503,0805,0501,0806,0601",
        );
        assert_eq!(h.ja4(), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
    }

    #[test]
    fn foxio_published_example_with_a_grease_signature_algorithm_matches() {
        // FoxIO's python/test/testdata/sigalg-grease.pcapng.json: a Chrome hello with
        // ML-DSA signature algorithms, a GREASE one and extension ca34.
        let h = from_ja4_ro(
            "t13d1517h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_fe0d,0010,0017,0033,44cd,ff01,000a,000d,0023,002b,000b,ca34,002d,0000,0005,001b,0012_0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601",
        );
        assert_eq!(h.signature_algorithms[0], 0xaaaa, "sent with GREASE");
        assert_eq!(h.ja4(), "t13d1517h2_8daaf6152771_cb7bf5808d99");
    }

    #[test]
    fn without_signature_algorithms_the_list_ends_without_underscore() {
        // FoxIO's example: the extension list alone hashes to 6d807ffa2a79.
        assert_eq!(
            hash12("0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"),
            "6d807ffa2a79"
        );
    }

    #[test]
    fn no_sni_no_alpn_and_tls12_read_as_such() {
        let h = ClientHello::parse(&hello(&[0xc02f, 0x0a0a], &[extension(0x0017)])).unwrap();
        assert_eq!(h.ja4_r(), "t12i010100_c02f_0017");
        assert!(ClientHello::parse(&[2, 0, 0, 0]).is_err());
        assert!(ClientHello::parse(&hello(&[0x1301], &[])[..20]).is_err());
    }

    #[test]
    fn grease_is_recognised() {
        for g in [0x0a0a, 0x1a1a, 0xfafa] {
            assert!(is_grease(g));
        }
        for v in [0x0a1a, 0x0304, 0x1301, 0xfe0d] {
            assert!(!is_grease(v));
        }
    }
}
