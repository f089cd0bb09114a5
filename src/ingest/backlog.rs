//! The listen backlog of the sockets we bind.
//!
//! tokio's and std's `bind` listen with a backlog of 1,024 (TCP) or 128
//! (Unix): a burst of a thousand pushers connecting on the same second
//! overflows that queue before the accept loop empties it, and the kernel
//! drops or resets the connections it cannot queue. Calling `listen` again
//! on a listening socket only changes its backlog (Linux), so each socket
//! is bound the usual way and then widened to `limits.listen_backlog`,
//! which the kernel caps at `net.core.somaxconn`.

use std::io;
use std::os::fd::AsFd;

/// Sets the backlog of a bound, listening socket (TCP or Unix).
pub fn widen<S: AsFd>(listener: &S, backlog: u32) -> io::Result<()> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket2::SockRef::from(listener).listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backlog of a listening socket as `ss` reports it (Send-Q).
    fn backlog(filter: &[&str]) -> u32 {
        let out = std::process::Command::new("ss")
            .arg("-Hl")
            .args(filter)
            .output()
            .expect("ss (iproute2) is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no listener: {text:?}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Netid (with -x and -t alike here) State Recv-Q Send-Q ...
        let at = fields.iter().position(|f| *f == "LISTEN").unwrap() + 2;
        fields[at].parse().unwrap()
    }

    fn somaxconn() -> u32 {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn tcp_and_unix_listeners_get_the_configured_backlog() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let sport = format!("sport = :{port}");
        widen(&l, 2000).unwrap();
        assert_eq!(backlog(&["-tn", &sport]), 2000.min(somaxconn()));
        // Still the same working listener.
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        l.accept().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let u = std::os::unix::net::UnixListener::bind(&path).unwrap();
        widen(&u, 3000).unwrap();
        let src = format!("src {}", path.display());
        assert_eq!(backlog(&["-x", &src]), 3000.min(somaxconn()));
        let _c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        u.accept().unwrap();
    }
}
