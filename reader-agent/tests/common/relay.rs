//! A TCP relay in front of the backend that a test switches off and on: the backend "goes
//! away" and "comes back" at the same address, as for a desk whose network or server fails,
//! without racing other processes for a freed port. Off, it closes every connection it carries
//! and each new one at once (the client sees a reset, i.e. UNAVAILABLE).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Relay {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped at each switch-off: carried connections end.
    cut: watch::Sender<u64>,
}

impl Relay {
    /// A relay to `target`, on.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (accept_up, accept_cut) = (Arc::clone(&up), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Relay { addr, up, cut }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The backend unreachable from now on: open connections closed, new ones refused.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
