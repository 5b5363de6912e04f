//! Forward proxies, as Flux sets them: `proxySecretRef` for every request of the scan, else the
//! environment read the way Go's `http.ProxyFromEnvironment` reads it.
//!
//! Go's rules, which differ from curl's (and from reqwest's own environment support, which is
//! therefore switched off): `HTTPS_PROXY` for `https://` requests and `HTTP_PROXY` for
//! `http://` ones, no fallback from one to the other, no `ALL_PROXY`; `HTTP_PROXY` ignored in a
//! CGI process (`REQUEST_METHOD` set); never a proxy for `localhost` or a loopback address;
//! `NO_PROXY` entries are `*`, IPs, CIDRs, or domains (`example.com` covers its subdomains,
//! `.example.com` and `*.example.com` only the subdomains), each optionally with `:port`.
//! A `proxySecretRef` proxy applies to every request, loopback included (`http.ProxyURL`).

use std::net::IpAddr;
use std::sync::OnceLock;

use url::Url;

use super::{ProxyConfig, ScanError};

/// Proxy schemes accepted in an address.
const SCHEMES: &[&str] = &["http", "https", "socks5", "socks5h"];

/// `scheme://host:port` of a proxy address, never its credentials (for messages).
pub(super) fn display_address(address: &str) -> String {
    match parse_address(address) {
        Some(u) => origin(&u),
        None => "(invalid proxy address)".into(),
    }
}

fn origin(u: &Url) -> String {
    let host = u.host_str().unwrap_or_default();
    match u.port_or_known_default() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    }
}

/// Parses a proxy address as Go does: a bare `host:port` means `http://host:port`.
fn parse_address(address: &str) -> Option<Url> {
    let address = address.trim();
    let parsed = match Url::parse(address) {
        Ok(u) if SCHEMES.contains(&u.scheme()) => u,
        _ if address.contains("://") => return None,
        _ => Url::parse(&format!("http://{address}")).ok()?,
    };
    (SCHEMES.contains(&parsed.scheme()) && parsed.host_str().is_some_and(|h| !h.is_empty()))
        .then_some(parsed)
}

/// The reqwest proxy for a `proxySecretRef`. Errors never quote the address's credentials.
pub(super) fn configured(
    config: &ProxyConfig,
    registry: &str,
) -> Result<reqwest::Proxy, ScanError> {
    let invalid = |reason: &str| ScanError::Options {
        registry: registry.to_string(),
        reason: format!("proxySecretRef: {reason}"),
    };
    let mut url = parse_address(&config.address).ok_or_else(|| {
        invalid("'address' is not a proxy URL (http://, https://, socks5:// host and port)")
    })?;
    let user = config.username.as_deref().unwrap_or_default();
    let pass = config.password.as_deref().unwrap_or_default();
    let socks = url.scheme().starts_with("socks");
    if socks {
        // SOCKS5 login travels in the proxy URL; reqwest takes it from there.
        if !user.is_empty() || !pass.is_empty() {
            url.set_username(user)
                .and_then(|()| url.set_password(Some(pass)))
                .map_err(|()| invalid("'username'/'password' cannot be used with this address"))?;
        }
    } else if !user.is_empty() || !pass.is_empty() {
        // Credentials in the address itself would be sent too: one source only.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    let mut proxy = reqwest::Proxy::all(url.as_str())
        .map_err(|_| invalid("'address' is not a usable proxy URL"))?;
    if !socks && (!user.is_empty() || !pass.is_empty()) {
        proxy = proxy.basic_auth(user, pass);
    }
    Ok(proxy)
}

/// The environment's proxy settings, read once per process (as Go does).
#[derive(Debug, Default)]
struct Environment {
    http: Option<Url>,
    https: Option<Url>,
    no_proxy: Vec<NoProxyEntry>,
    no_proxy_all: bool,
}

#[derive(Debug)]
enum NoProxyEntry {
    Net(IpAddr, u8),
    Domain {
        /// Lower case, starting with `.`.
        suffix: String,
        /// Whether the bare domain (without the dot) matches too.
        exact_too: bool,
        port: Option<u16>,
    },
}

fn environment() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        let cgi = std::env::var_os("REQUEST_METHOD").is_some();
        let http = if cgi {
            None
        } else {
            get(&["HTTP_PROXY", "http_proxy"]).and_then(|v| parse_address(&v))
        };
        let https = get(&["HTTPS_PROXY", "https_proxy"]).and_then(|v| parse_address(&v));
        let no = get(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        let (no_proxy, no_proxy_all) = parse_no_proxy(&no);
        Environment {
            http,
            https,
            no_proxy,
            no_proxy_all,
        }
    })
}

