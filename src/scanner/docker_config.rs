//! Docker config JSON (`.dockerconfigjson`, legacy `.dockercfg`): pick the entry Docker would
//! pick for a registry host, without ever echoing a secret in an error.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use super::{Credentials, ScanError};

/// The names Docker Hub goes by in docker config files.
const DOCKER_HUB_ALIASES: &[&str] = &[
    "https://index.docker.io/v1/",
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
];

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// What Docker's `ConvertToHostname` makes of a config key: scheme and path stripped.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// How well a config key matches the host: lower is better; `None` is no match.
fn rank(key: &str, host: &str) -> Option<u8> {
    let hub = is_docker_hub(host);
    if key == host {
        return Some(0);
    }
    if hub && key == "https://index.docker.io/v1/" {
        return Some(1);
    }
    let kh = key_host(key);
    if kh == host {
        return Some(2);
    }
    if hub && (is_docker_hub(kh) || DOCKER_HUB_ALIASES.contains(&key)) {
        return Some(3);
    }
    None
}

pub(super) fn from_docker_config(
    json: &[u8],
    registry_host: &str,
) -> Result<Option<Credentials>, ScanError> {
    let err = |reason: String| ScanError::DockerConfig {
        registry: registry_host.to_string(),
        reason,
    };
    // serde_json's messages can quote the offending value (a secret): report only the place.
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
        err(format!(
            "invalid JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let obj = value
        .as_object()
        .ok_or_else(|| err("the JSON is not an object".into()))?;
    // `.dockerconfigjson` wraps the entries in "auths"; legacy `.dockercfg` does not.
    let auths = match obj.get("auths") {
        Some(serde_json::Value::Object(m)) => m,
        Some(serde_json::Value::Null) => return Ok(None),
        Some(_) => return Err(err("\"auths\" is not an object".into())),
        None => obj,
    };
    let mut candidates: BTreeMap<(u8, &str), &serde_json::Value> = BTreeMap::new();
    for (key, v) in auths {
        if let Some(r) = rank(key, registry_host) {
            candidates.insert((r, key.as_str()), v);
        }
    }
    let Some(((_, key), value)) = candidates.into_iter().next() else {
        return Ok(None);
    };
    let entry: Entry = serde_json::from_value(value.clone())
        .map_err(|_| err(format!("entry \"{key}\" is not an object of strings")))?;
    if let Some(tok) = entry.identitytoken.filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken(tok)));
    }
    if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim().as_bytes())
            .map_err(|_| err(format!("\"auth\" of entry \"{key}\" is not valid base64")))?;
        let text = String::from_utf8(raw)
            .map_err(|_| err(format!("\"auth\" of entry \"{key}\" is not UTF-8")))?;
        let (user, pass) = text.split_once(':').ok_or_else(|| {
            err(format!(
                "\"auth\" of entry \"{key}\" is not of the form username:password"
            ))
        })?;
        return Ok(Some(Credentials::Basic {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    match (entry.username, entry.password) {
        (Some(username), Some(password)) if !username.is_empty() => {
            Ok(Some(Credentials::Basic { username, password }))
        }
        _ => Err(err(format!(
            "entry \"{key}\" has neither \"auth\", \"username\"/\"password\" nor \"identitytoken\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn auth_field_is_decoded() {
        let json = format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
            b64("bob:s3:cr3t")
        );
        let c = from_docker_config(json.as_bytes(), "ghcr.io").unwrap();
        assert_eq!(c, basic("bob", "s3:cr3t"));
    }

    #[test]
    fn username_password_fields() {
        let json = r#"{"auths":{"r.example:5000":{"username":"u","password":"p"}}}"#;
        let c = from_docker_config(json.as_bytes(), "r.example:5000").unwrap();
        assert_eq!(c, basic("u", "p"));
        assert_eq!(
            from_docker_config(json.as_bytes(), "r.example").unwrap(),
            None
        );
    }

    #[test]
    fn identity_token_wins() {
        let json = r#"{"auths":{"acr.example":{"identitytoken":"tok","username":"00000000-0000-0000-0000-000000000000"}}}"#;
        let c = from_docker_config(json.as_bytes(), "acr.example").unwrap();
        assert_eq!(c, Some(Credentials::IdentityToken("tok".into())));
    }

    #[test]
    fn keys_with_scheme_and_path_match_the_host() {
        for key in ["https://r.example/v1/", "http://r.example", "r.example/"] {
            let json = format!(r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#, b64("a:b"));
            let c = from_docker_config(json.as_bytes(), "r.example").unwrap();
            assert_eq!(c, basic("a", "b"), "key {key}");
        }
    }

    #[test]
    fn exact_key_beats_a_normalised_one() {
        let json = format!(
            r#"{{"auths":{{"https://r.example/v1/":{{"auth":"{}"}},"r.example":{{"auth":"{}"}}}}}}"#,
            b64("wrong:1"),
            b64("right:2")
        );
        let c = from_docker_config(json.as_bytes(), "r.example").unwrap();
        assert_eq!(c, basic("right", "2"));
    }

    #[test]
    fn docker_hub_aliases() {
        for key in DOCKER_HUB_ALIASES {
            let json = format!(r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#, b64("hub:pw"));
            for host in ["docker.io", "registry-1.docker.io", "index.docker.io"] {
                let c = from_docker_config(json.as_bytes(), host).unwrap();
                assert_eq!(c, basic("hub", "pw"), "key {key} host {host}");
            }
        }
        let json = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#, b64("x:y"));
        assert_eq!(
            from_docker_config(json.as_bytes(), "docker.io").unwrap(),
            None
        );
    }

    #[test]
    fn legacy_dockercfg_without_auths() {
        let json = format!(r#"{{"quay.io":{{"auth":"{}","email":"x@y"}}}}"#, b64("q:w"));
        let c = from_docker_config(json.as_bytes(), "quay.io").unwrap();
        assert_eq!(c, basic("q", "w"));
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let secret = "hunter2-TOPSECRET";
        let cases = [
            format!(r#"{{"auths":{{"r.example":{{"auth":"{secret}!!"}}}}}}"#),
            format!(r#"{{"auths":{{"r.example":{{"auth":"{secret}"#),
            format!(
                r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#,
                b64(secret)
            ),
            format!(r#"{{"auths":{{"r.example":{{"password":{{"x":"{secret}"}}}}}}}}"#),
            format!(r#"{{"auths":{{"r.example":{{"auth":1,"x":"{secret}"}}}}}}"#),
        ];
        for json in cases {
            let e = from_docker_config(json.as_bytes(), "r.example").unwrap_err();
            let msg = format!("{e} {e:?}");
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(msg.contains("r.example"), "{msg}");
            assert!(matches!(e, ScanError::DockerConfig { .. }));
        }
    }

    #[test]
    fn invalid_base64_is_named() {
        let json = r#"{"auths":{"r.example":{"auth":"%%%"}}}"#;
        let e = from_docker_config(json.as_bytes(), "r.example").unwrap_err();
        assert!(e.to_string().contains("not valid base64"), "{e}");
    }

    #[test]
    fn no_entry_is_none() {
        assert_eq!(
            from_docker_config(br#"{"auths":{}}"#, "r.example").unwrap(),
            None
        );
        assert_eq!(from_docker_config(br#"{}"#, "r.example").unwrap(), None);
    }
}
