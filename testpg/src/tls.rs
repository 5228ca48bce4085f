//! The throwaway cluster's certificates: a self-signed root, a server
//! certificate it signs (for `localhost` and `127.0.0.1`), and a second,
//! unrelated root that signed nothing, for tests that must see a
//! certificate refused.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Where the certificates of a cluster were written.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The root that signed the server's certificate (PEM).
    pub root: PathBuf,
    /// A root that signed nothing the server has (PEM).
    pub unrelated_root: PathBuf,
}

/// Writes the roots into `dir` and the server's certificate and key into
/// `data` as `server.crt` and `server.key` (the server's default names;
/// the key readable by its owner only, as the server demands).
pub(crate) fn write(dir: &Path, data: &Path) -> Result<Certificates, String> {
    let describe = |error: rcgen::Error| format!("cannot make the test certificates: {error}");
    let root = self_signed_root("atmostonce testpg root").map_err(describe)?;
    let unrelated = self_signed_root("atmostonce testpg unrelated root").map_err(describe)?;
    let server_key = KeyPair::generate().map_err(describe)?;
    let server_cert = server_params()
        .and_then(|params| params.signed_by(&server_key, &root))
        .map_err(describe)?;
    let certificates = Certificates {
        root: dir.join("root.crt"),
        unrelated_root: dir.join("unrelated-root.crt"),
    };
    write_file(&certificates.root, &root.pem(), 0o644)?;
    write_file(&certificates.unrelated_root, &unrelated.pem(), 0o644)?;
    write_file(&data.join("server.crt"), &server_cert.pem(), 0o644)?;
    write_file(&data.join("server.key"), &server_key.serialize_pem(), 0o600)?;
    Ok(certificates)
}

fn self_signed_root(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

fn server_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, SERVER_NAMES[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}
