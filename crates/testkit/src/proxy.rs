//! A TCP forwarder standing in for a Service's virtual IP (kube-proxy): it listens on one
//! address and forwards every connection to the backend it currently points at. Pointing
//! it elsewhere is what the operator's relabelling does to `<cluster>-rw`; pointing it at
//! nothing also cuts the connections in flight, which is how tests partition a primary
//! from its replicas.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::sync::watch;

/// A running forwarder.
#[derive(Debug)]
pub struct Proxy {
    address: SocketAddr,
    target: Arc<Mutex<watch::Sender<Option<SocketAddr>>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `address` (loopback), forwarding nowhere yet.
    pub fn start(address: SocketAddr) -> anyhow::Result<Self> {
        let listener =
            std::net::TcpListener::bind(address).with_context(|| format!("failed to bind the proxy to {address}"))?;
        listener.set_nonblocking(true)?;
        let (sender, receiver) = watch::channel(None);
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("proxy".into()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let accepted = tokio::select! {
                        accepted = listener.accept() => accepted,
                        _ = &mut stop => return,
                    };
                    let Ok((mut inbound, _)) = accepted else { continue };
                    let mut target = receiver.clone();
                    let Some(backend) = *target.borrow_and_update() else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await else {
                            return;
                        };
                        // Copy until either side closes or the proxy is pointed elsewhere.
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = target.changed() => {}
                        }
                    });
                }
            });
        })?;
        Ok(Self {
            address,
            target: Arc::new(Mutex::new(sender)),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Forwards new connections to `backend` (None: refuse them); connections to the previous
    /// backend are cut.
    pub fn point_to(&self, backend: Option<SocketAddr>) {
        if let Ok(sender) = self.target.lock() {
            sender.send_replace(backend);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
