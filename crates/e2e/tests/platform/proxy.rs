//! A backend's socket as its clients see it through a crash: a TCP proxy in front of the
//! real service that the test can kill (every connection reset, as the kernel closes a
//! SIGKILLed process's sockets, and new ones refused until it restarts), stop (connections
//! accepted and read but nothing answered, as under SIGSTOP) and start again.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the process behind the port is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving.
    Up,
    /// Paused: the kernel still accepts and buffers, nothing answers.
    Stopped,
    /// Killed: open connections reset, new ones refused.
    Down,
}

/// The proxy; dropping it ends it.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    phase: watch::Sender<Phase>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `upstream`, up.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let (phase, watching) = watch::channel(Phase::Up);
        let task = tokio::spawn(serve(listener, addr, upstream, watching));
        Self { addr, phase, task }
    }

    /// Moves the process behind the port to `phase`.
    pub fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Phase::Down);
        self.task.abort();
    }
}

async fn serve(mut listener: TcpListener, addr: SocketAddr, upstream: SocketAddr, mut phase: watch::Receiver<Phase>) {
    let connections = phase.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(connection(client, upstream, connections.clone()));
                }
            }
            killed = async { phase.wait_for(|p| *p == Phase::Down).await.is_ok() } => {
                if !killed {
                    return;
                }
                // Closing the listener refuses connections until the restart binds it again.
                drop(listener);
                if phase.wait_for(|p| *p != Phase::Down).await.is_err() {
                    return;
                }
                listener = TcpListener::bind(addr).await.expect("the port again");
            }
        }
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, mut phase: watch::Receiver<Phase>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    // Closed with a reset, like the socket of a killed process with unread data.
    if client.set_zero_linger().is_err() || client.set_nodelay(true).is_err() || server.set_nodelay(true).is_err() {
        return;
    }
    let ((client_in, client_out), (server_in, server_out)) = (client.into_split(), server.into_split());
    tokio::select! {
        () = forward(client_in, server_out, phase.clone()) => {}
        () = forward(server_in, client_out, phase.clone()) => {}
        _ = phase.wait_for(|p| *p == Phase::Down) => {}
    }
}

/// Copies `from` to `to`, holding what it read while the process is stopped.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut phase: watch::Receiver<Phase>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match phase.wait_for(|p| *p != Phase::Stopped).await {
            Ok(p) if *p == Phase::Up => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
