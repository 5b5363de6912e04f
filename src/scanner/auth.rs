//! Registry authentication: `WWW-Authenticate` challenges (Basic, Bearer) and the token
//! exchange with the realm (anonymous, Basic, or OAuth2 refresh token for identity tokens).

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use super::Credentials;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses every challenge in one `WWW-Authenticate` value (RFC 7235: scheme, then
/// comma-separated `key=value` / `key="quoted value"` parameters; several challenges may follow).
pub(super) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        // scheme token
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ',')
            .unwrap_or(rest.len());
        let scheme = &rest[..end];
        rest = rest[end..].trim_start_matches([' ', '\t']);
        let mut params = BTreeMap::new();
        // parameters until the next scheme (a token not followed by '=')
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            let Some(eq) = rest.find('=') else { break };
            let key = &rest[..eq];
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == ',') {
                break;
            }
            let after = &rest[eq + 1..];
            let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
                let mut val = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                val.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        _ => val.push(c),
                    }
                }
                (val, &q[end.min(q.len())..])
            } else {
                let e = after.find(',').unwrap_or(after.len());
                (after[..e].trim().to_string(), &after[e..])
            };
            params.insert(key.to_ascii_lowercase(), value);
            rest = remaining;
        }
        if scheme.eq_ignore_ascii_case("basic") {
            out.push(Challenge::Basic);
        } else if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(realm) = params.remove("realm") {
                out.push(Challenge::Bearer {
                    realm,
                    service: params.remove("service"),
                    scope: params.remove("scope"),
                });
            }
        }
        if scheme.is_empty() {
            break;
        }
    }
    out
}

/// A token endpoint's answer (`token` or `access_token`).
#[derive(Debug, serde::Deserialize)]
pub(super) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

/// Bearer tokens by (registry origin, repository, credentials), kept until shortly before they
/// expire, so a rescan does not ask the token server again. In memory only.
pub(super) type TokenKey = (String, String, Option<Credentials>);
static TOKENS: LazyLock<Mutex<HashMap<TokenKey, (String, SystemTime)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// Entries kept before expired ones are dropped (and, if still too many, all).
const MAX_TOKENS: usize = 1024;
/// The distribution spec's lifetime for a token that states none.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

pub(super) fn token_key(origin: &str, repository: &str, creds: Option<&Credentials>) -> TokenKey {
    (origin.to_string(), repository.to_string(), creds.cloned())
}

/// A cached token still valid at `now`.
pub(super) fn cached_token(key: &TokenKey, now: SystemTime) -> Option<String> {
    let map = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    map.get(key)
        .filter(|(_, until)| now < *until)
        .map(|(t, _)| t.clone())
}

/// Caches a token for its lifetime minus a margin (a fifth of it, at most 30 s).
pub(super) fn store_token(key: TokenKey, token: String, expires_in: Option<u64>, now: SystemTime) {
    let lifetime = match expires_in {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => DEFAULT_TOKEN_LIFETIME,
    };
    let margin = (lifetime / 5).min(Duration::from_secs(30));
    let until = now + (lifetime - margin);
    let mut map = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_TOKENS {
        map.retain(|_, (_, u)| now < *u);
        if map.len() >= MAX_TOKENS {
            map.clear();
        }
    }
    map.insert(key, (token, until));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            }]
        );
    }

    #[test]
    fn basic_and_unquoted_and_several() {
        assert_eq!(
            parse_challenges(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic]
        );
        let c = parse_challenges(
            r#"Basic realm="x, y", Bearer realm=https://t.example/token, scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            vec![
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "https://t.example/token".into(),
                    service: None,
                    scope: Some("repository:a/b:pull,push".into()),
                }
            ]
        );
    }

    #[test]
    fn bearer_without_realm_is_ignored() {
        assert_eq!(parse_challenges(r#"Bearer service="x""#), vec![]);
        assert_eq!(parse_challenges(""), vec![]);
    }

    #[test]
    fn tokens_are_cached_until_shortly_before_expiry() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let key = token_key("https://cache.test:1", "a/b", None);
        assert_eq!(cached_token(&key, t0), None);
        store_token(key.clone(), "tok".into(), Some(300), t0);
        assert_eq!(
            cached_token(&key, t0 + Duration::from_secs(269)).as_deref(),
            Some("tok")
        );
        assert_eq!(cached_token(&key, t0 + Duration::from_secs(270)), None);
        // Other credentials, other repository: not shared.
        let creds = Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(
            cached_token(&token_key("https://cache.test:1", "a/b", Some(&creds)), t0),
            None
        );
        assert_eq!(
            cached_token(&token_key("https://cache.test:1", "a/c", None), t0),
            None
        );
        // No lifetime stated: 60 s, minus 12 s.
        let key2 = token_key("https://cache.test:2", "a/b", None);
        store_token(key2.clone(), "t2".into(), None, t0);
        assert!(cached_token(&key2, t0 + Duration::from_secs(47)).is_some());
        assert!(cached_token(&key2, t0 + Duration::from_secs(48)).is_none());
    }

    #[test]
    fn token_or_access_token() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("a"));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"t","access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("t"));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }
}
