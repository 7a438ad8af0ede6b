//! The link between a runtime and one of its node agents: TCP, encrypted
//! with TLS (rustls), and authenticated both ways.
//!
//! The runtime makes a self-signed certificate when it starts its
//! cluster, and tells each agent the certificate's SHA-256 (its *pin*)
//! out of band, with the agent's command line: the agent dials back and
//! accepts only that certificate, so it knows it reached its runtime.
//! Inside TLS, both sides run the authkey challenge of
//! `multiprocessing.connection` (`ipc/listener.rs`), each way, keyed by a
//! one-time token that was on the agent's command line too: so the
//! runtime knows it is the agent it asked for. Nothing secret is on a
//! command line but that token, which is spent once the agent is in;
//! authkeys travel only inside the link.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use wmp_core::{AuthKey, ConnectionError};

use crate::backend::remote::protocol::RawMessages;
use crate::ipc::listener::{HandshakeChannel, authenticate_as_client, authenticate_as_server};

/// The name in the runtime's certificate (the agent checks the pin, not
/// the name).
const SERVER_NAME: &str = "wmp-cluster";

/// The link as the runtime holds it.
pub(crate) type ServerLink = tokio_rustls::server::TlsStream<TcpStream>;
/// The link as an agent holds it.
pub(crate) type AgentLink = tokio_rustls::client::TlsStream<TcpStream>;

/// Why a link could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("cannot make the cluster's TLS setup: {0}")]
    Setup(String),
    #[error("cannot reach {address}: {source}")]
    Unreachable { address: String, source: std::io::Error },
    #[error("TLS failed: {0}")]
    Tls(std::io::Error),
    #[error("the other side did not prove it holds the token: {0}")]
    Authentication(ConnectionError),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The runtime's side: its certificate and key, and their pin.
pub(crate) struct ServerIdentity {
    acceptor: tokio_rustls::TlsAcceptor,
    pin: String,
}

impl ServerIdentity {
    /// A fresh self-signed certificate.
    pub(crate) fn generate() -> Result<ServerIdentity, LinkError> {
        let setup = |e: &dyn std::fmt::Display| LinkError::Setup(e.to_string());
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()]).map_err(|e| setup(&e))?;
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let pin = hex(&Sha256::digest(&cert));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| setup(&e))?;
        Ok(ServerIdentity { acceptor: Arc::new(config).into(), pin })
    }

    /// The SHA-256 of the certificate, in hex: what an agent is told.
    pub(crate) fn pin(&self) -> &str {
        &self.pin
    }

    /// Takes an agent that dialed in: TLS, then the agent names its token
    /// (by a public id, which `token_of` looks up: the token is spent),
    /// then the challenge both ways keyed by the token. Returns the link
    /// and the token's id.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        token_of: impl FnOnce(&str) -> Option<AuthKey>,
    ) -> Result<(ServerLink, String), LinkError> {
        tcp.set_nodelay(true).map_err(LinkError::Tls)?;
        let mut link = self.acceptor.accept(tcp).await.map_err(LinkError::Tls)?;
        let mut messages = RawMessages(&mut link);
        let id = messages.recv().await.map_err(LinkError::Authentication)?;
        let id = String::from_utf8_lossy(&id).into_owned();
        let unknown = || ConnectionError::Authentication(format!("no agent was asked for with the token {id:?}"));
        let token = token_of(&id).ok_or_else(|| LinkError::Authentication(unknown()))?;
        authenticate_as_server(&mut messages, &token).await.map_err(LinkError::Authentication)?;
        Ok((link, id))
    }
}

/// An agent's side: dials `address`, accepts only the certificate whose
/// SHA-256 is `pin`, names its token by `token_id`, and runs the
/// challenge both ways keyed by `token`.
pub(crate) async fn dial(address: &str, pin: &str, token_id: &str, token: &AuthKey) -> Result<AgentLink, LinkError> {
    let unreachable = |source| LinkError::Unreachable { address: address.to_owned(), source };
    let tcp = TcpStream::connect(address).await.map_err(unreachable)?;
    tcp.set_nodelay(true).map_err(unreachable)?;
    let verifier = Arc::new(PinnedCertificate { pin: pin.to_ascii_lowercase(), provider: provider() });
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| LinkError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
    let mut link = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(LinkError::Tls)?;
    let mut messages = RawMessages(&mut link);
    messages.send(token_id.as_bytes().to_vec()).await.map_err(LinkError::Authentication)?;
    authenticate_as_client(&mut messages, token).await.map_err(LinkError::Authentication)?;
    Ok(link)
}

/// Accepts exactly one certificate, by its SHA-256; the handshake's
/// signatures are still checked against it.
#[derive(Debug)]
struct PinnedCertificate {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if hex(&Sha256::digest(end_entity)) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the runtime's certificate is not the pinned one".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listener() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        (listener, address)
    }

    #[tokio::test]
    async fn an_agent_with_the_pin_and_the_token_gets_in() {
        let (tcp, address) = listener().await;
        let server = ServerIdentity::generate().unwrap();
        let token = AuthKey::new(b"one-time token".to_vec());
        let pin = server.pin().to_owned();
        let agent = tokio::spawn({
            let token = token.clone();
            async move { dial(&address, &pin, "a1", &token).await.map(|_| ()) }
        });
        let (stream, _) = tcp.accept().await.unwrap();
        let (_, id) = server.accept(stream, |id| (id == "a1").then(|| token.clone())).await.expect("the runtime accepts the agent");
        assert_eq!(id, "a1");
        agent.await.unwrap().expect("the agent accepts the runtime");
    }

    #[tokio::test]
    async fn a_wrong_pin_or_a_wrong_token_keeps_the_agent_out() {
        let (tcp, address) = listener().await;
        let server = ServerIdentity::generate().unwrap();
        let token = AuthKey::new(b"one-time token".to_vec());
        let wrong_pin = tokio::spawn({
            let (address, token) = (address.clone(), token.clone());
            async move { dial(&address, &"0".repeat(64), "a1", &token).await.map(|_| ()) }
        });
        let (stream, _) = tcp.accept().await.unwrap();
        assert!(server.accept(stream, |_| Some(token.clone())).await.is_err());
        let err = wrong_pin.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("not the pinned one"), "{err}");

        let pin = server.pin().to_owned();
        let guess = AuthKey::new(b"guess".to_vec());
        let wrong_token = tokio::spawn({
            let (address, pin) = (address.clone(), pin.clone());
            async move { dial(&address, &pin, "a1", &guess).await.map(|_| ()) }
        });
        let (stream, _) = tcp.accept().await.unwrap();
        let err = server.accept(stream, |_| Some(token.clone())).await.err().unwrap();
        assert!(matches!(err, LinkError::Authentication(_)), "{err}");
        assert!(wrong_token.await.unwrap().is_err());

        // A token id the runtime never gave out.
        let unknown = tokio::spawn(async move { dial(&address, &pin, "a2", &token).await.map(|_| ()) });
        let (stream, _) = tcp.accept().await.unwrap();
        let err = server.accept(stream, |_| None).await.err().unwrap();
        assert!(err.to_string().contains("no agent was asked for"), "{err}");
        assert!(unknown.await.unwrap().is_err());
    }
}
