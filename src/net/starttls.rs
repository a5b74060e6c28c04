//! The TLS handshake on an accepted connection: at once on the implicit-TLS
//! ports (465, 993), or when a session's STARTTLS asks for it (SMTP and
//! IMAP alike).

use super::Stream;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
    #[error("TLS handshake timed out")]
    Timeout,
}

/// Runs the server side of the handshake over `plain`, for at most `limit`.
pub async fn accept_tls<S: Stream + 'static>(
    acceptor: &TlsAcceptor,
    plain: S,
    limit: Duration,
) -> Result<Box<dyn Stream>, HandshakeError> {
    // Boxed: the handshake's state (rustls' connection, some kilobytes) is
    // then allocated while it runs, not reserved in every connection task
    // for its whole life (issue 17: 10,000 connections in IDLE).
    let handshake = Box::pin(acceptor.accept(plain));
    match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(secured)) => Ok(Box::new(secured)),
        Ok(Err(err)) => Err(HandshakeError::Failed(err)),
        Err(_) => Err(HandshakeError::Timeout),
    }
}

/// STARTTLS: replaces a session's plain stream with TLS over it. On an
/// error the session has no usable stream left and must end.
pub async fn start_tls(
    stream: &mut Box<dyn Stream>,
    acceptor: &TlsAcceptor,
    limit: Duration,
) -> Result<(), HandshakeError> {
    let plain = std::mem::replace(stream, closed());
    *stream = accept_tls(acceptor, plain, limit).await?;
    Ok(())
}

/// A stream that reads nothing and writes nowhere: what a session holds
/// while its own stream is in the handshake.
fn closed() -> Box<dyn Stream> {
    Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    struct Server {
        acceptor: TlsAcceptor,
        roots: rustls::RootCertStore,
        _dir: tempfile::TempDir,
    }

    /// A server with the self-signed certificate a first start makes.
    fn server() -> Server {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let tls = crate::tls::server_config(&config).unwrap_or_else(|e| panic!("tls: {e}"));
        let (cert, _) = crate::tls::paths(&config);
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&cert).unwrap_or_else(|e| panic!("{e}")) {
            let cert = cert.unwrap_or_else(|e| panic!("{e}"));
            roots.add(cert).unwrap_or_else(|e| panic!("{e}"));
        }
        Server {
            acceptor: TlsAcceptor::from(tls),
            roots,
            _dir: dir,
        }
    }

    async fn client_handshake(
        roots: rustls::RootCertStore,
        stream: DuplexStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<DuplexStream>> {
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}"));
        connector.connect(name, stream).await
    }

    #[tokio::test]
    async fn start_tls_swaps_the_stream_for_tls_over_it() {
        let server = server();
        let (client, plain) = tokio::io::duplex(64 * 1024);
        let mut stream: Box<dyn Stream> = Box::new(plain);
        let client = tokio::spawn(async move {
            let mut secured = client_handshake(server.roots, client).await?;
            secured.write_all(b"a1 NOOP\r\n").await?;
            secured.flush().await?;
            let mut answer = [0u8; 4];
            secured.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        });
        let upgraded = start_tls(&mut stream, &server.acceptor, Duration::from_secs(10)).await;
        assert!(upgraded.is_ok(), "{upgraded:?}");
        let mut line = [0u8; 9];
        let read = stream.read_exact(&mut line).await;
        assert!(read.is_ok());
        assert_eq!(&line, b"a1 NOOP\r\n");
        let written = stream.write_all(b"* OK").await;
        assert!(written.is_ok());
        let _ = stream.flush().await;
        let answer = client.await.map_err(|e| e.to_string());
        assert!(matches!(answer, Ok(Ok(bytes)) if &bytes == b"* OK"));
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let server = server();
        let (_client, plain) = tokio::io::duplex(1024);
        let result = accept_tls(&server.acceptor, plain, Duration::from_millis(50)).await;
        assert!(matches!(result, Err(HandshakeError::Timeout)));
    }

    #[tokio::test]
    async fn a_client_speaking_clear_text_fails_the_handshake() {
        let server = server();
        let (mut client, plain) = tokio::io::duplex(1024);
        let sent = client.write_all(b"a1 LOGIN alice secret\r\n").await;
        assert!(sent.is_ok());
        let result = accept_tls(&server.acceptor, plain, Duration::from_secs(10)).await;
        assert!(matches!(result, Err(HandshakeError::Failed(_))));
    }
}
