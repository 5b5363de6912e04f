//! Test harness for `tagline::git`: real git repositories made with the git CLI in temp dirs,
//! and real servers (`git daemon`, `sshd`) on 127.0.0.1, each killed when dropped.
//! Included by the other `tests/git_*.rs` files with `#[path = "git_harness.rs"] mod harness;`.
#![allow(dead_code, clippy::new_without_default)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tagline::git::{Author, Remote};

/// A temp dir that also serves as `$HOME` for the git CLI.
pub struct World {
    pub tmp: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        World {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `git <args>` in `dir` with an isolated configuration; panics on failure; stdout.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_cmd(dir, args).output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn git_cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.tmp.path())
            .env_remove("GIT_CONFIG_GLOBAL")
            .env_remove("XDG_CONFIG_HOME")
            .env("GIT_AUTHOR_NAME", "Seed")
            .env("GIT_AUTHOR_EMAIL", "seed@example.com")
            .env("GIT_COMMITTER_NAME", "Seed")
            .env("GIT_COMMITTER_EMAIL", "seed@example.com")
            .stdin(Stdio::null());
        cmd
    }

    /// A bare repository `<name>.git` whose branch `branch` holds `files` in one commit.
    pub fn bare_repo(&self, name: &str, branch: &str, files: &[(&str, &str)]) -> PathBuf {
        let bare = self.path(&format!("{name}.git"));
        let seed = self.path(&format!("{name}.seed"));
        std::fs::create_dir_all(&seed).unwrap();
        self.git(&seed, &["init", "-q", "-b", branch]);
        for (path, content) in files {
            let p = seed.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        self.git(&seed, &["add", "-A"]);
        self.git(&seed, &["commit", "-q", "-m", "seed"]);
        self.git(
            self.tmp.path(),
            &["init", "-q", "--bare", "-b", branch, bare.to_str().unwrap()],
        );
        self.git(&bare, &["config", "receive.advertisePushOptions", "true"]);
        self.git(&bare, &["config", "http.receivepack", "true"]);
        self.git(&seed, &["push", "-q", bare.to_str().unwrap(), branch]);
        bare
    }

    /// Commits `files` on top of `branch` of `bare` from a separate clone (another writer).
    pub fn commit_elsewhere(&self, bare: &Path, branch: &str, files: &[(&str, &str)]) -> String {
        let other = tempfile::tempdir_in(self.tmp.path()).unwrap();
        let dir = other.path().join("w");
        self.git(
            self.tmp.path(),
            &[
                "clone",
                "-q",
                "-b",
                branch,
                bare.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        for (path, content) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        self.git(&dir, &["add", "-A"]);
        self.git(&dir, &["commit", "-q", "-m", "elsewhere"]);
        self.git(&dir, &["push", "-q", "origin", branch]);
        self.git(&dir, &["rev-parse", "HEAD"])
    }

    /// The commit `rev` points at in `repo`, or None.
    pub fn rev(&self, repo: &Path, rev: &str) -> Option<String> {
        let out = self
            .git_cmd(repo, &["rev-parse", "--verify", "-q", rev])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    }

    /// Installs an executable hook script in a bare repository.
    pub fn hook(&self, bare: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = bare.join("hooks").join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

pub fn author() -> Author {
    Author {
        name: "Tagline Bot".into(),
        email: "bot@example.com".into(),
    }
}

pub fn remote(url: &str) -> Remote {
    Remote {
        url: url.to_string(),
        auth: None,
        ca_pem: None,
        timeout: Duration::from_secs(30),
        proxy: None,
        client_identity: None,
    }
}

pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on `port`. A connection to a free port in the ephemeral range
/// can connect to itself (TCP simultaneous open: same local and peer address); that is not a
/// listener, and it holds the port the server is about to bind.
fn listening(port: u16) -> bool {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s.local_addr().ok() != s.peer_addr().ok(),
        Err(_) => false,
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, child: &mut Child) {
    let start = Instant::now();
    while !listening(port) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server process killed (by its PID) and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git daemon` serving `base` read/write on 127.0.0.1.
pub fn git_daemon(world: &World, base: &Path) -> Server {
    let port = free_port();
    // Run git-daemon itself (not through the `git` wrapper) so that the PID we kill is the
    // daemon's.
    let exec_path = world.git(base, &["--exec-path"]);
    let cmd = world.git_cmd(base, &[]);
    let mut child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .current_dir(base)
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env_remove("GIT_CONFIG_GLOBAL")
        .args([
            "--reuseaddr".to_string(),
            "--listen=127.0.0.1".to_string(),
            format!("--port={port}"),
            format!("--base-path={}", base.display()),
            "--export-all".to_string(),
            "--enable=receive-pack".to_string(),
            "--informative-errors".to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn git daemon");
    wait_for_port(port, &mut child);
    Server { child, port }
}

/// A test CA and a server certificate for localhost / 127.0.0.1 (EC P-256), made with the
/// openssl CLI. Returns (ca.crt path, server cert+key PEM path).
pub fn make_tls(world: &World, name: &str) -> (PathBuf, PathBuf) {
    make_tls_for(world, name, "DNS:localhost,IP:127.0.0.1,IP:::1")
}

/// Like `make_tls`, with the server certificate's subjectAltName given.
pub fn make_tls_for(world: &World, name: &str, san: &str) -> (PathBuf, PathBuf) {
    let dir = world.path(&format!("tls-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tagline test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName={san}\n")).unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let mut pem = std::fs::read(dir.join("server.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("server.key")).unwrap());
    std::fs::write(dir.join("server.pem"), pem).unwrap();
    (dir.join("ca.crt"), dir.join("server.pem"))
}

/// lighttpd serving `base` through git-http-backend under `/git`, basic auth `user:pass`,
/// plain HTTP on `port` and HTTPS (with `server_pem`) on `tls_port`.
pub struct Http {
    pub server: Server,
    pub tls_port: u16,
}

pub fn lighttpd(world: &World, base: &Path, user: &str, pass: &str, server_pem: &Path) -> Http {
    let port = free_port();
    let tls_port = free_port();
    let dir = world.path(&format!("lighttpd-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("htpasswd"), format!("{user}:{pass}\n")).unwrap();
    let conf = format!(
        r#"server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi", "mod_openssl")
server.document-root = "{dir}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
server.max-request-size = 0
auth.backend = "plain"
auth.backend.plain.userfile = "{dir}/htpasswd"
$SERVER["socket"] == "127.0.0.1:{tls_port}" {{
    ssl.engine = "enable"
    ssl.pemfile = "{pem}"
}}
$HTTP["url"] =~ "^/git" {{
    alias.url = ("/git" => "{backend}")
    cgi.assign = ("" => "")
    setenv.add-environment = ("GIT_PROJECT_ROOT" => "{base}", "GIT_HTTP_EXPORT_ALL" => "", "GIT_CONFIG_NOSYSTEM" => "1", "HOME" => "{home}")
    auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
}}
"#,
        dir = dir.display(),
        pem = server_pem.display(),
        backend = Path::new(&world.git(base, &["--exec-path"]))
            .join("git-http-backend")
            .display(),
        base = base.display(),
        home = world.tmp.path().display(),
    );
    std::fs::write(dir.join("lighttpd.conf"), conf).unwrap();
    let mut child = Command::new("lighttpd")
        .args(["-D", "-f"])
        .arg(dir.join("lighttpd.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lighttpd");
    wait_for_port(port, &mut child);
    wait_for_port(tls_port, &mut child);
    Http {
        server: Server { child, port },
        tls_port,
    }
}

/// `ssh-keygen` a key of `kind` (`ed25519`, `ecdsa`, `rsa`, optionally `rsa-pem`) into
/// `<dir>/<name>`; returns (private key text, public key line).
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q").arg("-N").arg(passphrase).arg("-C").arg(name);
    // `<type>[-<format>]`: type ed25519, ecdsa, ecdsa384, rsa; format pem or pkcs8.
    let (kind, format) = kind.split_once('-').unwrap_or((kind, ""));
    match kind {
        "rsa" => cmd.args(["-t", "rsa", "-b", "2048"]),
        "ecdsa384" => cmd.args(["-t", "ecdsa", "-b", "384"]),
        other => cmd.args(["-t", other]),
    };
    match format {
        "pem" => cmd.args(["-m", "PEM"]),
        "pkcs8" => cmd.args(["-m", "PKCS8"]),
        _ => &mut cmd,
    };
    let out = cmd.arg("-f").arg(&path).output().expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string(),
    )
}

/// A separate `sshd` on 127.0.0.1 with its own host keys, accepting the given public keys
/// for root.
pub struct Sshd {
    pub server: Server,
    /// known_hosts for the first host key: `[127.0.0.1]:<port> <type> <key>`
    pub known_hosts: String,
    /// One known_hosts line per host key.
    pub host_lines: Vec<String>,
}

pub fn sshd(world: &World, host_kind: &str, authorized: &[&str]) -> Sshd {
    sshd_with_host_keys(world, &[host_kind], authorized)
}

pub fn sshd_with_host_keys(world: &World, host_kinds: &[&str], authorized: &[&str]) -> Sshd {
    let port = free_port();
    let dir = world.path(&format!("sshd-{port}"));
    let mut host_lines = Vec::new();
    let mut conf = format!(
        "Port {port}\nListenAddress 127.0.0.1\nAuthorizedKeysFile {d}/authorized_keys\n\
         UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nStrictModes no\nPidFile none\n\
         SetEnv GIT_CONFIG_NOSYSTEM=1 HOME={home}\n",
        d = dir.display(),
        home = world.tmp.path().display(),
    );
    for (i, kind) in host_kinds.iter().enumerate() {
        let name = format!("hostkey{i}");
        let (_, host_pub) = ssh_keygen(&dir, &name, kind, "");
        conf.push_str(&format!("HostKey {}\n", dir.join(&name).display()));
        let key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        host_lines.push(format!("[127.0.0.1]:{port} {}\n", key.join(" ")));
    }
    std::fs::write(dir.join("authorized_keys"), authorized.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("sshd_config"), conf).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .expect("spawn sshd");
    wait_for_port(port, &mut child);
    Sshd {
        server: Server { child, port },
        known_hosts: host_lines[0].clone(),
        host_lines,
    }
}

/// A root CA, an intermediate CA it signed, and a server certificate for 127.0.0.1/localhost
/// issued by the intermediate. Returns (root ca.crt path, PEM of server cert + intermediate +
/// key, for a server that sends the chain).
pub fn make_tls_chain(world: &World, name: &str) -> (PathBuf, PathBuf) {
    let dir = world.path(&format!("tls-chain-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut root = vec!["req", "-x509"];
    root.extend(ec);
    root.extend([
        "-keyout",
        "root.key",
        "-out",
        "root.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test root",
    ]);
    run(&root);
    std::fs::write(
        dir.join("ca.cnf"),
        "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    let mut inter = vec!["req"];
    inter.extend(ec);
    inter.extend([
        "-keyout",
        "inter.key",
        "-out",
        "inter.csr",
        "-subj",
        "/CN=test intermediate",
    ]);
    run(&inter);
    run(&[
        "x509",
        "-req",
        "-in",
        "inter.csr",
        "-CA",
        "root.crt",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "inter.crt",
        "-days",
        "2",
        "-extfile",
        "ca.cnf",
    ]);
    std::fs::write(
        dir.join("srv.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let mut srv = vec!["req"];
    srv.extend(ec);
    srv.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&srv);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "inter.crt",
        "-CAkey",
        "inter.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "srv.cnf",
    ]);
    let mut pem = std::fs::read(dir.join("server.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("inter.crt")).unwrap());
    pem.extend(std::fs::read(dir.join("server.key")).unwrap());
    std::fs::write(dir.join("server.pem"), pem).unwrap();
    (dir.join("root.crt"), dir.join("server.pem"))
}
