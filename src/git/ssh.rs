//! SSH host key verification against the `known_hosts` text of the GitRepository Secret
//! (never `$HOME/.ssh`): plain and hashed (`|1|salt|hmac`) host patterns, `[host]:port`.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// One known_hosts entry: host patterns and the key blob (wire format).
struct Entry {
    /// The line as libssh2 can read it (None for markers and key types it does not know).
    line: Option<String>,
    patterns: Vec<Pattern>,
    key_type: String,
    key: Vec<u8>,
    revoked: bool,
}

enum Pattern {
    Plain { text: String, negated: bool },
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// Host key types libssh2 reads from a known_hosts file.
const LIBSSH2_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "ssh-dss",
];

/// Parsed `known_hosts`.
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Parses known_hosts text; lines that are empty, comments or `@cert-authority` are
    /// skipped. Errors when no usable entry remains.
    pub fn parse(text: &str) -> Result<KnownHosts, String> {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if first.starts_with('@') {
                if first == "@revoked" {
                    revoked = true;
                } else {
                    // @cert-authority: host certificates are not supported by libssh2.
                    continue;
                }
                first = match fields.next() {
                    Some(f) => f,
                    None => continue,
                };
            }
            let (Some(key_type), Some(key_b64)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = STANDARD.decode(key_b64) else {
                continue;
            };
            let patterns = first.split(',').filter_map(parse_pattern).collect();
            let line = (!revoked && LIBSSH2_KEY_TYPES.contains(&key_type))
                .then(|| format!("{first} {key_type} {key_b64}"));
            entries.push(Entry {
                line,
                patterns,
                key_type: key_type.to_string(),
                key,
                revoked,
            });
        }
        if entries.is_empty() {
            return Err("known_hosts holds no usable host key".into());
        }
        Ok(KnownHosts { entries })
    }

    /// Accepts `key` (wire-format blob) for `host`:`port`, or says why not.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Result<(), String> {
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let key_type = key_type_of(key).unwrap_or_default();
        let mut known_types = Vec::new();
        for e in self.entries.iter().filter(|e| e.matches(&name)) {
            if e.key == key {
                if e.revoked {
                    return Err(format!("host key of {name} is revoked in known_hosts"));
                }
                return Ok(());
            }
            known_types.push(e.key_type.clone());
        }
        if known_types.contains(&key_type) {
            Err(format!(
                "host key of {name} ({key_type}) does not match known_hosts: it changed"
            ))
        } else if known_types.is_empty() {
            Err(format!("host {name} is not in known_hosts"))
        } else {
            Err(format!(
                "host {name} offered a {key_type} key; known_hosts has only {}",
                known_types.join(", ")
            ))
        }
    }
}

/// libgit2 reads `<home>/.ssh/known_hosts` during every SSH handshake, to choose which host
/// key algorithm to ask for (and it fails on a line it cannot parse). So that neither the
/// service account's `$HOME/.ssh` nor libssh2's default preference decides the handshake,
/// libgit2's home is pointed (once, process-wide) at a private path, and each SSH session
/// creates it with its own known_hosts while it holds the `HomeLease`. The lease is given back
/// as soon as the host key has been seen (in the certificate callback), which removes the
/// directory: only the connection set-ups of concurrent SSH sessions are serialised, and
/// nothing is left behind. The file holds public keys only; the verdict on the host key is
/// still `KnownHosts::check`'s alone.
pub(crate) struct HomeLease {
    home: PathBuf,
    _guard: MutexGuard<'static, ()>,
}

