//! The throwaway TLS certificate Azurite serves, and a free loopback port.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::explain::DemoError;

/// A throwaway TLS certificate and key (PEM) for 127.0.0.1 and localhost.
#[derive(Clone)]
pub struct DevCertificate {
    /// The certificate; clients trust it directly.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

impl fmt::Debug for DevCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCertificate").finish_non_exhaustive()
    }
}

/// Generates a self-signed end-entity certificate: `CA:FALSE`, key usage digitalSignature +
/// keyEncipherment, extended key usage serverAuth, SAN `IP:127.0.0.1` and `DNS:localhost`.
///
/// # Errors
/// When key generation or signing fails.
pub fn generate_certificate() -> Result<DevCertificate, DemoError> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let fail = |e: rcgen::Error| DemoError::local("generate a TLS certificate", e.to_string());
    let key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(fail)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "identity-blob-demo local Azurite");
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(DevCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A free TCP port on 127.0.0.1 (bound, then released).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
