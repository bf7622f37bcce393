//! How probes leave this machine: the outbound proxy. [`ProxyUrl`] is a validated proxy
//! address (HTTP, HTTPS or SOCKS5, optionally with credentials) that never prints its
//! credentials; [`ProxyChoice`] is a target's choice between the global default
//! (`OUTBOUND_PROXY`), a direct connection and its own proxy.

use std::fmt;

use crate::Secret;

/// The schemes a proxy may be reached with. `socks5h` resolves the relay's name at the
/// proxy (for networks where only the proxy can resolve it).
pub const PROXY_SCHEMES: [&str; 4] = ["http", "https", "socks5", "socks5h"];

/// A proxy URL such as `socks5://user:pass@10.0.0.2:1080`. Its `Debug` and
/// [`ProxyUrl::masked`] hide the credentials; the whole URL is a secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    /// As given (trimmed): what is stored and handed to the HTTP client.
    raw: String,
    /// `scheme://host:port` without credentials, safe to show.
    public: String,
    /// The credentials as written in the URL and percent-decoded, to scrub from errors.
    credentials: Vec<String>,
}

impl ProxyUrl {
    /// Parses and checks a proxy URL: a scheme of [`PROXY_SCHEMES`], a host, an
    /// explicit port, nothing after the port. The error never repeats the URL, which
    /// may carry a password.
    pub fn parse(raw: &str) -> Result<ProxyUrl, String> {
        let raw = raw.trim();
        let expected =
            "expected e.g. http://proxy.example:3128 or socks5://user:password@10.0.0.2:1080";
        let u = url::Url::parse(raw).map_err(|e| format!("not a valid URL ({e}); {expected}"))?;
        if !PROXY_SCHEMES.contains(&u.scheme()) {
            return Err(format!(
                "the scheme must be one of {}; {expected}",
                PROXY_SCHEMES.join(", ")
            ));
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("a proxy URL needs a host; {expected}"))?;
        // `url` drops a port equal to the scheme's default, so look at what was written:
        // the authority must end in `:digits`. Proxies have no agreed default port.
        let authority = raw
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
            .unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let has_port = host_port.rsplit_once(':').is_some_and(|(h, p)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
        });
        let port = u
            .port_or_known_default()
            .filter(|_| has_port)
            .ok_or_else(|| format!("a proxy URL needs a port; {expected}"))?;
        if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
            return Err(format!(
                "a proxy URL has nothing after the port; {expected}"
            ));
        }
        let mut credentials = Vec::new();
        for part in [u.username(), u.password().unwrap_or("")] {
            if part.is_empty() {
                continue;
            }
            credentials.push(part.to_string());
            if let Ok(decoded) = percent_decode(part)
                && decoded != part
            {
                credentials.push(decoded);
            }
        }
        // Bracket IPv6 hosts again, as `host_str` returns them.
        let public = format!("{}://{}:{port}", u.scheme(), host);
        Ok(ProxyUrl {
            raw: raw.to_string(),
            public,
            credentials,
        })
    }

    /// The URL itself; call only where it is handed to the HTTP client or stored.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The form shown to administrators: the credentials replaced by `***`
    /// (`socks5://***@10.0.0.2:1080`), the address kept.
    pub fn masked(&self) -> String {
        if self.credentials.is_empty() {
            self.public.clone()
        } else {
            self.public.replacen("://", "://***@", 1)
        }
    }

    /// `scheme://host:port`, without credentials.
    pub fn address(&self) -> &str {
        &self.public
    }

    /// Removes the URL and its credentials from a text (an error message).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.raw, &self.masked());
        for c in &self.credentials {
            // A one-letter user name would shred the text; the URL itself is gone.
            if c.len() >= 3 {
                out = out.replace(c.as_str(), "***");
            }
        }
        out
    }

    /// As a [`Secret`], for code that stores secrets.
    pub fn to_secret(&self) -> Secret {
        Secret::new(self.raw.clone())
    }
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", self.masked())
    }
}

