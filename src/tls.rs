//! TLS for the listeners: the configured certificate, or a self-signed one
//! made once on first start (rcgen) and kept in the data directory.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs ring as the process-wide crypto provider. Two providers in one
/// binary make rustls' builders panic (mail-send and sqlx both build
/// configs); call this first thing. Repeated calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the certificate and key are (configured, or generated).
pub fn paths(config: &crate::config::Config) -> (PathBuf, PathBuf) {
    match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            let dir = config.data_dir.join("tls");
            (dir.join("cert.pem"), dir.join("key.pem"))
        }
    }
}

/// Loads the server configuration, generating a self-signed certificate for
/// `hostname` when none is configured and none was generated before.
pub fn server_config(config: &crate::config::Config) -> Result<Arc<ServerConfig>, TlsError> {
    install_crypto_provider();
    let (cert_path, key_path) = paths(config);
    if config.tls.cert.is_none() && !cert_path.exists() {
        generate_self_signed(&config.hostname, &cert_path, &key_path)?;
    }
    let file_error = |path: &Path, message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_error(&cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(&cert_path, "no certificate in file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| file_error(&key_path, format!("no usable private key: {e}")))?;
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(server))
}

fn generate_self_signed(hostname: &str, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let mut names = vec![hostname.to_string()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TlsError::File {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    let write = |path: &Path, text: String| {
        // The key is private from its creation; the certificate is public
        // anyway, but lives in the same private directory.
        crate::private_files::write_private(path, text.as_bytes()).map_err(|e| TlsError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    };
    write(key_path, certified.signing_key.serialize_pem())?;
    write(cert_path, certified.cert.pem())?;
    tracing::info!(path = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}
