//! The rustls server configuration, rebuilt when the CA's revocation lists change so that new
//! handshakes use the lists in force.

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme,
};

use super::identity::PeerIdentity;
use super::revocation::Revocations;
use super::{TlsError, TlsSettings};

/// The server's TLS state: its certificate and key, the CA, the CRLs in force and the
/// configuration built from them. Share it as `Arc<ServerTls>`.
pub struct ServerTls {
    settings: TlsSettings,
    material: Material,
    revocations: Revocations,
    current: ArcSwap<ServerConfig>,
    /// One reload at a time: the poller and an explicit `reload` must not interleave their
    /// "read lists, build config, install both" steps.
    reloading: Mutex<()>,
}

/// What every rebuilt configuration shares: only the CRLs change.
struct Material {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    allow_tls12: bool,
}

impl ServerTls {
    /// Reads the CA, the server's certificate and key, and the CRLs; builds the configuration.
    pub fn load(settings: TlsSettings) -> Result<Arc<Self>, TlsError> {
        let ca = read_certs(&settings.ca_cert)?;
        let [ca] = <[_; 1]>::try_from(ca).map_err(|certs: Vec<_>| TlsError::Pem {
            path: settings.ca_cert.clone(),
            reason: format!("expected one CA certificate, found {}", certs.len()),
        })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).map_err(|e| TlsError::Pem {
            path: settings.ca_cert.clone(),
            reason: e.to_string(),
        })?;
        let chain = read_certs(&settings.server_cert)?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                path: settings.server_cert.clone(),
                reason: "no CERTIFICATE block".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(&settings.server_key)
            .map_err(|e| pem_error(&settings.server_key, e))?;
        let material = Material {
            // The ring provider, named here rather than taken from a process default: exactly
            // one provider is compiled in, and this code does not depend on one being installed.
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            roots: Arc::new(roots),
            chain,
            key,
            allow_tls12: settings.allow_tls12,
        };
        let revocations = Revocations::load(&settings.crl_dir, &ca)?;
        let config = material.build(revocations.crls())?;
        Ok(Arc::new(ServerTls {
            settings,
            material,
            revocations,
            current: ArcSwap::from_pointee(config),
            reloading: Mutex::new(()),
        }))
    }

    /// The configuration for the next handshake.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// The CRLs in force, for the per-call check ([`super::check_peer`]).
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Reads the CRL directory again and puts the new lists in force, for per-call checks and
    /// new handshakes alike. On an error the lists in force stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let set = self.revocations.read()?;
        let config = self.material.build(set.crls.clone())?;
        // Lists first: a call checked between the two stores sees the newer lists.
        self.revocations.install(set);
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// [`reload`](Self::reload) if the directory's files changed since the lists in force were
    /// read (metadata only); whether it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        if !self.revocations.changed_on_disk()? {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Checks the CRL directory every `crl_reload` interval and reloads on a change; a failed
    /// reload is logged and retried at the next tick. Ends when the last `Arc<ServerTls>` is
    /// dropped (or when aborted).
    pub fn spawn_crl_watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.settings.crl_reload;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tls) = weak.upgrade() else { break };
                let reloaded = tokio::task::spawn_blocking(move || {
                    let result = tls.reload_if_changed();
                    (result, tls.revocations.revoked_count())
                })
                .await;
                match reloaded {
                    Ok((Ok(true), revoked)) => {
                        tracing::info!(revoked, "certificate revocation lists reloaded")
                    }
                    Ok((Ok(false), _)) => {}
                    Ok((Err(error), _)) => tracing::warn!(
                        %error,
                        "certificate revocation lists not reloaded; the previous lists stay in force"
                    ),
                    Err(_) => break,
                }
            }
        })
    }
}

impl Material {
    fn build(
        &self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<ServerConfig, TlsError> {
        let webpki =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .with_crls(crls)
                // One level below the root: the CA signs end entities only.
                .only_check_end_entity_revocation()
                .build()?;
        let versions: &[&rustls::SupportedProtocolVersion] = if self.allow_tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(Arc::new(ClaimsVerifier { webpki }))
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        // A resumed session skips client certificate verification; without resumption every
        // connection meets the CRLs in force (HTTP/2 connections are long-lived, so the cost of
        // full handshakes is small).
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(config)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
            path: path.to_owned(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// WebPKI verification (chain to the CA, validity, clientAuth usage, CRLs), then the identity
/// claims: a certificate the CA signed but that names no usable role is refused during the
/// handshake, so no connection without a [`PeerIdentity`] ever reaches a handler.
#[derive(Debug)]
struct ClaimsVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ClaimsVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        PeerIdentity::from_der(end_entity).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
