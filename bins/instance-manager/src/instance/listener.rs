//! What the instance manager's listeners (8000 and 9187) accept, and for how long: anyone who
//! can reach a pod can open connections to it, and PID 1 must not pay for them. A connection
//! is *pending* until it proves itself (a completed TLS handshake, or its first byte on a
//! plain listener) and gets one of the listener's open slots; pending connections are capped,
//! the oldest dropped first when more arrive, and none stays pending longer than a deadline.
//! Open connections are capped too, and hyper drops one that sends no request headers in time
//! (between keep-alive requests as well). One TLS acceptor serves every connection, rebuilt
//! when the certificate or key file changes on disk.

use std::collections::VecDeque;
use std::future::Future;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};

/// How many connections a listener holds and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections not yet served: in the TLS handshake, before their first byte, or waiting
    /// for an open slot. Past this, the oldest is dropped.
    pub max_pending: usize,
    /// Connections being served at once.
    pub max_open: usize,
    /// The longest a connection may stay pending.
    pub pending_timeout: Duration,
    /// The longest an open connection may take to send a request's headers, the first one or
    /// the next one on a kept-alive connection.
    pub header_timeout: Duration,
}

/// The limits of 8000 and 9187: a handful of clients (kubelet probes, the operator, one or
/// two Prometheus servers) with room to spare.
pub const LIMITS: Limits = Limits {
    max_pending: 256,
    max_open: 32,
    pending_timeout: Duration::from_secs(10),
    header_timeout: Duration::from_secs(10),
};

/// After a failed `accept` (out of descriptors, say), wait before the next one instead of
/// spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A connection as served: plain TCP or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_openssl::SslStream<TcpStream>>),
}

impl Stream {
    /// The client's certificate, when TLS and the client sent one.
    pub fn peer_certificate(&self) -> Option<openssl::x509::X509> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(tls) => tls.ssl().peer_certificate(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Which files an acceptor was built from, as the file system last reported them: the manager
/// replaces certificate files by rename, so a renewal is a new inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(u64, u64, u64, i64, i64)>);

impl Stamp {
    fn of(files: &[&std::path::Path]) -> Option<Self> {
        files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok()?;
                Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
            })
            .collect::<Option<Vec<_>>>()
            .map(Self)
    }
}

/// TLS 1.3 with the cluster's server certificate, one acceptor for all connections, rebuilt
/// when `server.crt` or `server.key` changes.
pub struct Tls {
    certificate: PathBuf,
    key: PathBuf,
    ask_client_certificate: bool,
    current: Mutex<Option<(Stamp, SslAcceptor)>>,
}

impl Tls {
    pub fn new(certificates: &std::path::Path, ask_client_certificate: bool) -> Self {
        Self {
            certificate: certificates.join("server.crt"),
            key: certificates.join("server.key"),
            ask_client_certificate,
            current: Mutex::new(None),
        }
    }

    /// The acceptor for the files on disk now; `None` when there is no certificate yet.
    fn acceptor(&self) -> Option<SslAcceptor> {
        let stamp = Stamp::of(&[&self.certificate, &self.key])?;
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((built_from, acceptor)) = current.as_ref()
            && *built_from == stamp
        {
            return Some(acceptor.clone());
        }
        match self.build() {
            Ok(acceptor) => {
                *current = Some((stamp, acceptor.clone()));
                Some(acceptor)
            }
            Err(e) => {
                tracing::debug!(error = %e, "no usable server certificate yet: connection dropped");
                None
            }
        }
    }

    fn build(&self) -> Result<SslAcceptor, openssl::error::ErrorStack> {
        let mut builder = SslAcceptor::mozilla_modern_v5(SslMethod::tls_server())?;
        builder.set_certificate_chain_file(&self.certificate)?;
        builder.set_private_key_file(&self.key, SslFiletype::PEM)?;
        builder.check_private_key()?;
        if self.ask_client_certificate {
            // Ask for a client certificate without requiring one or chaining it to a CA: the
            // operator's certificate is self-signed and pinned by its key fingerprint per
            // request.
            builder.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        }
        Ok(builder.build())
    }

