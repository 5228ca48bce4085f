//! TLS to the server: libpq's `sslmode` and `sslrootcert`, read from the
//! connection string, over rustls with the ring provider (README, "TLS to
//! PostgreSQL").
//!
//! tokio-postgres knows `sslmode` only as `disable`, `prefer` and `require`,
//! and no `sslrootcert` at all, so [`TlsSettings::split_from`] takes both out
//! of the string before tokio-postgres parses the rest. tokio-postgres then
//! asks the server for TLS (or not, for `disable`) and falls back to plain
//! only for `prefer` when the server has no TLS; the rustls configuration
//! built here decides what of the server's certificate is checked:
//!
//! | `sslmode`     | TLS               | certificate checked                     |
//! |---------------|-------------------|-----------------------------------------|
//! | `disable`     | never             | -                                       |
//! | `prefer`      | if the server can | the chain if a root is found, else none |
//! | `require`     | always            | the chain if a root is found, else none |
//! | `verify-ca`   | always            | the chain up to the root                |
//! | `verify-full` | always            | the chain and the host name             |
//!
//! The root is `sslrootcert`, else `~/.postgresql/root.crt` if that exists
//! (as libpq). `verify-ca` and `verify-full` without either are an error
//! naming the path tried; so is an `sslrootcert` that cannot be read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::DurabilityError;

/// The `sslmode` values, in libpq's order, as the error for another lists
/// them.
const ACCEPTED_MODES: &str = "disable, prefer, require, verify-ca, verify-full";

/// The root certificate libpq reads when no `sslrootcert` is given, under
/// the home directory.
const DEFAULT_ROOT_CERT: &str = ".postgresql/root.crt";

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, DurabilityError> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(DurabilityError::ConfigError(format!(
                "the PostgreSQL connection string has sslmode={other:?}; the accepted values \
                 are {ACCEPTED_MODES}"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether to ask for TLS, and whether a
    /// server without it is acceptable.
    pub(super) fn on_the_wire(self) -> WireMode {
        match self {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        }
    }
}

/// The TLS part of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsSettings {
    pub(super) mode: SslMode,
    root_cert: Option<PathBuf>,
}

impl TlsSettings {
    /// Takes `sslmode` (default `prefer`) and `sslrootcert` out of `url` (a
    /// `postgres://` URL or a `key=value` string) and returns them with the
    /// rest of the string, for tokio-postgres.
    pub(super) fn split_from(url: &str) -> Result<(TlsSettings, String), DurabilityError> {
        let (pairs, rest) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            split_url(url)
        } else {
            split_key_values(url)?
        };
        let mut settings = TlsSettings {
            mode: SslMode::Prefer,
            root_cert: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "sslmode" => settings.mode = SslMode::parse(&value)?,
                _ => settings.root_cert = Some(PathBuf::from(value)),
            }
        }
        Ok((settings, rest))
    }

    /// The connector for these settings: `None` for `disable`, else rustls
    /// configured to check what the mode asks for.
    pub(super) fn connector(&self) -> Result<Option<MakeRustlsConnect>, DurabilityError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| tls_error("cannot set up TLS", &error))?;
        let config = match self.checks(home_root_cert())? {
            Checks::ChainAndName(roots) => {
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|error| tls_error("cannot use the root certificates", &error))?;
                builder.with_webpki_verifier(verifier)
            }
            Checks::Chain(roots) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly::new(Some(roots), &provider))),
            Checks::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly::new(None, &provider))),
        };
        Ok(Some(MakeRustlsConnect::new(config.with_no_client_auth())))
    }

    /// What of the server's certificate the mode checks, with the roots it
    /// checks the chain against; `default_root` is where the root is looked
    /// for without `sslrootcert` (`None`: no home directory).
    fn checks(&self, default_root: Option<PathBuf>) -> Result<Checks, DurabilityError> {
        let verifies = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull);
        let path = match (&self.root_cert, default_root) {
            (Some(given), _) => given.clone(),
            (None, Some(default)) if default.is_file() || verifies => default,
            (None, _) if !verifies => return Ok(Checks::Nothing),
            (None, _) => {
                return Err(DurabilityError::ConfigError(format!(
                    "sslmode={} needs a root certificate, and there is no home directory to \
                     find ~/{DEFAULT_ROOT_CERT} in; pass sslrootcert=PATH",
                    self.mode.name()
                )));
            }
        };
        if !path.is_file() {
            let why = match &self.root_cert {
                Some(_) => format!("sslrootcert={} names no file", path.display()),
                None => format!(
                    "sslmode={} needs a root certificate, and there is none at {} (the \
                     default place)",
                    self.mode.name(),
                    path.display()
                ),
            };
            return Err(DurabilityError::ConfigError(format!(
                "{why}; pass sslrootcert=PATH naming the PEM file of the root that signed the \
                 server's certificate"
            )));
        }
        let roots = read_roots(&path)?;
        Ok(if self.mode == SslMode::VerifyFull {
            Checks::ChainAndName(roots)
        } else {
            Checks::Chain(roots)
        })
    }
}

/// What of the server's certificate is checked.
enum Checks {
    Nothing,
    Chain(RootCertStore),
    ChainAndName(RootCertStore),
}

fn home_root_cert() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(DEFAULT_ROOT_CERT))
}

