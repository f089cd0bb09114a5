//! systemd socket activation: listening sockets handed over by the service
//! manager (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), read with the
//! `listenfd` crate.
//!
//! A handed-over socket replaces the listener the config would bind:
//!
//! * a Unix socket is matched to a receiver by its path, or by its
//!   `FileDescriptorName=` equal to the receiver's name (`unix`,
//!   `json_unix`, `capnp_unix`);
//! * a TCP socket is matched by its address, or by the name `http`, `rpc`
//!   or the receiver's name (`tcp`, `json_tcp`, `capnp_tcp`).
//!
//! The service manager owns handed-over Unix sockets: the proxy does not
//! change their mode or owner (`SocketMode=`, `SocketUser=`,
//! `SocketGroup=` do) and never unlinks them. A handed-over socket that
//! matches nothing is an error, so a unit and a config that disagree fail
//! at start-up instead of leaving a socket nobody serves.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use listenfd::ListenFd;

/// One handed-over listening socket.
#[derive(Debug)]
pub enum Socket {
    /// A Unix stream socket.
    Unix(UnixListener),
    /// A TCP socket.
    Tcp(TcpListener),
}

impl Socket {
    fn describe(&self) -> String {
        match self {
            Socket::Unix(l) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_owned))
            {
                Some(p) => format!("unix:{}", p.display()),
                None => "unix (unnamed)".to_owned(),
            },
            Socket::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |a| format!("tcp://{a}")),
        }
    }
}

/// The sockets handed over at start-up, each with its optional name.
#[derive(Debug, Default)]
pub struct Activated {
    sockets: Vec<(Option<String>, Option<Socket>)>,
}

impl Activated {
    /// No handed-over sockets.
    pub fn none() -> Self {
        Activated::default()
    }

    /// Takes the sockets passed by the service manager, if `LISTEN_PID` is
    /// this process. `listenfd` removes `LISTEN_FDS` and `LISTEN_PID` from
    /// the environment (so children do not inherit them): call this before
    /// any other thread starts, i.e. before building the runtime.
    pub fn from_env() -> Result<Self, String> {
        let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
            .map(|v| v.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        let mut fds = ListenFd::from_env();
        let mut sockets = Vec::with_capacity(fds.len());
        for i in 0..fds.len() {
            // Try a Unix stream socket first, then TCP; listenfd checks the
            // socket's family and type before taking it.
            let socket = match fds.take_unix_listener(i) {
                Ok(Some(l)) => Socket::Unix(l),
                _ => match fds.take_tcp_listener(i) {
                    Ok(Some(l)) => Socket::Tcp(l),
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(format!(
                        "socket activation: fd {} is neither a Unix stream nor a TCP socket: {e}",
                        i + 3
                    ))
                    }
                },
            };
            let name = names
                .get(i)
                .filter(|n| !n.is_empty() && n.as_str() != "unknown")
                .cloned();
            sockets.push((name, Some(socket)));
        }
        Ok(Activated { sockets })
    }

    /// Sockets given directly (for tests and embedding).
    pub fn from_sockets(sockets: Vec<(Option<String>, Socket)>) -> Self {
        Activated {
            sockets: sockets.into_iter().map(|(n, s)| (n, Some(s))).collect(),
        }
    }

    /// Number of sockets handed over.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether nothing was handed over.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Takes the Unix socket named `name` or bound at `path`.
    pub fn take_unix(&mut self, name: &str, path: &Path) -> Option<UnixListener> {
        let want = normalise(path);
        let slot = self.sockets.iter_mut().find(|(n, s)| match s {
            Some(Socket::Unix(l)) => {
                n.as_deref() == Some(name)
                    || l.local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(normalise))
                        .is_some_and(|p| p == want)
            }
            _ => false,
        })?;
        match slot.1.take() {
            Some(Socket::Unix(l)) => Some(l),
            _ => unreachable!("matched a unix socket"),
        }
    }

    /// Takes the TCP socket named `name` or bound at `addr` (an address
    /// with port 0 matches by name only).
    pub fn take_tcp(&mut self, name: &str, addr: SocketAddr) -> Option<TcpListener> {
        let slot = self.sockets.iter_mut().find(|(n, s)| match s {
            Some(Socket::Tcp(l)) => {
                n.as_deref() == Some(name)
                    || (addr.port() != 0 && l.local_addr().is_ok_and(|a| a == addr))
            }
            _ => false,
        })?;
        match slot.1.take() {
            Some(Socket::Tcp(l)) => Some(l),
            _ => unreachable!("matched a tcp socket"),
        }
    }

    /// Fails when a handed-over socket was not taken by any listener.
    pub fn finish(self) -> Result<(), String> {
        let left: Vec<String> = self
            .sockets
            .into_iter()
            .filter_map(|(n, s)| {
                s.map(|s| match n {
                    Some(n) => format!("{} (name {n:?})", s.describe()),
                    None => s.describe(),
                })
            })
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "socket activation: handed-over sockets match no configured listener: {}; \
                 set the receiver's path or address in the config to the socket's, or name it \
                 with FileDescriptorName= (unix, tcp, http, rpc, json_unix, ...)",
                left.join(", ")
            ))
        }
    }
}

/// `/run/x/../x/s.sock` and `/run/x/s.sock` are the same socket.
fn normalise(p: &Path) -> PathBuf {
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(file)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| d.join(file))
        .unwrap_or_else(|_| p.to_owned()),
        _ => p.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_path_name_and_address_and_reports_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.sock");
        let b = dir.path().join("b.sock");
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_addr = tcp.local_addr().unwrap();
        let extra = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut act = Activated::from_sockets(vec![
            (None, Socket::Unix(UnixListener::bind(&a).unwrap())),
            (
                Some("json_unix".to_owned()),
                Socket::Unix(UnixListener::bind(&b).unwrap()),
            ),
            (None, Socket::Tcp(tcp)),
            (Some("http".to_owned()), Socket::Tcp(extra)),
        ]);
        assert_eq!(act.len(), 4);
        // By path, through a path that only normalises to it.
        let via = dir.path().join(".").join("a.sock");
        assert!(act.take_unix("unix", &via).is_some());
        assert!(act.take_unix("unix", &a).is_none(), "taken only once");
        // By name, whatever the path.
        assert!(act
            .take_unix("json_unix", Path::new("/elsewhere.sock"))
            .is_some());
        // By address; port 0 never matches by address.
        assert!(act
            .take_tcp("rpc", "127.0.0.1:0".parse().unwrap())
            .is_none());
        assert!(act.take_tcp("tcp", tcp_addr).is_some());
        let err = Activated::from_sockets(vec![]).finish();
        assert!(err.is_ok());
        let err = act.finish().unwrap_err();
        assert!(err.contains("name \"http\""), "{err}");
    }
}
