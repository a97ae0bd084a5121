//! A TCP proxy for tests that cut connections the way networks do.
#![allow(
    dead_code,
    reason = "each test binary that includes this uses a part of it"
)]

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream`. [`Proxy::cut`] ends every connection made so far on the
/// client's side; the server's side is either held open and silent (half-open: the server
/// learns nothing, as after a NAT rebinding or a dead Wi-Fi link) or closed too (the server
/// sees the connection drop without a WebSocket close, as when a process is killed).
pub struct Proxy {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<(u32, bool)>,
    /// Upstream sockets of connections cut with `hold`.
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel((0u32, false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (cuts, kept) = (cut.clone(), held.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let mut cut = cuts.subscribe();
                let kept = kept.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {
                            if cut.borrow().1 {
                                kept.lock().unwrap().push(server);
                            }
                        }
                    }
                });
            }
        });
        Proxy { addr, cut, held }
    }

    /// Ends every connection made so far on the client's side; `hold`: keep the server's side
    /// open and silent, else close it too. Later connections pass as before.
    pub fn cut(&self, hold: bool) {
        self.cut.send_modify(|(n, h)| {
            *n += 1;
            *h = hold;
        });
    }

    /// Server-side sockets held open by cuts so far.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}
