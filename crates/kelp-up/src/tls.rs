//! On every address, `kelp up` serves its API over HTTPS and requires a bearer token: a throwaway
//! certificate authority and server certificate are made at each start, and the token is new each
//! start too.
//! The kubeconfig context carries the authority and the token (kubectl sends a token only over
//! TLS).

use std::net::IpAddr;
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("setting up TLS: {0}")]
pub struct TlsError(String);

/// A server certificate for the platform's addresses, signed by a new authority.
pub struct Tls {
    /// The authority's certificate, for the kubeconfig.
    pub ca_pem: String,
    /// Accepts TLS connections with the server certificate.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// An authority and a certificate valid for `ip`, `127.0.0.1`, `::1` and `localhost`.
    pub fn new(ip: IpAddr) -> Result<Tls, TlsError> {
        let err = |e: &dyn std::fmt::Display| TlsError(e.to_string());
        let ca_key = rcgen::KeyPair::generate().map_err(|e| err(&e))?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "kelp-local authority");
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).map_err(|e| err(&e))?;
        let issuer = rcgen::Issuer::new(ca, ca_key);

        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
        let key = rcgen::KeyPair::generate().map_err(|e| err(&e))?;
        let mut params = rcgen::CertificateParams::new(names).map_err(|e| err(&e))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "kelp-local");
        let cert = params.signed_by(&key, &issuer).map_err(|e| err(&e))?;

        let chain = vec![cert.der().clone()];
        let private = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| err(&e))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| err(&e))?;
        Ok(Tls { ca_pem: ca_cert.pem(), acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) })
    }
}

/// A new random bearer token (32 bytes, hexadecimal).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    kelp_runtime::deps::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_an_authority_and_a_token() {
        let tls = Tls::new(IpAddr::from([10, 1, 2, 3])).unwrap();
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
