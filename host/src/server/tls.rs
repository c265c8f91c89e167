//! HTTPS for `sark serve` (rustls with ring), as OPA's `--tls-cert-file`,
//! `--tls-private-key-file` and `--tls-ca-cert-file`: the certificate, its key and the CA of
//! client certificates are read again every `server.tls_refresh_ms`, and a change applies to
//! the next connection; a file that is missing, broken or mismatched keeps the last good
//! set (and is logged). With `authentication: tls`, a client certificate chaining to the CA
//! is required in the handshake, and the chain the client sent reaches the handlers as
//! [`PeerCertificates`].

use crate::config::{Authentication, ServerConfig};
use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// The client's certificate chain (leaf first), verified in the handshake.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<[CertificateDer<'static>]>);

/// The server's TLS settings, reloaded when their files change.
pub struct Tls {
    files: Files,
    current: RwLock<Loaded>,
}

/// Where the TLS material is, and what is asked of clients.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    /// The CA of client certificates, when they are required.
    client_ca: Option<PathBuf>,
    tls13_only: bool,
}

struct Loaded {
    acceptor: TlsAcceptor,
    /// The digest of the files' contents it was built from.
    digest: [u8; 32],
}

impl Tls {
    /// The TLS settings `config` names (`None`: plain HTTP), loaded now: a file that cannot
    /// be used fails the start with its name.
    pub fn from_config(config: &ServerConfig) -> Result<Option<Arc<Tls>>> {
        let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_private_key_file) else {
            return Ok(None);
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: match config.authentication {
                Authentication::Tls => config.tls_ca_cert_file.clone(),
                _ => None,
            },
            tls13_only: config.min_tls_version == "1.3",
        };
        let (contents, digest) = files.read()?;
        let acceptor = files.acceptor(&contents)?;
        Ok(Some(Arc::new(Tls {
            files,
            current: RwLock::new(Loaded { acceptor, digest }),
        })))
    }

    /// The acceptor of the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .acceptor
            .clone()
    }

    /// Reads the files again; when their contents changed, the next connections use them.
    /// `Ok(true)` when a new set was taken, an error (the last good set stays) when the new
    /// contents cannot be used.
    pub fn refresh(&self) -> Result<bool> {
        let (contents, digest) = self.files.read()?;
        if digest
            == self
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .digest
        {
            return Ok(false);
        }
        let acceptor = self.files.acceptor(&contents)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Loaded { acceptor, digest };
        Ok(true)
    }

    /// Refreshes every `period` in the background (a blocking thread reads the files).
    pub fn spawn_refresh(self: &Arc<Self>, period: Duration) {
        if period.is_zero() {
            return;
        }
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut failing = false;
            loop {
                tick.tick().await;
                let t = tls.clone();
                match tokio::task::spawn_blocking(move || t.refresh()).await {
                    Ok(Ok(true)) => {
                        failing = false;
                        tracing::info!(cert = %tls.files.cert.display(), "TLS certificate reloaded");
                    }
                    Ok(Ok(false)) => failing = false,
                    Ok(Err(e)) => {
                        // Once per failure, not every period.
                        if !failing {
                            tracing::error!(
                                error = %format!("{e:#}"),
                                "TLS files changed but cannot be used; keeping the last good ones"
                            );
                        }
                        failing = true;
                    }
                    Err(e) => tracing::error!(error = %e, "TLS refresh task failed"),
                }
            }
        });
    }
}

/// The files' contents: certificate chain, key, client CA.
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Files {
    fn read(&self) -> Result<(Contents, [u8; 32])> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).with_context(|| format!("cannot read the TLS {what} {}", p.display()))
        };
        let contents = Contents {
            cert: read(&self.cert, "certificate")?,
            key: read(&self.key, "private key")?,
            client_ca: match &self.client_ca {
                Some(p) => Some(read(p, "CA certificates")?),
                None => None,
            },
        };
        let mut digest = Sha256::new();
        for part in [&contents.cert, &contents.key] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        if let Some(ca) = &contents.client_ca {
            digest.update(ca);
        }
        Ok((contents, digest.finalize().into()))
    }

    fn acceptor(&self, contents: &Contents) -> Result<TlsAcceptor> {
        let certs = certificates(&contents.cert)
            .with_context(|| format!("TLS certificate {}", self.cert.display()))?;
        let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|e| {
            anyhow::anyhow!(
                "TLS private key {}: no usable PEM private key: {e}",
                self.key.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .context("TLS protocol versions")?;
        let builder = match (&self.client_ca, &contents.client_ca) {
            (Some(path), Some(pem)) => {
                let mut roots = rustls::RootCertStore::empty();
                let cas =
                    certificates(pem).with_context(|| format!("TLS CA file {}", path.display()))?;
                for ca in cas {
                    roots.add(ca).with_context(|| {
                        format!("TLS CA file {}: a certificate is not a CA", path.display())
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .with_context(|| format!("TLS CA file {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).with_context(|| {
            format!(
                "TLS certificate {} and key {} do not fit together",
                self.cert.display(),
                self.key.display()
            )
        })?;
        // The server speaks HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Every certificate of a PEM file; an error when there is none.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("no PEM certificate in the file");
    }
    Ok(certs)
}