fn parse_no_proxy(list: &str) -> (Vec<NoProxyEntry>, bool) {
    let mut entries = Vec::new();
    for raw in list.split(',') {
        let e = raw.trim().to_ascii_lowercase();
        if e.is_empty() {
            continue;
        }
        if e == "*" {
            return (Vec::new(), true);
        }
        if let Some((ip, bits)) = e.split_once('/') {
            if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                entries.push(NoProxyEntry::Net(ip, bits));
            }
            continue;
        }
        let unbracketed = e.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            entries.push(NoProxyEntry::Net(ip, bits));
            continue;
        }
        let (host, port) = match e.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => match p.parse::<u16>() {
                Ok(p) => (h.to_string(), Some(p)),
                Err(_) => continue,
            },
            _ => (e.clone(), None),
        };
        let host = host.strip_prefix('*').unwrap_or(&host).to_string();
        let (suffix, exact_too) = match host.strip_prefix('.') {
            Some(_) => (host.clone(), false),
            None => (format!(".{host}"), true),
        };
        entries.push(NoProxyEntry::Domain {
            suffix,
            exact_too,
            port,
        });
    }
    (entries, false)
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let bits = bits.min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let bits = bits.min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl Environment {
    /// The proxy Go would use for `url`, if any.
    fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        let host = url.host_str()?.to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" {
            return None;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) || self.no_proxy_all {
            return None;
        }
        let port = url.port_or_known_default();
        let excluded = self.no_proxy.iter().any(|e| match e {
            NoProxyEntry::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
            NoProxyEntry::Domain {
                suffix,
                exact_too,
                port: want,
            } => {
                want.is_none_or(|w| Some(w) == port)
                    && ((*exact_too && host == &suffix[1..]) || host.ends_with(suffix.as_str()))
            }
        });
        (!excluded).then_some(proxy)
    }
}

/// The reqwest proxy that applies the environment's settings per request, or `None` when the
/// environment names no proxy.
pub(super) fn from_environment() -> Option<reqwest::Proxy> {
    let env = environment();
    if env.http.is_none() && env.https.is_none() {
        return None;
    }
    Some(reqwest::Proxy::custom(|url: &Url| {
        environment().proxy_for(url).cloned()
    }))
}

/// `scheme://host:port` of the proxy requests to `base` go through, for messages.
pub(super) fn describe(config: Option<&ProxyConfig>, base: &Url) -> Option<String> {
    match config {
        Some(c) => Some(display_address(&c.address)),
        None => environment().proxy_for(base).map(origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(http: &str, https: &str, no: &str) -> Environment {
        let (no_proxy, no_proxy_all) = parse_no_proxy(no);
        Environment {
            http: parse_address(http),
            https: parse_address(https),
            no_proxy,
            no_proxy_all,
        }
    }

    fn via(e: &Environment, url: &str) -> Option<String> {
        e.proxy_for(&Url::parse(url).unwrap()).map(origin)
    }

    #[test]
    fn scheme_picks_the_variable_without_fallback() {
        let e = env("proxy-h:3128", "", "");
        assert_eq!(
            via(&e, "http://r.example/v2/").as_deref(),
            Some("http://proxy-h:3128")
        );
        assert_eq!(via(&e, "https://r.example/v2/"), None);
        let e = env("", "http://proxy-s:8080", "");
        assert_eq!(
            via(&e, "https://r.example/v2/").as_deref(),
            Some("http://proxy-s:8080")
        );
        assert_eq!(via(&e, "http://r.example/v2/"), None);
    }

    #[test]
    fn loopback_and_localhost_are_never_proxied() {
        let e = env("http://p:1", "http://p:1", "");
        for u in [
            "https://localhost:5000/v2/",
            "https://127.0.0.1:5000/v2/",
            "https://127.9.9.9/v2/",
            "http://[::1]:5000/v2/",
        ] {
            assert_eq!(via(&e, u), None, "{u}");
        }
        assert!(via(&e, "https://10.0.0.1/v2/").is_some());
    }

    #[test]
    fn no_proxy_entries_match_as_go_matches_them() {
        let e = env(
            "",
            "http://p:1",
            "example.com, .sub.test,*.star.test, 10.0.0.0/8, 192.168.1.7, port.test:5000",
        );
        for (u, proxied) in [
            ("https://example.com/", false),
            ("https://a.example.com/", false),
            ("https://notexample.com/", true),
            ("https://sub.test/", true),
            ("https://x.sub.test/", false),
            ("https://star.test/", true),
            ("https://x.star.test/", false),
            ("https://10.1.2.3/", false),
            ("https://11.1.2.3/", true),
            ("https://192.168.1.7/", false),
            ("https://192.168.1.8/", true),
            ("https://port.test:5000/", false),
            ("https://port.test/", true),
        ] {
            assert_eq!(via(&e, u).is_some(), proxied, "{u}");
        }
        let all = env("http://p:1", "http://p:1", "*");
        assert_eq!(via(&all, "https://example.com/"), None);
    }

    #[test]
    fn addresses_parse_like_go_and_never_show_credentials() {
        assert_eq!(display_address("proxy:3128"), "http://proxy:3128");
        assert_eq!(
            display_address("http://user:s3cret@proxy:3128"),
            "http://proxy:3128"
        );
        assert_eq!(display_address("socks5://proxy"), "socks5://proxy");
        assert_eq!(display_address("ftp://proxy:21"), "(invalid proxy address)");
        assert_eq!(display_address(""), "(invalid proxy address)");
        let c = ProxyConfig {
            address: "http://proxy:3128".into(),
            username: Some("u".into()),
            password: Some("s3cret".into()),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(configured(&c, "r").is_ok());
        let bad = ProxyConfig {
            address: "http://".into(),
            username: None,
            password: Some("s3cret".into()),
        };
        let e = configured(&bad, "r").unwrap_err().to_string();
        assert!(e.contains("proxySecretRef") && !e.contains("s3cret"), "{e}");
    }
}
