//! The scanner trusts the system's roots as Go does (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else the
//! distribution's bundle), read lazily: a CA installed "on the system" verifies a registry with
//! no `ca.crt` given, and without it the certificate is not trusted.

mod common;

use common::*;

#[test]
fn a_ca_in_ssl_cert_file_is_trusted_without_ca_crt() {
    let registry = Registry::start(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    let repo = unique_name("roots/app");
    registry.push_tags(&repo, &["1.0.0", "1.2.0"]);
    let tags = |env: &[(&str, &std::path::Path)]| {
        let mut cmd = tagline();
        cmd.args(["tags", &registry.image(&repo), "--timeout", "10s"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run tagline tags")
    };
    let ca = TestCa::get().ca_path();
    let empty = proc::scratch_dir("no-certs");
    let out = tags(&[("SSL_CERT_FILE", &ca), ("SSL_CERT_DIR", empty.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.2.0\n1.0.0\n");

    // The distribution's bundle does not hold the test CA.
    let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    let out = tags(&[("SSL_CERT_FILE", bundle), ("SSL_CERT_DIR", empty.path())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate not trusted"), "{stderr}");

    // No roots at all: a TLS error that says so.
    let none = empty.path().join("none.pem");
    std::fs::write(&none, "").unwrap();
    let out = tags(&[("SSL_CERT_FILE", &none), ("SSL_CERT_DIR", empty.path())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS: no CA certificates"), "{stderr}");
}