/// The certificates in the PEM file at `path`, as trust anchors.
fn read_roots(path: &Path) -> Result<RootCertStore, DurabilityError> {
    let unusable = |why: String| {
        DurabilityError::ConfigError(format!(
            "the root certificate file {} (sslrootcert) is unusable: {why}",
            path.display()
        ))
    };
    let mut roots = RootCertStore::empty();
    let certificates =
        CertificateDer::pem_file_iter(path).map_err(|error| unusable(error.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|error| unusable(error.to_string()))?;
        roots
            .add(certificate)
            .map_err(|error| unusable(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(unusable("it holds no PEM certificate".to_owned()));
    }
    Ok(roots)
}

fn tls_error(what: &str, error: &dyn std::error::Error) -> DurabilityError {
    DurabilityError::ConfigError(format!("postgres: {what}: {error}"))
}

/// `verify-ca`, and `prefer` or `require`: the chain is checked against
/// the roots when there are roots, the host name never; the handshake's
/// signatures are always checked against the certificate presented.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ChainOnly {
    fn new(roots: Option<RootCertStore>, provider: &CryptoProvider) -> ChainOnly {
        ChainOnly {
            roots,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let certificate = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &certificate,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The `sslmode`/`sslrootcert` pairs of a URL's query, and the URL without
/// them.
fn split_url(url: &str) -> (Vec<(String, String)>, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (Vec::new(), url.to_owned());
    };
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    for parameter in query.split('&') {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let key = percent_decode_str(key).decode_utf8_lossy();
        if is_tls_key(&key) {
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            taken.push((key.into_owned(), value));
        } else {
            kept.push(parameter);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (taken, rest)
}

/// The `sslmode`/`sslrootcert` pairs of a `key=value` string, and the
/// string without them (values re-quoted).
fn split_key_values(text: &str) -> Result<(Vec<(String, String)>, String), DurabilityError> {
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    for (key, value) in key_values(text)? {
        if is_tls_key(&key) {
            taken.push((key, value));
        } else {
            let quoted = value.replace('\\', r"\\").replace('\'', r"\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((taken, kept.join(" ")))
}

fn is_tls_key(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// The pairs of a libpq `key=value` string: whitespace around `=` allowed;
/// a value is single-quoted (with `\'` and `\\`) or runs to the next
/// whitespace (with `\` escaping the next character).
fn key_values(text: &str) -> Result<Vec<(String, String)>, DurabilityError> {
    let invalid = |why: &str| {
        DurabilityError::ConfigError(format!(
            "the PostgreSQL connection string is invalid ({why}); pass a postgres:// URL or a \
             key=value string"
        ))
    };
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid(&format!("{key:?} has no '='")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(invalid(&format!(
                            "the value of {key:?} has no closing quote"
                        )));
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (TlsSettings, String) {
        TlsSettings::split_from(url).unwrap_or_else(|error| panic!("{url}: {error}"))
    }

    #[test]
    fn a_url_loses_its_tls_parameters_and_keeps_the_others() {
        let (settings, rest) = split(
            "postgres://u@h:5/db?application_name=a&sslmode=verify-ca&sslrootcert=%2Ftmp%2Fr.crt",
        );
        assert_eq!(settings.mode, SslMode::VerifyCa);
        assert_eq!(settings.root_cert, Some(PathBuf::from("/tmp/r.crt")));
        assert_eq!(rest, "postgres://u@h:5/db?application_name=a");
        assert_eq!(
            split("postgres://u@h/db?sslmode=disable").1,
            "postgres://u@h/db"
        );
    }

    #[test]
    fn a_key_value_string_loses_its_tls_pairs_and_keeps_the_others_quoted() {
        let (settings, rest) =
            split(r"host=h sslmode = 'verify-full'  options='-c a=b\'c' sslrootcert=/r\ x.crt");
        assert_eq!(settings.mode, SslMode::VerifyFull);
        assert_eq!(settings.root_cert, Some(PathBuf::from("/r x.crt")));
        assert_eq!(rest, r"host='h' options='-c a=b\'c'");
        let reparsed: tokio_postgres::Config = rest.parse().expect("the rest parses");
        assert_eq!(reparsed.get_options(), Some("-c a=b'c"));
    }

    #[test]
    fn the_default_mode_is_prefer() {
        assert_eq!(split("host=h").0.mode, SslMode::Prefer);
        assert_eq!(split("postgres://h/db").0.mode, SslMode::Prefer);
    }

    #[test]
    fn an_unknown_mode_is_an_error_naming_it_and_the_accepted_ones() {
        let error = TlsSettings::split_from("host=h sslmode=allow").unwrap_err();
        assert_eq!(
            error.to_string(),
            DurabilityError::ConfigError(format!(
                "the PostgreSQL connection string has sslmode=\"allow\"; the accepted values \
                 are {ACCEPTED_MODES}"
            ))
            .to_string()
        );
    }

    #[test]
    fn without_sslrootcert_the_default_root_is_required_only_by_the_verify_modes() {
        let missing = std::env::temp_dir().join("atmostonce-no-such-dir/root.crt");
        let checks = |mode: &str, default: Option<PathBuf>| {
            split(&format!("host=h sslmode={mode}")).0.checks(default)
        };
        assert!(matches!(
            checks("require", Some(missing.clone())),
            Ok(Checks::Nothing)
        ));
        assert!(matches!(checks("prefer", None), Ok(Checks::Nothing)));
        for mode in ["verify-ca", "verify-full"] {
            let error = checks(mode, Some(missing.clone()))
                .err()
                .map(|e| e.to_string());
            let expected = DurabilityError::ConfigError(format!(
                "sslmode={mode} needs a root certificate, and there is none at {} (the default \
                 place); pass sslrootcert=PATH naming the PEM file of the root that signed the \
                 server's certificate",
                missing.display()
            ));
            assert_eq!(error, Some(expected.to_string()));
            let error = checks(mode, None).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|error| error.contains("no home directory")),
                "{error:?}"
            );
        }
    }

    #[test]
    fn an_unclosed_quote_is_an_error() {
        let error = TlsSettings::split_from("host='h").unwrap_err();
        assert!(error.to_string().contains("no closing quote"), "{error}");
    }
}
