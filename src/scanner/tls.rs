//! TLS for the scanner's client: rustls with the system roots loaded lazily (at the first
//! certificate to verify, once per process) plus `ca.crt` from `certSecretRef`, and the client
//! identity (`tls.crt` + `tls.key`) for mTLS.
//!
//! Why rustls and lazy roots: with native-tls (OpenSSL) every HTTP client parsed the whole
//! system CA bundle when it was built, twice (OpenSSL's default paths, then the probed bundle):
//! about 60 ms of a 80 ms plain-HTTP scan in a fresh process, even when no TLS was spoken.
//! rustls-native-certs reads the same places Go does (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else the
//! distribution's bundle), so trust is unchanged; webpki-roots would have ignored CAs installed
//! on the system (a private registry's CA), which Flux (Go) trusts.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's root certificates, read once per process, on first use.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::debug!("loading a system CA certificate: {e}");
        }
        loaded.certs
    })
}

/// Verifies like rustls' WebPKI verifier over the system roots plus `extra`, building it on
/// the first certificate it sees.
#[derive(Debug)]
struct LazyRootsVerifier {
    extra: Vec<CertificateDer<'static>>,
    /// Whether the system's roots are trusted besides `extra`.
    system: bool,
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<Arc<WebPkiServerVerifier>, rustls::Error>>,
}

impl LazyRootsVerifier {
    fn verifier(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.inner
            .get_or_init(|| {
                let mut store = rustls::RootCertStore::empty();
                for c in &self.extra {
                    store.add(c.clone())?;
                }
                if self.system {
                    let (_, ignored) =
                        store.add_parsable_certificates(system_roots().iter().cloned());
                    if ignored > 0 {
                        tracing::debug!("{ignored} system CA certificates could not be parsed");
                    }
                }
                if store.is_empty() {
                    return Err(rustls::Error::General(
                        "no CA certificates: none on the system and no ca.crt".into(),
                    ));
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), self.provider.clone())
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls configuration for a scan: system roots plus `ca_pem` (lazily), the client
/// identity if any, HTTP/2 and HTTP/1.1 offered. Errors never quote key material.
pub(super) fn client_config(
    ca_pem: Option<&[u8]>,
    identity: Option<(&[u8], &[u8])>,
) -> Result<rustls::ClientConfig, String> {
    client_config_with(ca_pem, identity, true)
}

/// The same rustls configuration for tagline's other HTTP clients (notifications, the status
/// client); `system_roots: false` trusts only `ca_pem` (Flux's Providers: a `ca.crt` replaces
/// the system roots). Errors never quote key material.
pub fn client_config_with(
    ca_pem: Option<&[u8]>,
    identity: Option<(&[u8], &[u8])>,
    system_roots: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut extra = Vec::new();
    if let Some(pem) = ca_pem {
        for c in CertificateDer::pem_slice_iter(pem) {
            extra.push(c.map_err(|_| "ca.crt is not a valid PEM certificate bundle".to_string())?);
        }
        if extra.is_empty() {
            return Err("ca.crt holds no PEM certificate".into());
        }
        // Parse now, so a bad ca.crt is an options error, not a handshake failure later.
        let mut check = rustls::RootCertStore::empty();
        for c in &extra {
            check.add(c.clone()).map_err(|_| {
                "ca.crt holds a certificate that cannot be used as a CA".to_string()
            })?;
        }
    }
    let provider = provider();
    let verifier = Arc::new(LazyRootsVerifier {
        extra,
        system: system_roots,
        provider: provider.clone(),
        inner: OnceLock::new(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "tls.crt is not a PEM certificate".to_string())?;
            if certs.is_empty() {
                return Err("tls.crt holds no PEM certificate".into());
            }
            let pkcs8 = pkcs8_key_pem(key_pem).map_err(|r| format!("tls.key: {r}"))?;
            let key = PrivateKeyDer::from_pem_slice(&pkcs8)
                .map_err(|_| "tls.key is not a PEM private key".to_string())?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|_| "tls.crt/tls.key are not a usable certificate and key".to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Returns the key as PKCS#8 PEM (what the TLS backend accepts), converting PKCS#1
/// (`RSA PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`) keys. Errors never quote the key.
pub(super) fn pkcs8_key_pem(key_pem: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(key_pem).map_err(|_| "not PEM text".to_string())?;
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("ENCRYPTED") {
        return Err("encrypted private keys are not supported".into());
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        return Ok(key_pem.to_vec());
    }
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem)
        .map_err(|_| "not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)".to_string())?;
    key.private_key_to_pem_pkcs8()
        .map_err(|_| "cannot convert the private key to PKCS#8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec1_and_pkcs1_keys_are_converted() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let sec1 = ec.private_key_to_pem().unwrap();
        assert!(String::from_utf8_lossy(&sec1).contains("BEGIN EC PRIVATE KEY"));
        let out = pkcs8_key_pem(&sec1).unwrap();
        assert!(String::from_utf8_lossy(&out).contains("BEGIN PRIVATE KEY"));
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pkcs1 = rsa.private_key_to_pem().unwrap();
        assert!(String::from_utf8_lossy(&pkcs1).contains("BEGIN RSA PRIVATE KEY"));
        let out = pkcs8_key_pem(&pkcs1).unwrap();
        assert!(String::from_utf8_lossy(&out).contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn garbage_is_refused_without_quoting_it() {
        let e = pkcs8_key_pem(
            b"-----BEGIN EC PRIVATE KEY-----\nSECRETSECRET\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
        assert!(pkcs8_key_pem(&[0xff, 0xfe]).is_err());
    }
}
