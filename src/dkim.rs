//! DKIM signing of outgoing mail with mail-auth (`[outbound] dkim_key`).
//!
//! Mail is signed as it leaves, not when it is queued: the ticket keeps the
//! message agents saw, and a key rotated while mail waits for a retry is
//! the key that signs it. mail-send's own `dkim` feature would pull in a
//! second crypto provider (aws-lc-rs), so the signature is made here and
//! prepended to the message (DEPENDENCIES.md).

use crate::config::OutboundConfig;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The header fields signed, when present: what a receiver shows and what
/// threads the conversation.
const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
];

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("{path}: cannot read the DKIM key: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a DKIM private key ({problem}); expected PEM with an RSA key (PKCS#1 or PKCS#8) or an Ed25519 key (PKCS#8)"
    )]
    Key { path: PathBuf, problem: String },
}

enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// A signer for one domain (mail-auth's signer owns its key).
enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

pub struct Dkim {
    /// The key as read, to make a signer for each new domain.
    pem: Vec<u8>,
    path: PathBuf,
    selector: String,
    domain: Option<String>,
    signers: Mutex<HashMap<String, Arc<Signer>>>,
}

impl Dkim {
    /// The configured signer, or None when no key is configured.
    pub fn load(config: &OutboundConfig) -> Result<Option<Dkim>, DkimError> {
        let Some(path) = &config.dkim_key else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|source| DkimError::Read {
            path: path.clone(),
            source,
        })?;
        // Read once now, so that a bad key stops the start with its name.
        read_key(path, &pem)?;
        Ok(Some(Dkim::new(
            path,
            pem,
            &config.dkim_selector,
            config.dkim_domain.clone(),
        )))
    }

    fn new(path: &Path, pem: Vec<u8>, selector: &str, domain: Option<String>) -> Dkim {
        Dkim {
            pem,
            path: path.to_path_buf(),
            selector: selector.to_string(),
            domain,
            signers: Mutex::new(HashMap::new()),
        }
    }

    fn signer(&self, domain: &str) -> Result<Arc<Signer>, String> {
        let mut signers = self
            .signers
            .lock()
            .map_err(|_| "DKIM signer lock poisoned")?;
        if let Some(signer) = signers.get(domain) {
            return Ok(signer.clone());
        }
        let key = read_key(&self.path, &self.pem).map_err(|e| e.to_string())?;
        let signer = Arc::new(match key {
            Key::Rsa(key) => Signer::Rsa(
                DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(&self.selector)
                    .headers(SIGNED_HEADERS),
            ),
            Key::Ed25519(key) => Signer::Ed25519(
                DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(&self.selector)
                    .headers(SIGNED_HEADERS),
            ),
        });
        signers.insert(domain.to_string(), signer.clone());
        Ok(signer)
    }

    /// The `DKIM-Signature` field for this message (with its CRLF), signed
    /// for the configured domain or the domain of the message's From.
    pub fn signature(&self, raw: &[u8]) -> Result<Vec<u8>, String> {
        let domain = match &self.domain {
            Some(domain) => domain.clone(),
            None => from_domain(raw).ok_or("the message has no From address to sign for")?,
        };
        let signature = match &*self.signer(&domain)? {
            Signer::Rsa(signer) => signer.sign(raw),
            Signer::Ed25519(signer) => signer.sign(raw),
        }
        .map_err(|err| err.to_string())?;
        Ok(signature.to_header().into_bytes())
    }
}

fn read_key(path: &Path, pem: &[u8]) -> Result<Key, DkimError> {
    let bad = |problem: String| DkimError::Key {
        path: path.to_path_buf(),
        problem,
    };
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad(e.to_string()))?;
    if let PrivateKeyDer::Pkcs8(pkcs8) = &der
        && let Ok(key) = Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der())
    {
        return Ok(Key::Ed25519(key));
    }
    RsaKey::<Sha256>::from_key_der(der)
        .map(Key::Rsa)
        .map_err(|e| bad(e.to_string()))
}

fn from_domain(raw: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse_headers(raw)?;
    let from = message.from()?.first()?.address.as_deref()?;
    crate::domain::address::split(&crate::domain::address::normalize(from))
        .map(|(_, domain)| domain.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_a_key_is_named() {
        let err = read_key(Path::new("dkim.pem"), b"not a key").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("dkim.pem: not a DKIM private key"),
            "{text}"
        );
    }

    #[test]
    fn ed25519_keys_sign_for_the_from_domain() {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap_or_default();
        let pem = pem_of(&pkcs8);
        let key = read_key(Path::new("k.pem"), pem.as_bytes());
        assert!(matches!(key, Ok(Key::Ed25519(_))));
        let dkim = Dkim::new(Path::new("k.pem"), pem.into_bytes(), "pd", None);
        let signature = dkim
            .signature(b"From: Support <support@desk.test>\r\nSubject: hi\r\n\r\nbody\r\n")
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default();
        assert!(signature.starts_with("DKIM-Signature: "), "{signature}");
        assert!(
            signature.contains("d=desk.test") && signature.contains("s=pd"),
            "{signature}"
        );
        assert!(signature.ends_with("\r\n"));
    }

    fn pem_of(der: &[u8]) -> String {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }
}
