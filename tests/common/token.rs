//! A registry token server (the Docker/OCI bearer flow): answers
//! `GET /token?service=..&scope=repository:<name>:pull,push` with an ES256 JWT that
//! `docker-registry`'s `auth.token` verifies through the `x5c` chain, as Docker Hub's or
//! GHCR's token endpoints do. Plain HTTP on 127.0.0.1, one thread per connection.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::Private;
use openssl::x509::X509;

use super::proc::{run, scratch_home, scrub_env};

/// The `service` (JWT audience) the registry expects.
pub const SERVICE: &str = "tagline-harness-registry";
/// The `iss` the registry expects.
pub const ISSUER: &str = "tagline-harness-token-server";

/// A running token server. Stops accepting when dropped.
#[derive(Debug)]
pub struct TokenServer {
    port: u16,
    cert_path: PathBuf,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    credentials: Option<(&'static str, &'static str)>,
    key: EcKey<Private>,
    x5c: String,
    requests: AtomicU64,
    stop: AtomicBool,
}

impl TokenServer {
    /// Starts a token server whose signing key and self-signed certificate live in `dir`.
    /// With `credentials`, a token request must carry them as Basic auth (else 401); without,
    /// anyone gets a token for what they ask.
    pub fn start(dir: &Path, credentials: Option<(&'static str, &'static str)>) -> TokenServer {
        let key_path = dir.join("token-signing.key");
        let cert_path = dir.join("token-signing.crt");
        let mut cmd = std::process::Command::new("openssl");
        scrub_env(&mut cmd, scratch_home());
        run(
            "create the token signing key",
            cmd.args(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "3650"])
                .args(["-subj", "/CN=tagline harness token signer", "-keyout"])
                .arg(&key_path)
                .arg("-out")
                .arg(&cert_path),
        );
        let key = EcKey::private_key_from_pem(&fs::read(&key_path).expect("read signing key"))
            .expect("parse signing key");
        let cert = X509::from_pem(&fs::read(&cert_path).expect("read signing cert"))
            .expect("parse signing cert");
        let x5c = STANDARD.encode(cert.to_der().expect("encode signing cert"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("token server address").port();
        let state = Arc::new(State {
            credentials,
            key,
            x5c,
            requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let shared = Arc::clone(&state);
        thread::Builder::new()
            .name("harness-token-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&shared);
                    thread::spawn(move || serve(&state, stream));
                }
            })
            .expect("start token server thread");
        TokenServer {
            port,
            cert_path,
            state,
        }
    }

    /// The realm URL: `http://127.0.0.1:<p>/token`.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The self-signed certificate whose key signs the tokens (the registry's
    /// `rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// How many token requests it has answered (any status).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// A token granting `scope` (e.g. `repository:team/app:pull,push`), made directly.
    pub fn token_for(&self, scope: &str, subject: &str) -> String {
        self.state.token(&[scope.to_string()], subject)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl State {
    fn token(&self, scopes: &[String], subject: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|scope| {
                // repository:<name>:<actions>; the name may contain ':' only before a port,
                // which repository names never have.
                let mut parts = scope.splitn(3, ':');
                let kind = parts.next()?;
                let name = parts.next()?;
                let actions: Vec<&str> = parts.next()?.split(',').collect();
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
            })
            .collect();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("{now}-{}", self.requests.load(Ordering::SeqCst)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let digest = openssl::sha::sha256(signing_input.as_bytes());
        let sig = EcdsaSig::sign(&digest, &self.key).expect("sign token");
        // JWS ES256 wants raw r || s, 32 bytes each, not DER.
        let mut raw = sig.r().to_vec_padded(32).expect("r");
        raw.extend(sig.s().to_vec_padded(32).expect("s"));
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw))
    }
}

fn serve(state: &State, stream: TcpStream) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, body) = if path != "/token" {
        (
            "404 Not Found",
            r#"{"errors":[{"code":"NOT_FOUND"}]}"#.to_string(),
        )
    } else {
        match authorize(state, authorization.as_deref()) {
            Err(()) => (
                "401 Unauthorized",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.to_string(),
            ),
            Ok(subject) => {
                let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
                    .filter(|(k, _)| k == "scope")
                    .map(|(_, v)| v.into_owned())
                    .collect();
                let token = state.token(&scopes, &subject);
                (
                    "200 OK",
                    serde_json::json!({
                        "token": token,
                        "access_token": token,
                        "expires_in": 300,
                    })
                    .to_string(),
                )
            }
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The token's subject, or `Err` when credentials are required and wrong or missing.
fn authorize(state: &State, authorization: Option<&str>) -> Result<String, ()> {
    let given = authorization
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match state.credentials {
        None => Ok(given
            .and_then(|g| g.split_once(':').map(|(u, _)| u.to_string()))
            .unwrap_or_default()),
        Some((user, pass)) if given.as_deref() == Some(&format!("{user}:{pass}")) => {
            Ok(user.to_string())
        }
        Some(_) => Err(()),
    }
}
