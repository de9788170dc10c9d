//! Client certificates and the client assertion JWT (docs/protocol.md §6.5).
//!
//! * Header: `alg` `PS256` (RSASSA-PSS, MGF1-SHA-256, 32-byte salt) with `x5t#S256` (SHA-256
//!   thumbprint of the leaf certificate); for the `adfs` tenant `RS256` with `x5t` (SHA-1).
//!   `typ` is `JWT`. `x5c` (standard base64 DER of each certificate, leaf first, then the
//!   others in file order) only when the chain is to be sent.
//! * Claims: `aud` = the token endpoint, `iss` = `sub` = the client id, `jti` = a random UUID
//!   v4, `nbf` = `iat` = now, `exp` = now + 600 s. A new assertion is signed for every token
//!   request (the cache makes those rare), so no signed assertion is kept in memory.
//! * Segments are unpadded base64url of compact JSON, as RFC 7515 requires.
//!
//! Crypto: `ring` signs (`RsaKeyPair`, keys of 2048 to 8192 bits from PKCS#8 or PKCS#1 DER),
//! hashes and supplies randomness. It is already the TLS provider of this crate, is small,
//! audited, and builds without a C toolchain beyond a compiler; a second RSA implementation
//! (`RustCrypto` `rsa`) would add code without adding anything.
//!
//! Certificates: PEM files hold one private key and one or more certificates in any order;
//! the leaf is the certificate whose public key matches the private key. A password-protected
//! key (encrypted PKCS#8, or the traditional `Proc-Type: 4,ENCRYPTED` form) is decrypted with the
//! password given (see `encrypted_key.rs`). PKCS#12 files (feature `pkcs12`) are read with
//! `p12-keystore`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use identity_core::Error;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, KeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

/// The lifetime of a client assertion.
pub(crate) const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// A random UUID v4 from the system's secure random source.
pub(crate) fn uuid_v4(name: &'static str) -> Result<String, Error> {
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| {
        Error::authentication_failed(name, "the system random number generator failed")
    })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// An RSA private key with its certificate chain.
