//! A token server for `docker-registry`'s token auth: ES256 JWTs with an `x5c` header, signed
//! by a self-signed key made with the openssl CLI. Basic `USER:PASSWORD` gets what it asks for,
//! anonymous gets no access, anything else a 401.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::{PASSWORD, USER};

pub const SERVICE: &str = "tagline-test";
pub const ISSUER: &str = "tagline-test-issuer";

/// Tokens issued so far (all scopes, all clients).
pub static ISSUED: AtomicUsize = AtomicUsize::new(0);

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Makes the signing key and certificate in `dir` (`token-signer.{key,crt}`), starts the
/// server on a thread, returns its port.
pub fn start(dir: &Path) -> u16 {
    let key_path = dir.join("token-signer.key");
    let crt_path = dir.join("token-signer.crt");
    super::run(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key_path),
    );
    super::run(
        Command::new("openssl")
            .args(["req", "-x509", "-new", "-key"])
            .arg(&key_path)
            .args(["-subj", "/CN=tagline token signer", "-days", "2", "-out"])
            .arg(&crt_path),
    );
    let key = openssl::pkey::PKey::private_key_from_pem(&std::fs::read(&key_path).unwrap())
        .unwrap()
        .ec_key()
        .unwrap();
    let cert_der = openssl::x509::X509::from_pem(&std::fs::read(&crt_path).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        authorization = Some(v.trim().to_string());
                    }
                }
            }
            let target = first.split(' ').nth(1).unwrap_or("/");
            let url = url::Url::parse(&format!("http://x{target}")).unwrap();
            let scope = url
                .query_pairs()
                .find(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned());
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
            );
            let (status, body) = match authorization {
                Some(a) if a != expected => (401, r#"{"details":"bad credentials"}"#.to_string()),
                auth => {
                    let access: Vec<serde_json::Value> = match (&auth, &scope) {
                        (Some(_), Some(s)) => {
                            let parts: Vec<&str> = s.splitn(3, ':').collect();
                            vec![serde_json::json!({
                                "type": parts[0],
                                "name": parts.get(1).copied().unwrap_or(""),
                                "actions": parts.get(2).copied().unwrap_or("").split(',').collect::<Vec<_>>(),
                            })]
                        }
                        _ => vec![],
                    };
                    let jwt = sign(&key, &cert_der, access);
                    ISSUED.fetch_add(1, Ordering::SeqCst);
                    (
                        200,
                        serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 300})
                            .to_string(),
                    )
                }
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn sign(
    key: &openssl::ec::EcKey<openssl::pkey::Private>,
    cert_der: &[u8],
    access: Vec<serde_json::Value>,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": USER,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", ISSUED.load(Ordering::SeqCst)),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let digest = openssl::sha::sha256(input.as_bytes());
    let sig = openssl::ecdsa::EcdsaSig::sign(&digest, key).unwrap();
    let mut raw = sig.r().to_vec_padded(32).unwrap();
    raw.extend(sig.s().to_vec_padded(32).unwrap());
    format!("{input}.{}", b64url(&raw))
}
