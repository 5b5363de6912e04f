//! TLS material from a `certSecretRef` Secret: the client identity (`tls.crt` + `tls.key`).

/// Returns the key as PKCS#8 PEM (what the TLS backend accepts).
pub(super) fn pkcs8_key_pem(key_pem: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(key_pem).map_err(|_| "not PEM text".to_string())?;
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        Ok(key_pem.to_vec())
    } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        Err("encrypted private keys are not supported".into())
    } else {
        Err("not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)".into())
    }
}