#[derive(Clone)]
pub(crate) struct ClientCertificate {
    key: Arc<RsaKeyPair>,
    /// Leaf first, then the other certificates in file order.
    chain: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The thumbprint identifies the certificate (it is public); the key is never printed.
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint_sha256())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Loads PEM or (feature `pkcs12`) PKCS#12 bytes, telling them apart by content.
    pub(crate) fn load(
        name: &'static str,
        bytes: &[u8],
        password: Option<&str>,
    ) -> Result<Self, Error> {
        if looks_like_pem(bytes) {
            return Self::from_pem(name, bytes, password);
        }
        Self::from_pkcs12(name, bytes, password)
    }

    /// Loads a PEM key and certificates.
    pub(crate) fn from_pem(
        name: &'static str,
        pem: &[u8],
        password: Option<&str>,
    ) -> Result<Self, Error> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(Error::invalid_configuration(
                name,
                "the PEM data holds no certificate; it needs the private key and the certificate",
            ));
        }
        // An unencrypted key needs no password; one given anyway is ignored.
        let key = if crate::encrypted_key::is_encrypted(pem) {
            crate::encrypted_key::decrypt(name, pem, password)?
        } else {
            PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
                Error::invalid_configuration(
                    name,
                    "the PEM data holds no private key; it needs the private key and the certificate",
                )
            })?
        };
        let key = rsa_key(name, &key)?;
        Self::assemble(name, key, certs)
    }

    #[cfg(feature = "pkcs12")]
    fn from_pkcs12(name: &'static str, der: &[u8], password: Option<&str>) -> Result<Self, Error> {
        // The archive view keeps every certificate in file order; the key-store view would
        // drop bundled CA certificates that do not chain to the key's certificate.
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password.unwrap_or("")).map_err(|e| {
            // The library's error text is not attached: it describes parser internals, and
            // the two cases that matter are told apart here.
            let message = if matches!(e, p12_keystore::error::Error::MacError(_)) {
                "the PKCS#12 certificate could not be opened: the password is wrong or missing; \
                 check AZURE_CLIENT_CERTIFICATE_PASSWORD or the password given"
            } else {
                "the certificate is neither PEM nor a readable PKCS#12 file (or its password is wrong)"
            };
            Error::invalid_configuration(name, message)
        })?;
        let Some(bag) = archive.keys.first() else {
            return Err(Error::invalid_configuration(
                name,
                "the PKCS#12 file holds no private key; export the certificate with its private key",
            ));
        };
        let key = rsa_key(
            name,
            &PrivateKeyDer::Pkcs8(bag.key.as_der().to_vec().into()),
        )?;
        let certs = archive
            .certs
            .iter()
            .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
            .collect();
        Self::assemble(name, key, certs)
    }

    #[cfg(not(feature = "pkcs12"))]
    fn from_pkcs12(
        name: &'static str,
        _der: &[u8],
        _password: Option<&str>,
    ) -> Result<Self, Error> {
        Err(Error::invalid_configuration(
            name,
            "the certificate is not PEM; PKCS#12 (.pfx, .p12) files need the cargo feature \"pkcs12\" of identity-chain (or identity-entra)",
        ))
    }

    /// Orders `certs` leaf first: the leaf is the certificate whose public key is `key`'s.
    fn assemble(
        name: &'static str,
        key: RsaKeyPair,
        mut certs: Vec<CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        let public = key.public_key().as_ref();
        let Some(leaf) = certs
            .iter()
            .position(|c| rsa_public_key_of(c) == Some(public))
        else {
            return Err(Error::invalid_configuration(
                name,
                "no certificate matches the private key; the file must hold the key's own certificate",
            ));
        };
        let leaf = certs.remove(leaf);
        certs.insert(0, leaf);
        Ok(Self {
            key: Arc::new(key),
            chain: certs,
        })
    }

    /// The leaf certificate, DER.
    #[cfg(test)]
    pub(crate) fn leaf(&self) -> &[u8] {
        &self.chain[0]
    }

    /// base64url (unpadded) SHA-256 of the leaf.
    pub(crate) fn thumbprint_sha256(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &self.chain[0]))
    }

    /// base64url (unpadded) SHA-1 of the leaf.
    fn thumbprint_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &self.chain[0],
        ))
    }

    /// Signs a client assertion for `audience`.
    pub(crate) fn sign_assertion(
        &self,
        name: &'static str,
        client_id: &str,
        audience: &str,
        now: SystemTime,
        adfs: bool,
        send_chain: bool,
    ) -> Result<String, Error> {
        let mut header = if adfs {
            json!({ "alg": "RS256", "typ": "JWT", "x5t": self.thumbprint_sha1() })
        } else {
            json!({ "alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_sha256() })
        };
        if send_chain {
            header["x5c"] = self.chain.iter().map(|c| STANDARD.encode(c)).collect();
        }
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid_v4(name)?,
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn signature::RsaEncoding = if adfs {
            &signature::RSA_PKCS1_SHA256
        } else {
            &signature::RSA_PSS_SHA256
        };
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                padding,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| {
                Error::authentication_failed(name, "signing the client assertion failed")
            })?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn rsa_key(name: &'static str, key: &PrivateKeyDer<'_>) -> Result<RsaKeyPair, Error> {
    let parsed = match key {
        PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
        _ => {
            return Err(Error::invalid_configuration(
                name,
                "the private key is not an RSA key; Microsoft Entra certificate credentials need RSA (2048 to 8192 bits)",
            ));
        }
    };
    // ring's rejection reasons are fixed strings about the key's form, never its content.
    parsed.map_err(|e| {
        if e.to_string() == "WrongAlgorithm" {
            return Error::invalid_configuration(
                name,
                "the private key is not an RSA key; Microsoft Entra certificate credentials need RSA (2048 to 8192 bits)",
            );
        }
        Error::invalid_configuration(
            name,
            format!(
                "the private key cannot be used ({e}); Microsoft Entra certificate credentials need an RSA key of 2048 to 8192 bits"
            ),
        )
    })
}

/// The RSA public key (`RSAPublicKey` DER) in a certificate's subject public key info.
fn rsa_public_key_of(cert: &[u8]) -> Option<&[u8]> {
    let (_, cert, _) = der_next(cert, 0x30)?;
    let (_, mut tbs, _) = der_next(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der_next(tbs, 0xa0)?.2;
    }
    // serial, signature algorithm, issuer, validity, subject
    for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
        tbs = der_next(tbs, tag)?.2;
    }
    let (_, spki, _) = der_next(tbs, 0x30)?;
    let (_, _algorithm, rest) = der_next(spki, 0x30)?;
    let (_, bits, _) = der_next(rest, 0x03)?;
    match bits.split_first() {
        Some((0, key)) => Some(key),
        _ => None,
    }
}

/// Reads one DER element with `tag`: (tag, contents, rest).
fn der_next(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((t, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::ErrorKind;
    use serde_json::Value;

    fn decode(segment: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    fn verify(
        cert: &ClientCertificate,
        jwt: &str,
        alg: &'static dyn signature::VerificationAlgorithm,
    ) {
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let public = rsa_public_key_of(cert.leaf()).unwrap();
        signature::UnparsedPublicKey::new(alg, public)
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .expect("the signature verifies with the certificate's public key");
    }

    #[cfg(feature = "pkcs12")]
    #[test]
    fn pkcs12_loads_with_the_right_password_and_fails_clearly_with_a_wrong_one() {
        let pfx = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/client.pfx"
        ))
        .unwrap();
        let cert = ClientCertificate::load("X", &pfx, Some("planted-pfx-password")).unwrap();
        let pem = ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        assert_eq!(cert.leaf(), pem.leaf());
        let ca = CertificateDer::from_pem_slice(CA_PEM.as_bytes()).unwrap();
        assert_eq!(cert.chain.len(), 2);
        assert_eq!(cert.chain[1], ca);
        let jwt = cert
            .sign_assertion("X", "cid", "aud", SystemTime::UNIX_EPOCH, false, false)
            .unwrap();
        verify(&cert, &jwt, &signature::RSA_PSS_2048_8192_SHA256);
        for password in [Some("planted-wrong-password"), None] {
            let err = ClientCertificate::load("X", &pfx, password).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
            assert!(err.message().contains("password"), "{err}");
            assert_no_key_material(&format!("{err} {err:?}"));
        }
        let err = ClientCertificate::load("X", b"neither pem nor pkcs12", None).unwrap_err();
        assert!(err.message().contains("neither PEM nor"), "{err}");
    }

    #[test]
    fn uuids_are_version_4() {
        let a = uuid_v4("X").unwrap();
        let b = uuid_v4("X").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }

    #[test]
    fn the_assertion_is_ps256_with_a_sha256_thumbprint_and_verifies() {
        let cert = ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        let aud = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let jwt = cert
            .sign_assertion("X", "cid", aud, now, false, false)
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('='));
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        let expected =
            URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, cert.leaf()));
        assert_eq!(header["x5t#S256"], expected.as_str());
        assert!(header.get("x5c").is_none());
        assert!(header.get("x5t").is_none());
        let claims = decode(parts[1]);
        assert_eq!(claims["aud"], aud);
        assert_eq!(claims["iss"], "cid");
        assert_eq!(claims["sub"], "cid");
        assert_eq!(claims["nbf"], 1_893_456_000u64);
        assert_eq!(claims["iat"], 1_893_456_000u64);
        assert_eq!(claims["exp"], 1_893_456_600u64);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
        verify(&cert, &jwt, &signature::RSA_PSS_2048_8192_SHA256);
        let again = cert
            .sign_assertion("X", "cid", aud, now, false, false)
            .unwrap();
        assert_ne!(
            decode(again.split('.').nth(1).unwrap())["jti"],
            claims["jti"]
        );
    }

    #[test]
    fn adfs_gets_rs256_with_a_sha1_thumbprint() {
        let cert = ClientCertificate::from_pem("X", CLIENT_PKCS1_PEM.as_bytes(), None).unwrap();
        let jwt = cert
            .sign_assertion("X", "cid", "aud", SystemTime::UNIX_EPOCH, true, false)
            .unwrap();
        let header = decode(jwt.split('.').next().unwrap());
        assert_eq!(header["alg"], "RS256");
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            cert.leaf(),
        ));
        assert_eq!(header["x5t"], expected.as_str());
        verify(&cert, &jwt, &signature::RSA_PKCS1_2048_8192_SHA256);
    }

    #[test]
    fn the_chain_is_sent_only_on_request_leaf_first() {
        let cert = ClientCertificate::from_pem("X", CLIENT_CHAIN_PEM.as_bytes(), None).unwrap();
        let jwt = cert
            .sign_assertion("X", "cid", "aud", SystemTime::UNIX_EPOCH, false, true)
            .unwrap();
        let header = decode(jwt.split('.').next().unwrap());
        let x5c: Vec<Vec<u8>> = header["x5c"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| STANDARD.decode(c.as_str().unwrap()).unwrap())
            .collect();
        let file_certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(CLIENT_CHAIN_PEM.as_bytes())
            .map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(x5c, file_certs);
        assert_eq!(x5c[0], cert.leaf());
    }

    #[test]
    fn the_leaf_is_the_certificate_matching_the_key_whatever_the_order() {
        // CA first, then the key and its certificate.
        let reordered = format!("{CA_PEM}{CLIENT_PEM}");
        let cert = ClientCertificate::from_pem("X", reordered.as_bytes(), None).unwrap();
        let ours = ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        assert_eq!(cert.leaf(), ours.leaf());
    }

    #[test]
    fn unusable_pem_is_refused_clearly_without_echoing_the_key() {
        let key_only: String = CLIENT_PEM
            .split_inclusive('\n')
            .skip_while(|l| !l.contains("BEGIN PRIVATE KEY"))
            .collect();
        let cert_only: String = CLIENT_PEM
            .split_inclusive('\n')
            .take_while(|l| !l.contains("BEGIN PRIVATE KEY"))
            .collect();
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let encrypted = format!("{cert_only}{encrypted}");
        let mismatched = format!("{key_only}{CA_PEM}");
        let cases: [(&str, &str); 5] = [
            (&key_only, "no certificate"),
            (&cert_only, "no private key"),
            (&encrypted, "encrypted"),
            (EC_PEM, "not an RSA key"),
            (&mismatched, "matches the private key"),
        ];
        for (pem, expected) in cases {
            let err = ClientCertificate::from_pem("X", pem.as_bytes(), None).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
            assert!(err.message().contains(expected), "{err}");
            assert_no_key_material(&format!("{err} {err:?}"));
        }
        let cert = ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        assert_no_key_material(&format!("{cert:?}"));
    }

    const PEM_PASSWORD: &str = "planted-pem-password";

    #[test]
    fn password_protected_pem_keys_decrypt_in_both_openssl_forms() {
        let plain = ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        for (pem, form) in [
            (ENCRYPTED_PKCS8_PEM, "pkcs8 -topk8 -v2 aes-256-cbc"),
            (ENCRYPTED_TRADITIONAL_PEM, "rsa -aes256 -traditional"),
            (ENCRYPTED_DES3_PEM, "rsa -des3 -traditional"),
        ] {
            let cert = ClientCertificate::load("X", pem.as_bytes(), Some(PEM_PASSWORD))
                .unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(cert.leaf(), plain.leaf(), "{form}");
            assert_eq!(
                cert.key.public().as_ref(),
                plain.key.public().as_ref(),
                "{form}"
            );
            // The decrypted key signs.
            cert.sign_assertion("X", "c", "aud", SystemTime::UNIX_EPOCH, false, false)
                .unwrap();
        }
    }

    #[test]
    fn a_wrong_or_missing_pem_password_is_named_without_echoing_it() {
        for pem in [
            ENCRYPTED_PKCS8_PEM,
            ENCRYPTED_TRADITIONAL_PEM,
            ENCRYPTED_DES3_PEM,
        ] {
            for password in [Some("planted-wrong-password"), None, Some("")] {
                let err = ClientCertificate::load("X", pem.as_bytes(), password).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
                assert!(err.message().contains("password"), "{err}");
                assert!(
                    err.message().contains("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
                    "{err}"
                );
                assert_no_key_material(&format!("{err} {err:?}"));
            }
        }
    }

    #[test]
    fn an_unsupported_traditional_cipher_is_named() {
        let pem = ENCRYPTED_TRADITIONAL_PEM.replace("AES-256-CBC", "CAMELLIA-256-CBC");
        let err = ClientCertificate::load("X", pem.as_bytes(), Some(PEM_PASSWORD)).unwrap_err();
        assert!(err.message().contains("unsupported cipher"), "{err}");
    }
}
