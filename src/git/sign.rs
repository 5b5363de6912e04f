//! Commit signing (`git.commit.signingKey`): OpenPGP detached signatures from an armored
//! secret key (`git.asc`, optional `passphrase`) and SSH signatures (SSHSIG, namespace `git`,
//! SHA-512), both made in-process: no gpg / ssh-keygen, no key material on disk.

use std::fmt;

use pgp::composed::{ArmorOptions, Deserializable, DetachedSignature, SignedSecretKey};
use pgp::types::{KeyDetails, Password, SecretKeyTrait};

use super::GitError;

/// A signing key as the Secret gives it. `Debug` hides the key and the passphrase.
#[derive(Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// `git.asc`: one armored OpenPGP secret key (transferable key, exactly one entity).
    OpenPgp {
        armored: String,
        passphrase: Option<String>,
    },
    /// An SSH private key in OpenSSH format (`ssh-keygen`'s default).
    Ssh {
        private_key: String,
        passphrase: Option<String>,
    },
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKey::OpenPgp { .. } => f.write_str("OpenPgp(***)"),
            SigningKey::Ssh { .. } => f.write_str("Ssh(***)"),
        }
    }
}

/// A key checked and unlocked once (parse and passphrase errors surface here), ready to sign
/// any number of commits.
pub struct Signer {
    inner: Inner,
}

enum Inner {
    OpenPgp {
        key: Box<SignedSecretKey>,
        /// Index into `secret_subkeys` of the signing subkey, None: the primary key.
        subkey: Option<usize>,
        passphrase: Option<String>,
    },
    Ssh(Box<ssh_key::PrivateKey>),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::OpenPgp { .. } => f.write_str("Signer(OpenPGP)"),
            Inner::Ssh(_) => f.write_str("Signer(SSH)"),
        }
    }
}

fn sign_err(cause: impl Into<String>) -> GitError {
    GitError::Sign {
        cause: cause.into(),
    }
}

impl Signer {
    pub fn new(key: &SigningKey) -> Result<Signer, GitError> {
        match key {
            SigningKey::OpenPgp {
                armored,
                passphrase,
            } => Self::openpgp(armored, passphrase.as_deref()),
            SigningKey::Ssh {
                private_key,
                passphrase,
            } => Self::ssh(private_key, passphrase.as_deref()),
        }
    }

    fn openpgp(armored: &str, passphrase: Option<&str>) -> Result<Signer, GitError> {
        let blocks = armored
            .matches("-----BEGIN PGP PRIVATE KEY BLOCK-----")
            .count();
        if blocks > 1 {
            return Err(sign_err(format!(
                "git.asc must hold exactly one secret key, found {blocks} key blocks"
            )));
        }
        let (keys, _) = SignedSecretKey::from_string_many(armored)
            .map_err(|e| sign_err(format!("reading git.asc: {e}")))?;
        let keys: Vec<SignedSecretKey> = keys
            .collect::<Result<_, _>>()
            .map_err(|e| sign_err(format!("reading git.asc: {e}")))?;
        let key = match <[SignedSecretKey; 1]>::try_from(keys) {
            Ok([key]) => key,
            Err(keys) => {
                return Err(sign_err(format!(
                    "git.asc must hold exactly one secret key, found {}",
                    keys.len()
                )))
            }
        };
        // A signing-capable subkey if there is one (as gpg and Flux choose), else the primary.
        let subkey = key
            .secret_subkeys
            .iter()
            .position(|s| s.signatures.iter().any(|sig| sig.key_flags().sign()));
        let encrypted = match subkey {
            Some(i) => key.secret_subkeys[i].key.secret_params().is_encrypted(),
            None => key.primary_key.secret_params().is_encrypted(),
        };
        if encrypted && passphrase.is_none() {
            return Err(sign_err(
                "can not use passphrase protected signing key without 'passphrase' field",
            ));
        }
        let signer = Signer {
            inner: Inner::OpenPgp {
                key: Box::new(key),
                subkey,
                passphrase: passphrase.map(str::to_string),
            },
        };
        // Fail now, not at the first commit, on a wrong passphrase.
        signer.sign(b"tagline key check")?;
        Ok(signer)
    }