/// How a target's probes reach its relay.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ProxyChoice {
    /// Through the global default proxy (`OUTBOUND_PROXY`), or directly when none is
    /// set.
    #[default]
    Default,
    /// Directly, even when a global default proxy is set.
    Direct,
    /// Through this proxy.
    Via(ProxyUrl),
}

/// The word a target's `proxy_url` takes for [`ProxyChoice::Direct`].
pub const DIRECT: &str = "direct";

/// The way out a probe takes, once the target's choice met the global default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Egress {
    /// Neither the target nor `OUTBOUND_PROXY` names a proxy: the usual
    /// `HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY` environment variables apply, as before
    /// proxies could be set.
    Environment,
    /// Directly, whatever the environment says.
    Direct,
    /// Through this proxy.
    Via(ProxyUrl),
}

impl Egress {
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        match self {
            Egress::Via(p) => Some(p),
            _ => None,
        }
    }
}

impl ProxyChoice {
    /// The way out, given the global default.
    pub fn resolve(&self, default: Option<&ProxyUrl>) -> Egress {
        match (self, default) {
            (ProxyChoice::Via(p), _) | (ProxyChoice::Default, Some(p)) => Egress::Via(p.clone()),
            (ProxyChoice::Direct, _) => Egress::Direct,
            (ProxyChoice::Default, None) => Egress::Environment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_need_a_known_scheme_a_host_and_a_port() {
        for ok in [
            "http://proxy.example:3128",
            "https://proxy.example:443",
            "socks5://127.0.0.1:1080",
            "socks5h://user:pa%40ss@[::1]:1080/",
            "http://127.0.0.1:80",
        ] {
            assert!(ProxyUrl::parse(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("ftp://user:hunter22@proxy:21", "scheme"),
            ("socks4://proxy:1080", "scheme"),
            ("http://proxy.example", "port"),
            ("socks5://user:hunter22@proxy", "port"),
            ("http://proxy:3128/path", "nothing after the port"),
            ("http://proxy:3128?x=1", "nothing after the port"),
            ("proxy:3128", "scheme"),
            ("not a url", "not a valid URL"),
        ] {
            let e = ProxyUrl::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("hunter22"), "{bad}: {e}");
        }
    }

    #[test]
    fn credentials_never_print() {
        let p = ProxyUrl::parse("socks5://alice:s3cr%40t-pw@10.0.0.2:1080").unwrap();
        assert_eq!(p.masked(), "socks5://***@10.0.0.2:1080");
        assert_eq!(p.address(), "socks5://10.0.0.2:1080");
        assert!(!format!("{p:?}").contains("s3cr"));
        let text = "proxy socks5://alice:s3cr%40t-pw@10.0.0.2:1080 refused alice with s3cr@t-pw";
        let scrubbed = p.scrub(text);
        assert!(!scrubbed.contains("s3cr"), "{scrubbed}");
        assert!(!scrubbed.contains("alice"), "{scrubbed}");
        let plain = ProxyUrl::parse("http://proxy.example:3128").unwrap();
        assert_eq!(plain.masked(), "http://proxy.example:3128");
    }

    #[test]
    fn a_target_choice_wins_over_the_default() {
        let d = ProxyUrl::parse("http://default:3128").unwrap();
        let own = ProxyUrl::parse("socks5://own:1080").unwrap();
        assert_eq!(
            ProxyChoice::Default.resolve(Some(&d)),
            Egress::Via(d.clone())
        );
        assert_eq!(ProxyChoice::Default.resolve(None), Egress::Environment);
        assert_eq!(ProxyChoice::Direct.resolve(Some(&d)), Egress::Direct);
        assert_eq!(ProxyChoice::Direct.resolve(None), Egress::Direct);
        let via = ProxyChoice::Via(own.clone()).resolve(Some(&d));
        assert_eq!(via.proxy(), Some(&own));
    }
}
