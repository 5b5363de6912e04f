//! The test certificate authority: one CA per test process, a server certificate for
//! `localhost` / `127.0.0.1` / `::1` and a client certificate, all EC P-256, made with the
//! `openssl` CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::proc::{run, scratch_dir, scratch_home, scrub_env};

/// The process-wide test CA and the certificates it signed. Files live in the scratch root.
#[derive(Debug)]
pub struct TestCa {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

const CA_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = tagline test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
";

const SERVER_EXT: &str = "\
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
authorityKeyIdentifier = keyid
";

const CLIENT_EXT: &str = "\
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
";

impl TestCa {
    /// The CA of this test process, created on first use.
    pub fn get() -> &'static TestCa {
        static CA: OnceLock<TestCa> = OnceLock::new();
        CA.get_or_init(TestCa::create)
    }

    /// A CA of its own that signed none of the harness's certificates: what a client wrongly
    /// trusts in tests of a refused server certificate. Its files are removed when dropped.
    pub fn unrelated() -> TestCa {
        TestCa::create()
    }

    fn create() -> TestCa {
        let guard = scratch_dir("ca");
        let dir = guard.path().to_path_buf();
        let write = |name: &str, text: &str| {
            fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"))
        };
        write("ca.cnf", CA_CONFIG);
        write("server.ext", SERVER_EXT);
        write("client.ext", CLIENT_EXT);
        openssl(
            &dir,
            "create the test CA",
            &[
                "req",
                "-x509",
                "-new",
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
                "3650",
                "-config",
                "ca.cnf",
            ],
        );
        for leaf in ["server", "client"] {
            sign_leaf(&dir, leaf, "localhost", &dir, "ca");
        }
        // lighttpd wants certificate and key in one file.
        let server_pem = read(&dir.join("server.crt")) + &read(&dir.join("server.key"));
        write("server.pem", &server_pem);
        TestCa {
            ca_pem: read(&dir.join("ca.crt")),
            client_cert_pem: read(&dir.join("client.crt")),
            client_key_pem: read(&dir.join("client.key")),
            dir,
            _dir: guard,
        }
    }

    /// The CA certificate (PEM): what a client must trust to talk to the harness's TLS peers.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Path of the CA certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Path of the server certificate (PEM; SANs `localhost`, `127.0.0.1`, `::1`).
    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// Path of the server key (PEM, PKCS#8).
    pub fn server_key_path(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// Path of the server certificate followed by its key, in one PEM file.
    pub fn server_pem_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The client certificate (PEM, extended key usage `clientAuth`) for mTLS peers.
    pub fn client_cert_pem(&self) -> &str {
        &self.client_cert_pem
    }

    /// The client certificate's key (PEM, PKCS#8).
    pub fn client_key_pem(&self) -> &str {
        &self.client_key_pem
    }

    /// Path of the client certificate (PEM).
    pub fn client_cert_path(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// Path of the client key (PEM).
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.join("client.key")
    }
}

impl TestCa {
    /// A new server certificate signed by this CA for the subjectAltName `san` (e.g.
    /// `DNS:git.example.com`), in one PEM file with its key (for lighttpd); returns its path.
    /// The file lives in the scratch root until the process exits.
    pub fn issue_server_pem(&self, san: &str) -> PathBuf {
        let dir = scratch_dir("cert").keep();
        let ext = SERVER_EXT.replace(
            "subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1",
            &format!("subjectAltName = {san}"),
        );
        fs::write(dir.join("server.ext"), ext).expect("write server.ext");
        sign_leaf(&dir, "server", "tagline test server", &self.dir, "ca");
        let pem = read(&dir.join("server.crt")) + &read(&dir.join("server.key"));
        fs::write(dir.join("server.pem"), pem).expect("write server.pem");
        dir.join("server.pem")
    }

    /// An intermediate CA signed by this CA, and a server certificate for `localhost` /
    /// `127.0.0.1` / `::1` issued by the intermediate: returns the path of one PEM file with
    /// the server certificate, the intermediate and the server key, for a server that sends
    /// the chain (clients trust only this CA). Lives until the process exits.
    pub fn issue_chain_pem(&self) -> PathBuf {
        let dir = scratch_dir("chain").keep();
        fs::write(
            dir.join("inter.ext"),
            "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
        )
        .expect("write inter.ext");
        fs::write(dir.join("server.ext"), SERVER_EXT).expect("write server.ext");
        sign_leaf(&dir, "inter", "tagline test inter", &self.dir, "ca");
        sign_leaf(&dir, "server", "tagline test server", &dir, "inter");
        let pem = read(&dir.join("server.crt"))
            + &read(&dir.join("inter.crt"))
            + &read(&dir.join("server.key"));
        fs::write(dir.join("server.pem"), pem).expect("write server.pem");
        dir.join("server.pem")
    }
}

fn openssl(dir: &Path, what: &str, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    scrub_env(&mut cmd, scratch_home());
    run(what, cmd.current_dir(dir).args(args));
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Makes `<dir>/<leaf>.key` and `<dir>/<leaf>.crt` (common name `cn`, extensions from `<dir>/<leaf>.ext`),
/// signed by `<ca_dir>/<ca>.crt` and its key.
fn sign_leaf(dir: &Path, leaf: &str, cn: &str, ca_dir: &Path, ca: &str) {
    static SERIAL: AtomicU32 = AtomicU32::new(100);
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed).to_string();
    fs::write(
        dir.join(format!("{leaf}.cnf")),
        format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n"),
    )
    .expect("write leaf config");
    openssl(
        dir,
        &format!("create the {leaf} key"),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{leaf}.key"),
            "-out",
            &format!("{leaf}.csr"),
            "-config",
            &format!("{leaf}.cnf"),
        ],
    );
    let ca_crt = ca_dir.join(format!("{ca}.crt"));
    let ca_key = ca_dir.join(format!("{ca}.key"));
    openssl(
        dir,
        &format!("sign the {leaf} certificate"),
        &[
            "x509",
            "-req",
            "-in",
            &format!("{leaf}.csr"),
            "-CA",
            ca_crt.to_str().expect("UTF-8 path"),
            "-CAkey",
            ca_key.to_str().expect("UTF-8 path"),
            "-set_serial",
            &serial,
            "-days",
            "3650",
            "-out",
            &format!("{leaf}.crt"),
            "-extfile",
            &format!("{leaf}.ext"),
        ],
    );
}