    fn ssh(text: &str, passphrase: Option<&str>) -> Result<Signer, GitError> {
        let text = text.trim();
        if !text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            return Ok(Signer {
                inner: Inner::Ssh(Box::new(ssh_key_from_pem(text, passphrase)?)),
            });
        }
        let key = ssh_key::PrivateKey::from_openssh(text)
            .map_err(|e| sign_err(format!("reading the SSH signing key (OpenSSH format): {e}")))?;
        let key = if key.is_encrypted() {
            let pass = passphrase.ok_or_else(|| {
                sign_err("can not use passphrase protected signing key without 'passphrase' field")
            })?;
            key.decrypt(pass)
                .map_err(|_| sign_err("cannot decrypt the SSH signing key: wrong passphrase"))?
        } else {
            key
        };
        Ok(Signer {
            inner: Inner::Ssh(Box::new(key)),
        })
    }

    /// The armored signature over `data` (a commit object's bytes), for the `gpgsig` header.
    pub fn sign(&self, data: &[u8]) -> Result<String, GitError> {
        match &self.inner {
            Inner::OpenPgp {
                key,
                subkey,
                passphrase,
            } => {
                let pw = passphrase
                    .as_deref()
                    .map(Password::from)
                    .unwrap_or_else(Password::empty);
                let rng = rand::thread_rng();
                let sig = match subkey {
                    Some(i) => {
                        let k = &key.secret_subkeys[*i].key;
                        DetachedSignature::sign_binary_data(rng, k, &pw, k.hash_alg(), data)
                    }
                    None => {
                        let k = &key.primary_key;
                        DetachedSignature::sign_binary_data(rng, k, &pw, k.hash_alg(), data)
                    }
                }
                .map_err(|e| sign_err(format!("OpenPGP signature: {}", pgp_cause(&e))))?;
                sig.to_armored_string(ArmorOptions::default())
                    .map_err(|e| sign_err(format!("armoring the signature: {e}")))
            }
            Inner::Ssh(key) => {
                let sig = match key.key_data().rsa() {
                    Some(rsa) => sshsig_rsa(key, rsa, data),
                    None => key.sign("git", ssh_key::HashAlg::Sha512, data),
                }
                .map_err(|e| sign_err(format!("SSH signature: {e}")))?;
                sig.to_pem(ssh_key::LineEnding::LF)
                    .map_err(|e| sign_err(format!("SSH signature: {e}")))
            }
        }
    }

    /// The OpenPGP fingerprint or SSH public key of the signing key (for logs and tests).
    pub fn public_id(&self) -> String {
        match &self.inner {
            Inner::OpenPgp { key, subkey, .. } => match subkey {
                Some(i) => key.secret_subkeys[*i].key.fingerprint().to_string(),
                None => key.primary_key.fingerprint().to_string(),
            },
            Inner::Ssh(key) => key
                .public_key()
                .to_openssh()
                .unwrap_or_else(|_| "ssh key".into()),
        }
    }
}

fn pgp_cause(e: &pgp::errors::Error) -> String {
    let s = e.to_string();
    if s.to_ascii_lowercase().contains("checksum") || s.to_ascii_lowercase().contains("decrypt") {
        format!("wrong passphrase? ({s})")
    } else {
        s
    }
}

/// SSHSIG with an RSA key (rsa-sha2-512), the RSA operation done by OpenSSL: ssh-key 0.6.7
/// rebuilds the RSA key from (p, p) instead of (p, q) and fails on every real key.
fn sshsig_rsa(
    key: &ssh_key::PrivateKey,
    rsa: &ssh_key::private::RsaKeypair,
    msg: &[u8],
) -> Result<ssh_key::SshSig, ssh_key::Error> {
    use openssl::bn::{BigNum, BigNumContext};
    let crypto = |_| ssh_key::Error::Crypto;
    let bn = |m: &ssh_key::Mpint| -> Result<BigNum, ssh_key::Error> {
        BigNum::from_slice(m.as_positive_bytes().ok_or(ssh_key::Error::Crypto)?).map_err(crypto)
    };
    let (n, e) = (bn(&rsa.public.n)?, bn(&rsa.public.e)?);
    let (d, p, q, iqmp) = (
        bn(&rsa.private.d)?,
        bn(&rsa.private.p)?,
        bn(&rsa.private.q)?,
        bn(&rsa.private.iqmp)?,
    );
    let mut ctx = BigNumContext::new().map_err(crypto)?;
    let one = BigNum::from_u32(1).map_err(crypto)?;
    let crt_exp = |prime: &BigNum, ctx: &mut BigNumContext| -> Result<BigNum, ssh_key::Error> {
        let mut prime_minus_one = BigNum::new().map_err(crypto)?;
        prime_minus_one.checked_sub(prime, &one).map_err(crypto)?;
        let mut r = BigNum::new().map_err(crypto)?;
        r.nnmod(&d, &prime_minus_one, ctx).map_err(crypto)?;
        Ok(r)
    };
    let dmp1 = crt_exp(&p, &mut ctx)?;
    let dmq1 = crt_exp(&q, &mut ctx)?;
    let private = openssl::rsa::Rsa::from_private_components(n, e, d, p, q, dmp1, dmq1, iqmp)
        .and_then(openssl::pkey::PKey::from_rsa)
        .map_err(crypto)?;
    let signed = ssh_key::SshSig::signed_data("git", ssh_key::HashAlg::Sha512, msg)?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha512(), &private)
        .map_err(crypto)?;
    signer.update(&signed).map_err(crypto)?;
    let raw = signer.sign_to_vec().map_err(crypto)?;
    let signature = ssh_key::Signature::new(
        ssh_key::Algorithm::Rsa {
            hash: Some(ssh_key::HashAlg::Sha512),
        },
        raw,
    )?;
    ssh_key::SshSig::new(
        key.public_key().key_data().clone(),
        "git",
        ssh_key::HashAlg::Sha512,
        signature,
    )
}