impl Drop for HomeLease {
    fn drop(&mut self) {
        // Runs before `_guard` is released.
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

pub(crate) fn lease_home(known_hosts: &KnownHosts) -> Result<HomeLease, String> {
    static LOCK: Mutex<()> = Mutex::new(());
    static HOME: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let home = HOME.get_or_init(set_private_home).clone()?;
    create_private_dir(&home)?;
    let lease = HomeLease {
        home: home.clone(),
        _guard: guard,
    };
    let mut text = String::new();
    for line in known_hosts.entries.iter().filter_map(|e| e.line.as_deref()) {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(home.join(".ssh/known_hosts"), text)
        .map_err(|e| format!("writing known_hosts: {e}"))?;
    Ok(lease)
}

/// Chooses the private home path (created by each lease) and points libgit2 at it.
fn set_private_home() -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let home = std::env::temp_dir().join(format!(
        "tagline-libgit2-home-{}-{nanos}",
        std::process::id()
    ));
    let c = CString::new(home.as_os_str().as_encoded_bytes())
        .map_err(|e| format!("libgit2 home: {e}"))?;
    // SAFETY: GIT_OPT_SET_HOMEDIR takes one C string, copied by libgit2; the library is
    // initialised by the git2 calls made before any session.
    let rc = unsafe {
        libgit2_sys::git_libgit2_opts(
            libgit2_sys::GIT_OPT_SET_HOMEDIR as std::ffi::c_int,
            c.as_ptr(),
        )
    };
    if rc < 0 {
        return Err("cannot set libgit2's home directory".into());
    }
    Ok(home)
}

fn create_private_dir(home: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let create = || {
        // `create` (not `create_all`): fails if the path exists, e.g. made by someone else.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(home)
            .and_then(|_| {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(home.join(".ssh"))
            })
    };
    create()
        .or_else(|e| {
            // Left over by an interrupted session of this process: start afresh.
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                std::fs::remove_dir_all(home).and_then(|_| create())
            } else {
                Err(e)
            }
        })
        .map_err(|e| format!("creating {}: {e}", home.display()))
}

impl Entry {
    fn matches(&self, name: &str) -> bool {
        let mut hit = false;
        for p in &self.patterns {
            match p {
                Pattern::Plain { text, negated } => {
                    if glob(text, name) {
                        if *negated {
                            return false;
                        }
                        hit = true;
                    }
                }
                Pattern::Hashed { salt, hash } => {
                    if hmac_sha1(salt, name.as_bytes()).as_deref() == Some(hash.as_slice()) {
                        hit = true;
                    }
                }
            }
        }
        hit
    }
}

fn parse_pattern(p: &str) -> Option<Pattern> {
    if let Some(rest) = p.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        return Some(Pattern::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        });
    }
    let (negated, text) = match p.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, p),
    };
    Some(Pattern::Plain {
        text: text.to_ascii_lowercase(),
        negated,
    })
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let pkey = PKey::hmac(key).ok()?;
    let mut signer = Signer::new(MessageDigest::sha1(), &pkey).ok()?;
    signer.update(data).ok()?;
    signer.sign_to_vec().ok()
}

/// `*` and `?` wildcards, case-insensitive host names.
fn glob(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], n) || (!n.is_empty() && rec(p, &n[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &n[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), name.to_ascii_lowercase().as_bytes())
}

/// The algorithm name at the start of an SSH wire-format key blob.
fn key_type_of(blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    String::from_utf8(blob.get(4..4 + len)?.to_vec()).ok()
}

/// The port of an `ssh://` URL (22 by default, also for scp-like URLs).
pub(crate) fn port_of(url: &str) -> u16 {
    url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "ssh" || u.scheme() == "git+ssh" || u.scheme() == "ssh+git")
        .and_then(|u| u.port())
        .unwrap_or(22)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (kind.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn plain_hashed_and_port_patterns() {
        let key = blob("ssh-ed25519", b"0123456789abcdef0123456789abcdef");
        let other = blob("ssh-ed25519", b"ffffffffffffffffffffffffffffffff");
        let b64 = STANDARD.encode(&key);
        let salt = b"saltsaltsaltsaltsalt";
        let hashed = format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(hmac_sha1(salt, b"[10.0.0.1]:2222").unwrap())
        );
        let text = format!(
            "# comment\n[127.0.0.1]:2222 ssh-ed25519 {b64}\ngit.example.com,*.corp ssh-ed25519 {b64}\n{hashed} ssh-ed25519 {b64}\n"
        );
        let kh = KnownHosts::parse(&text).unwrap();
        assert!(kh.check("127.0.0.1", 2222, &key).is_ok());
        assert!(kh.check("git.example.com", 22, &key).is_ok());
        assert!(kh.check("a.corp", 22, &key).is_ok());
        assert!(kh.check("10.0.0.1", 2222, &key).is_ok());
        let changed = kh.check("127.0.0.1", 2222, &other).unwrap_err();
        assert!(changed.contains("changed"), "{changed}");
        let unknown = kh.check("127.0.0.1", 22, &key).unwrap_err();
        assert!(unknown.contains("not in known_hosts"), "{unknown}");
    }

    #[test]
    fn revoked_and_empty() {
        let key = blob("ssh-rsa", b"k");
        let text = format!("@revoked h ssh-rsa {}\n", STANDARD.encode(&key));
        let kh = KnownHosts::parse(&text).unwrap();
        assert!(kh.check("h", 22, &key).unwrap_err().contains("revoked"));
        assert!(KnownHosts::parse("# nothing\n\n").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port_of("ssh://git@h:2222/r.git"), 2222);
        assert_eq!(port_of("ssh://git@h/r.git"), 22);
        assert_eq!(port_of("git@h:r.git"), 22);
    }
}
