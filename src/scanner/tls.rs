//! TLS material from a `certSecretRef` Secret: the client identity (`tls.crt` + `tls.key`).

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
