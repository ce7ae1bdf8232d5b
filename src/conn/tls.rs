//! TLS for PostgreSQL connections with rustls, following libpq's `sslmode`
//! semantics.
//!
//! | sslmode      | encrypted | chain checked | host name checked |
//! |--------------|-----------|---------------|-------------------|
//! | disable      | no        | –             | –                 |
//! | prefer       | if offered| no            | no                |
//! | require      | yes       | only with an explicit `sslrootcert` (as libpq) | no |
//! | verify-ca    | yes       | yes           | no                |
//! | verify-full  | yes       | yes           | yes               |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::info::{ConnInfo, SslMode};
use crate::error::Error;

/// Builds the rustls client configuration for `info`, or `None` for `sslmode=disable`.
pub fn client_config(info: &ConnInfo) -> Result<Option<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_setup(info, &e.to_string()))?;
    let verify_chain = match info.sslmode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer => false,
        SslMode::Require => info.sslrootcert.is_some(),
        SslMode::VerifyCa | SslMode::VerifyFull => true,
    };
    let verifier: Arc<dyn ServerCertVerifier> = if verify_chain {
        let roots = Arc::new(load_roots(info)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| tls_setup(info, &e.to_string()))?;
        Arc::new(ChainVerifier {
            inner: webpki,
            check_name: info.sslmode == SslMode::VerifyFull,
        })
    } else {
        Arc::new(NoVerifier { provider })
    };
    Ok(Some(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

fn load_roots(info: &ConnInfo) -> Result<RootCertStore, Error> {
    let path: PathBuf = match &info.sslrootcert {
        Some(p) => p.clone(),
        None => {
            let default = std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(".postgresql/root.crt"))
                .filter(|p| p.exists());
            default.ok_or_else(|| {
                tls_setup(
                    info,
                    &format!(
                        "sslmode={} needs trusted root certificates: set sslrootcert=/path/to/ca.pem \
                         (or sslrootcert=system for the operating system's store)",
                        info.sslmode.as_str()
                    ),
                )
            })?
        }
    };
    let mut store = RootCertStore::empty();
    if path.as_os_str() == "system" {
        let loaded = rustls_native_certs::load_native_certs();
        for cert in loaded.certs {
            // A single unparseable system certificate must not break the others.
            let _ = store.add(cert);
        }
    } else {
        let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
            tls_setup(
                info,
                &format!("cannot read sslrootcert {}: {e}", path.display()),
            )
        })?;
        for cert in certs {
            let cert = cert.map_err(|e| {
                tls_setup(
                    info,
                    &format!("sslrootcert {} is not valid PEM: {e}", path.display()),
                )
            })?;
            store.add(cert).map_err(|e| {
                tls_setup(
                    info,
                    &format!(
                        "sslrootcert {} holds a bad certificate: {e}",
                        path.display()
                    ),
                )
            })?;
        }
    }
    if store.is_empty() {
        return Err(tls_setup(
            info,
            &format!("sslrootcert {} holds no certificate", path.display()),
        ));
    }
    Ok(store)
}

fn tls_setup(info: &ConnInfo, message: &str) -> Error {
    Error::Connect {
        target: info.target(),
        kind: super::ConnectErrorKind::Tls,
        message: message.to_owned(),
    }
}

/// Checks the chain against the roots; checks the name only for `verify-full`.
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Encrypts without authenticating the server (`prefer`, `require`), as libpq does.
/// Handshake signatures are still checked so the session keys are sound.
#[derive(Debug)]
struct NoVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