/// An SSH signing key given in PEM (PKCS#1 RSA, SEC1 EC, PKCS#8, possibly encrypted), as
/// `ssh-keygen -m PEM` writes them, turned into the key type the SSHSIG code signs with.
fn ssh_key_from_pem(pem: &str, passphrase: Option<&str>) -> Result<ssh_key::PrivateKey, GitError> {
    use openssl::nid::Nid;
    use openssl::pkey::{Id, PKey};
    use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair, RsaPrivateKey};
    use ssh_key::Mpint;

    let encrypted = pem.contains("ENCRYPTED");
    if encrypted && passphrase.is_none() {
        return Err(sign_err(
            "can not use passphrase protected signing key without 'passphrase' field",
        ));
    }
    let pkey =
        PKey::private_key_from_pem_passphrase(pem.as_bytes(), passphrase.unwrap_or("").as_bytes())
            .map_err(|_| {
                sign_err(if encrypted {
                    "cannot decrypt the SSH signing key: wrong passphrase"
                } else {
                    "the SSH signing key is neither OpenSSH nor PEM"
                })
            })?;
    let bad = |what: &str| sign_err(format!("unusable SSH signing key: {what}"));
    let data = match pkey.id() {
        Id::RSA => {
            let rsa = pkey.rsa().map_err(|_| bad("RSA"))?;
            let mp = |b: Option<&openssl::bn::BigNumRef>| {
                b.ok_or_else(|| bad("RSA key without CRT parameters"))
                    .and_then(|b| Mpint::from_positive_bytes(&b.to_vec()).map_err(|_| bad("RSA")))
            };
            KeypairData::Rsa(RsaKeypair {
                public: ssh_key::public::RsaPublicKey {
                    e: mp(Some(rsa.e()))?,
                    n: mp(Some(rsa.n()))?,
                },
                private: RsaPrivateKey {
                    d: mp(Some(rsa.d()))?,
                    iqmp: mp(rsa.iqmp())?,
                    p: mp(rsa.p())?,
                    q: mp(rsa.q())?,
                },
            })
        }
        Id::ED25519 => {
            let raw = pkey.raw_private_key().map_err(|_| bad("Ed25519"))?;
            let seed: [u8; 32] = raw.as_slice().try_into().map_err(|_| bad("Ed25519"))?;
            KeypairData::Ed25519(Ed25519Keypair::from_seed(&seed))
        }
        Id::EC => {
            let ec = pkey.ec_key().map_err(|_| bad("EC"))?;
            let secret = ec.private_key().to_vec();
            match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => {
                    let sk = p256::SecretKey::from_slice(&secret).map_err(|_| bad("P-256"))?;
                    let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                        &sk.public_key(),
                        false,
                    );
                    KeypairData::Ecdsa(EcdsaKeypair::NistP256 {
                        public,
                        private: sk.into(),
                    })
                }
                Some(Nid::SECP384R1) => {
                    let sk = p384::SecretKey::from_slice(&secret).map_err(|_| bad("P-384"))?;
                    let public = p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                        &sk.public_key(),
                        false,
                    );
                    KeypairData::Ecdsa(EcdsaKeypair::NistP384 {
                        public,
                        private: sk.into(),
                    })
                }
                _ => return Err(bad("only P-256 and P-384 EC keys are supported")),
            }
        }
        _ => return Err(bad("only RSA, ECDSA and Ed25519 keys are supported")),
    };
    ssh_key::PrivateKey::new(data, "").map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Signer>();
        shared::<super::super::Checkout>();
        shared::<super::super::Remote>();
    }

    #[test]
    fn debug_hides_keys() {
        let k = SigningKey::OpenPgp {
            armored: "-----BEGIN PGP PRIVATE KEY BLOCK-----".into(),
            passphrase: Some("hunter22".into()),
        };
        let shown = format!("{k:?}");
        assert!(
            !shown.contains("BEGIN") && !shown.contains("hunter22"),
            "{shown}"
        );
    }
}
