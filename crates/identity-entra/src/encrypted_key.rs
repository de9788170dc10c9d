//! Password-protected PEM private keys, in the two forms `openssl` writes:
//!
//! * **PKCS#8** (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, e.g. `openssl pkcs8 -topk8 -v2
//!   aes-256-cbc`): PBES2 (PBKDF2 with HMAC-SHA-256 or scrypt, then AES-CBC), decrypted by
//!   `pkcs8` from the `RustCrypto` project.
//! * **Traditional** (`-----BEGIN RSA PRIVATE KEY-----` with `Proc-Type: 4,ENCRYPTED` and
//!   `DEK-Info: <cipher>,<hex IV>` headers, e.g. `openssl rsa -aes256 -traditional`): the key is
//!   derived from the password and the first 8 bytes of the IV with OpenSSL's
//!   `EVP_BytesToKey` (one round of MD5), then the PKCS#1 DER is AES-128/192/256-CBC or
//!   DES-EDE3-CBC encrypted with PKCS#7 padding. `RustCrypto` has no crate for this legacy form
//!   (its PEM follows RFC 7468, which forbids headers, and its maintainers do not plan to add
//!   it), so the headers are read with the `pem` crate and the decryption is composed from
//!   `RustCrypto`'s `md-5`, `aes`, `des` and `cbc`: only the header parsing and the ten-line
//!   key derivation are written here.
//!
//! A wrong password shows as a padding or structure error after decryption; both forms report
//! it as "the password is wrong", never with key material or the password.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, KeyIvInit};
use identity_core::Error;
use md5::{Digest, Md5};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};

const WRONG_PASSWORD: &str = "the encrypted private key could not be decrypted: the password is wrong or missing; \
     check AZURE_CLIENT_CERTIFICATE_PASSWORD or the password given";

/// Whether `pem` holds an encrypted private key, in either form.
pub(crate) fn is_encrypted(pem: &[u8]) -> bool {
    contains(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(pem, b"Proc-Type: 4,ENCRYPTED")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Finds the encrypted key in `pem` and decrypts it with `password`.
pub(crate) fn decrypt(
    name: &'static str,
    pem: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, Error> {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err(Error::invalid_configuration(
            name,
            "the private key is encrypted and no password was given; set AZURE_CLIENT_CERTIFICATE_PASSWORD \
             or the builder's password",
        ));
    };
    // Only the key block is parsed here: certificates are read by rustls-pki-types, and other
    // text (`Bag Attributes` lines) is skipped.
    let blocks = pem::parse_many(pem).map_err(|_| {
        Error::invalid_configuration(
            name,
            "the PEM data is malformed; check the certificate file",
        )
    })?;
    let Some(block) = blocks.iter().find(|b| {
        b.tag() == "ENCRYPTED PRIVATE KEY" || b.headers().get("Proc-Type") == Some("4,ENCRYPTED")
    }) else {
        return Err(Error::invalid_configuration(
            name,
            "the encrypted private key block cannot be read; check the certificate file",
        ));
    };
    if block.tag() == "ENCRYPTED PRIVATE KEY" {
        return pkcs8_key(name, block.contents(), password);
    }
    traditional_key(name, block, password)
}

fn pkcs8_key(
    name: &'static str,
    der: &[u8],
    password: &str,
) -> Result<PrivateKeyDer<'static>, Error> {
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|_| {
        Error::invalid_configuration(
            name,
            "the encrypted PKCS#8 private key is malformed; check the certificate file",
        )
    })?;
    let document = info.decrypt(password.as_bytes()).map_err(|e| match e {
        // An unknown scheme (PBES1, 3DES, …) is a format problem, not a wrong password.
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::AlgorithmParametersInvalid {
            ..
        })
        | pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }) => {
            Error::invalid_configuration(
                name,
                "the PKCS#8 key is encrypted with an unsupported scheme; re-encrypt it with \
                 `openssl pkcs8 -topk8 -v2 aes-256-cbc` or use a PKCS#12 file",
            )
        }
        _ => Error::invalid_configuration(name, WRONG_PASSWORD),
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        document.as_bytes().to_vec(),
    )))
}

fn traditional_key(
    name: &'static str,
    block: &pem::Pem,
    password: &str,
) -> Result<PrivateKeyDer<'static>, Error> {
    if block.tag() != "RSA PRIVATE KEY" {
        return Err(Error::invalid_configuration(
            name,
            "the private key is not an RSA key; Microsoft Entra certificate credentials need RSA (2048 to 8192 bits)",
        ));
    }
    let unsupported = || {
        Error::invalid_configuration(
            name,
            "the traditional encrypted key uses an unsupported cipher (supported: AES-128-CBC, AES-192-CBC, \
             AES-256-CBC, DES-EDE3-CBC); convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`",
        )
    };
    let (cipher, iv) = block
        .headers()
        .get("DEK-Info")
        .and_then(|v| v.split_once(','))
        .ok_or_else(unsupported)?;
    let iv = hex(iv.trim()).ok_or_else(unsupported)?;
    let ciphertext = block.contents();
    let cipher = cipher.trim().to_ascii_uppercase();
    let plain = match cipher.as_str() {
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(password, &iv, 16, ciphertext),
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(password, &iv, 24, ciphertext),
        "AES-256-CBC" => cbc_decrypt::<aes::Aes256>(password, &iv, 32, ciphertext),
        "DES-EDE3-CBC" => cbc_decrypt::<des::TdesEde3>(password, &iv, 24, ciphertext),
        _ => return Err(unsupported()),
    }
    .ok_or_else(|| Error::invalid_configuration(name, WRONG_PASSWORD))?;
    // A wrong password passes the padding check about once in 256 tries; the DER
    // `SEQUENCE` tag catches most of the rest, and ring's parse catches what remains.
    if plain.first() != Some(&0x30) {
        return Err(Error::invalid_configuration(name, WRONG_PASSWORD));
    }
    Ok(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(plain)))
}

/// CBC decryption with PKCS#7 padding, the key from `EVP_BytesToKey(MD5, salt = iv[..8], 1)`.
fn cbc_decrypt<C>(password: &str, iv: &[u8], key_len: usize, ciphertext: &[u8]) -> Option<Vec<u8>>
where
    C: aes::cipher::BlockCipherDecrypt + aes::cipher::KeyInit,
    cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
{
    let salt = iv.get(..8)?;
    let key = evp_bytes_to_key(password.as_bytes(), salt, key_len);
    let decryptor = cbc::Decryptor::<C>::new_from_slices(&key, iv).ok()?;
    decryptor.decrypt_padded_vec::<Pkcs7>(ciphertext).ok()
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration: `D_i = MD5(D_{i-1} || password ||
/// salt)`, concatenated until `len` bytes.
fn evp_bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(len + 16);
    let mut previous: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut md5 = Md5::new();
        md5.update(&previous);
        md5.update(password);
        md5.update(salt);
        previous = md5.finalize().to_vec();
        key.extend_from_slice(&previous);
    }
    key.truncate(len);
    key
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -pass pass:password -S 0102030405060708 -P -md md5`
        let key = evp_bytes_to_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        let expected = hex("E7B0971E52CA5CC8D0539FB3412F6316F7BA2E6EE293D9F3457B99436B51CE02");
        assert_eq!(Some(key.clone()), expected);
        let again = evp_bytes_to_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8], 16);
        assert_eq!(&key[..16], &again[..]);
    }

    #[test]
    fn hex_parses_and_refuses() {
        assert_eq!(hex("0aFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex("0"), None);
        assert_eq!(hex("zz"), None);
        assert_eq!(hex("éé"), None);
    }
}
