//! TLS for grabbing: a rustls client that accepts any certificate (we are observing,
//! not trusting), with SNI when a name is known and ALPN, and no session resumption so
//! every handshake shows the full certificate chain.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    // Signatures are not checked either: an observer gains nothing from it, and it would
    // halve handshake throughput on RSA servers.
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client configurations, built once per scan.
#[derive(Debug, Clone)]
pub struct TlsClients {
    /// Offers h2 and http/1.1: what the server picks is a fact worth recording.
    pub observe: Arc<ClientConfig>,
    /// http/1.1 only, for the HTTP request over TLS.
    pub http1: Arc<ClientConfig>,
}

fn config(alpn: &[&[u8]]) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

impl TlsClients {
    pub fn new() -> Result<Self, rustls::Error> {
        Ok(Self {
            observe: Arc::new(config(&[b"h2", b"http/1.1"])?),
            http1: Arc::new(config(&[b"http/1.1"])?),
        })
    }
}

/// SNI carries a host name only; for a bare address rustls sends none.
pub fn server_name(host: Option<&str>, ip: IpAddr) -> ServerName<'static> {
    host.and_then(|h| ServerName::try_from(h.to_string()).ok())
        .unwrap_or(ServerName::IpAddress(ip.into()))
}

/// Whether a handshake error means "this is TLS, but not one rustls will speak"
/// (old versions or ciphers), so the legacy path should fetch the certificate.
pub fn is_incompatible(e: &std::io::Error) -> bool {
    let text = e.to_string();
    text.contains("PeerIncompatible")
        || text.contains("ProtocolVersion")
        || text.contains("HandshakeFailure")
        || text.contains("InsufficientSecurity")
        || text.contains("peer is incompatible")
        || text.contains("received fatal alert")
}