    async fn handshake(&self, tcp: TcpStream) -> Option<Stream> {
        let peer = tcp.peer_addr().ok();
        let acceptor = self.acceptor()?;
        let ssl = openssl::ssl::Ssl::new(acceptor.context()).ok()?;
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp).ok()?;
        if let Err(e) = Pin::new(&mut stream).accept().await {
            // Scanners and probes that give up are not news.
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            return None;
        }
        Some(Stream::Tls(Box::new(stream)))
    }
}

/// The pending connections of one listener, oldest first, each with the sender that drops it.
#[derive(Default)]
struct Pending {
    next: u64,
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// Accepts connections on `listener` until the runtime ends and hands each one that proved
/// itself to `serve`, within `limits`.
pub async fn run<F, Fut>(listener: TcpListener, limits: Limits, tls: Option<Arc<Tls>>, serve: F)
where
    F: Fn(Stream) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let pending = Arc::new(Mutex::new(Pending::default()));
    let open = Arc::new(Semaphore::new(limits.max_open));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                #[expect(
                    clippy::disallowed_methods,
                    reason = "a pause before retrying accept, not synchronization: nothing to poll for"
                )]
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (evict, evicted) = oneshot::channel();
        let id = {
            let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
            while p.queue.len() >= limits.max_pending {
                // Dropping the sender ends that connection's wait.
                p.queue.pop_front();
            }
            p.next += 1;
            let id = p.next;
            p.queue.push_back((id, evict));
            id
        };
        let (pending, open, tls, serve) = (Arc::clone(&pending), Arc::clone(&open), tls.clone(), serve.clone());
        tokio::spawn(async move {
            let admit = async {
                let stream = match &tls {
                    Some(tls) => tls.handshake(tcp).await?,
                    None => {
                        // A plain connection proves itself with its first byte.
                        let mut byte = [0u8; 1];
                        match tcp.peek(&mut byte).await {
                            Ok(n) if n > 0 => Stream::Plain(tcp),
                            _ => return None,
                        }
                    }
                };
                let slot = open.acquire_owned().await.ok()?;
                Some((stream, slot))
            };
            let admitted = tokio::select! {
                admitted = tokio::time::timeout(limits.pending_timeout, admit) => admitted.ok().flatten(),
                _ = evicted => None,
            };
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .queue
                .retain(|(other, _)| *other != id);
            if let Some((stream, _slot)) = admitted {
                serve(stream).await;
            }
        });
    }
}

/// Serves HTTP/1 on `stream` with `service`, dropping the connection when request headers do
/// not arrive within `limits.header_timeout`.
pub async fn http1<S>(stream: Stream, limits: Limits, service: S)
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<http_body_util::Full<bytes::Bytes>>,
        >,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a fresh CA's certificate and key as `server.crt`/`server.key`, by rename as the
    /// manager does; returns the certificate's DER.
    fn install(dir: &std::path::Path, name: &str) -> Vec<u8> {
        let ca = cnpg_pki::Authority::generate(name, "default", 1_700_000_000, 30).unwrap();
        let pair = ca.pair().unwrap();
        for (file, text) in [
            ("server.crt", pair.certificate.as_str()),
            ("server.key", pair.key.expose()),
        ] {
            let temp = dir.join(format!("{file}.tmp"));
            std::fs::write(&temp, text).unwrap();
            std::fs::rename(&temp, dir.join(file)).unwrap();
        }
        openssl::x509::X509::from_pem(pair.certificate.as_bytes())
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn served(tls: &Tls) -> Vec<u8> {
        tls.acceptor()
            .unwrap()
            .context()
            .certificate()
            .unwrap()
            .to_der()
            .unwrap()
    }

    #[test]
    fn one_acceptor_until_the_certificate_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::new(dir.path(), false);
        assert!(tls.acceptor().is_none(), "no certificate yet: nothing served");
        let first = install(dir.path(), "first");
        let built_from = |tls: &Tls| tls.current.lock().unwrap().as_ref().map(|(stamp, _)| stamp.clone());
        assert_eq!(served(&tls), first);
        let stamp = built_from(&tls);
        assert_eq!(served(&tls), first);
        assert_eq!(built_from(&tls), stamp, "unchanged files: the same acceptor");
        let second = install(dir.path(), "second");
        assert_ne!(first, second);
        assert_eq!(served(&tls), second, "a renewed certificate is served at once");
        assert_ne!(built_from(&tls), stamp);
    }
}
