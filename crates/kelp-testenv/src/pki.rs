//! The throwaway certificates of one control plane: an authority, the API server's serving
//! certificate, the admin's client certificate, the service-account key pair, and the front
//! proxy's authority and client certificate (the API server's credentials towards aggregated
//! API servers such as metrics-server).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// Where each file of [`write`] is.
#[derive(Clone, Debug)]
pub(crate) struct PkiFiles {
    /// The authority's certificate (signs the serving and client certificates).
    pub(crate) ca_cert: PathBuf,
    /// The API server's certificate (SANs: loopback, the real node's address, the `kubernetes`
    /// Service's names and ClusterIP).
    pub(crate) serving_cert: PathBuf,
    /// The serving certificate's key.
    pub(crate) serving_key: PathBuf,
    /// The service-account signing key (private).
    pub(crate) sa_key: PathBuf,
    /// The service-account verification key (public).
    pub(crate) sa_pub: PathBuf,
    /// The front proxy's authority (`--requestheader-client-ca-file`).
    pub(crate) front_proxy_ca: PathBuf,
    /// The API server's client certificate towards aggregated API servers, signed by the front
    /// proxy's authority (CN [`FRONT_PROXY_CLIENT`]).
    pub(crate) proxy_client_cert: PathBuf,
    /// Its key.
    pub(crate) proxy_client_key: PathBuf,
}

/// The common name of the front proxy's client certificate (`--requestheader-allowed-names`).
pub(crate) const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// The user whose requests the API server's audit log records (in `system:masters`, like the
/// admin): a process given its kubeconfig has every request it makes counted.
pub(crate) const AUDITED_USER: &str = "kelp-testenv-audited";

/// The PEM text a kubeconfig embeds.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    /// The user's name (the certificate's common name).
    pub(crate) user: &'static str,
    /// The authority's certificate.
    pub(crate) ca_pem: String,
    /// The user's client certificate (`O=system:masters`).
    pub(crate) cert_pem: String,
    /// Its key.
    pub(crate) key_pem: String,
}

/// Makes the certificates and keys and writes them into `dir`.
/// Returns the admin's credentials and the audited user's ([`AUDITED_USER`]).
pub(crate) fn write(dir: &Path) -> std::io::Result<(PkiFiles, Credentials, Credentials)> {
    let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "kelp-testenv authority");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate().map_err(err)?;
    // Loopback, the real node's address, and the names and ClusterIP of the `kubernetes` Service
    // (pods reach the API server through it).
    let names = ["127.0.0.1", crate::node::NODE_IP, "10.96.0.1", "localhost", "kubernetes", "kubernetes.default"];
    let names = names
        .into_iter()
        .map(str::to_owned)
        .chain(["kubernetes.default.svc".to_owned(), "kubernetes.default.svc.cluster.local".to_owned()]);
    let mut serving = CertificateParams::new(names.collect::<Vec<_>>()).map_err(err)?;
    serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer).map_err(err)?;

    let master = |user: &'static str| -> std::io::Result<Credentials> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.distinguished_name.push(DnType::OrganizationName, "system:masters");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        Ok(Credentials { user, ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    };
    let admin = master("kelp-testenv-admin")?;
    let audited = master(AUDITED_USER)?;

    let sa_key = KeyPair::generate().map_err(err)?;

    let front_proxy_key = KeyPair::generate().map_err(err)?;
    let mut front_proxy = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    front_proxy.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    front_proxy.distinguished_name.push(DnType::CommonName, "kelp-testenv front proxy authority");
    front_proxy.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    let front_proxy_cert = front_proxy.self_signed(&front_proxy_key).map_err(err)?;
    let front_proxy_issuer = Issuer::new(front_proxy, front_proxy_key);
    let proxy_client_key = KeyPair::generate().map_err(err)?;
    let mut proxy_client = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    proxy_client.distinguished_name.push(DnType::CommonName, FRONT_PROXY_CLIENT);
    proxy_client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let proxy_client_cert = proxy_client.signed_by(&proxy_client_key, &front_proxy_issuer).map_err(err)?;

    let files = PkiFiles {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
        front_proxy_ca: dir.join("front-proxy-ca.crt"),
        proxy_client_cert: dir.join("front-proxy-client.crt"),
        proxy_client_key: dir.join("front-proxy-client.key"),
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(&files.ca_cert, ca_cert.pem())?;
    std::fs::write(&files.serving_cert, serving_cert.pem())?;
    std::fs::write(&files.serving_key, serving_key.serialize_pem())?;
    std::fs::write(&files.sa_key, sa_key.serialize_pem())?;
    std::fs::write(&files.sa_pub, sa_key.public_key_pem())?;
    std::fs::write(&files.front_proxy_ca, front_proxy_cert.pem())?;
    std::fs::write(&files.proxy_client_cert, proxy_client_cert.pem())?;
    std::fs::write(&files.proxy_client_key, proxy_client_key.serialize_pem())?;
    Ok((files, admin, audited))
}

/// A kubeconfig with one context, `kelp-testenv`, for `user` at `server`.
pub(crate) fn kubeconfig(server: &str, user: &Credentials) -> String {
    let b64 = |pem: &str| BASE64_STANDARD.encode(pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kelp-testenv
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {name}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: kelp-testenv
  context:
    cluster: kelp-testenv
    user: {name}
current-context: kelp-testenv
",
        name = user.user,
        ca = b64(&user.ca_pem),
        cert = b64(&user.cert_pem),
        key = b64(&user.key_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let (files, admin, audited) = write(dir.path()).unwrap();
        for file in [
            &files.ca_cert,
            &files.serving_cert,
            &files.serving_key,
            &files.sa_key,
            &files.sa_pub,
            &files.front_proxy_ca,
            &files.proxy_client_cert,
            &files.proxy_client_key,
        ] {
            assert!(std::fs::read_to_string(file).unwrap().starts_with("-----BEGIN "), "{}", file.display());
        }
        assert!(std::fs::read_to_string(&files.sa_pub).unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
        let config = kubeconfig("https://127.0.0.1:1", &admin);
        assert!(config.contains("server: https://127.0.0.1:1\n"));
        assert!(config.contains(&format!("client-key-data: {}\n", BASE64_STANDARD.encode(&admin.key_pem))));
        assert!(kubeconfig("https://127.0.0.1:1", &audited).contains(&format!("user: {AUDITED_USER}\n")));
    }
}
