//! A TCP proxy that can hold new connections: put in front of a real peer (the registry), it
//! lets a test stop tagline at a known point of a scan, deterministically, instead of sleeping.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[derive(Debug, Default)]
struct Shared {
    held: AtomicBool,
    arrivals: AtomicUsize,
}

/// Forwards every connection to `upstream`; while held, a new connection is accepted and
/// counted but not forwarded until [`HoldingProxy::release`].
#[derive(Debug)]
pub struct HoldingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl HoldingProxy {
    /// Starts the proxy on a free loopback port (its threads end with the test process).
    pub fn start(upstream: SocketAddr) -> HoldingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    let held = s.held.load(Ordering::SeqCst);
                    s.arrivals.fetch_add(1, Ordering::SeqCst);
                    while held && s.held.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(10));
                    }
                    let _ = forward(client, upstream);
                });
            }
        });
        HoldingProxy { addr, shared }
    }

    /// `127.0.0.1:<port>`, to use in place of the upstream's host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Holds connections accepted from now on.
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
    }

    /// Forwards held and new connections.
    pub fn release(&self) {
        self.shared.held.store(false, Ordering::SeqCst);
    }

    /// How many connections were accepted so far.
    pub fn arrivals(&self) -> usize {
        self.shared.arrivals.load(Ordering::SeqCst)
    }
}

fn forward(client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let up = thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = io::copy(&mut s_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}
