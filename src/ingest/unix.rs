//! Unix socket set-up: safe replacement of a stale socket, owner, group and
//! mode, and removal on shutdown.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use super::config::UnixSocketConfig;

/// Errors while creating the socket; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum UnixSocketError {
    /// Something other than a socket is at the path.
    #[error("{0}: exists and is not a socket; refusing to delete it")]
    NotASocket(PathBuf),
    /// Another process accepts connections on the socket.
    #[error("{0}: another process is listening on this socket")]
    InUse(PathBuf),
    /// The named user does not exist.
    #[error("{path}: unix_socket_user {user:?} not found")]
    UnknownUser {
        /// Socket path.
        path: PathBuf,
        /// User name.
        user: String,
    },
    /// The named group does not exist.
    #[error("{path}: unix_socket_group {group:?} not found")]
    UnknownGroup {
        /// Socket path.
        path: PathBuf,
        /// Group name.
        group: String,
    },
    /// Any IO failure.
    #[error("{path}: {what}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}

/// A bound socket that knows how to clean up after itself.
#[derive(Debug)]
pub struct BoundUnix {
    /// The listener.
    pub listener: UnixListener,
    /// Its path.
    pub path: PathBuf,
    /// Inode of the socket we created, so that on shutdown we only remove
    /// *our* socket, not one a newer instance created in the meantime.
    inode: u64,
}

impl BoundUnix {
    /// Removes the socket file if it is still ours.
    pub fn cleanup(path: &Path, inode: u64) {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if meta.file_type().is_socket() && meta.ino() == inode {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The inode of the socket file.
    pub fn inode(&self) -> u64 {
        self.inode
    }
}

/// Sets the socket's owner, group and mode as configured (also used when a
/// reload changes them for a socket that stays bound).
pub fn apply_owner_and_mode(cfg: &UnixSocketConfig) -> Result<(), UnixSocketError> {
    let path = cfg.path.clone();
    let io_err = |what: &'static str| {
        let path = path.clone();
        move |source| UnixSocketError::Io { path, what, source }
    };
    let uid = match &cfg.user {
        None => None,
        Some(name) => Some(
            nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| UnixSocketError::UnknownUser {
                    path: path.clone(),
                    user: name.clone(),
                })?
                .uid,
        ),
    };
    let gid = match &cfg.group {
        None => None,
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| UnixSocketError::UnknownGroup {
                    path: path.clone(),
                    group: name.clone(),
                })?
                .gid,
        ),
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(cfg.mode))
        .map_err(io_err("setting the mode"))?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(&path, uid.map(|u| u.as_raw()), gid.map(|g| g.as_raw()))
            .map_err(io_err("changing owner/group"))?;
    }
    Ok(())
}

/// Binds the socket: replaces a stale socket (nobody listening), refuses to
/// touch anything that is not a socket, then applies owner, group and mode.
pub fn bind(cfg: &UnixSocketConfig) -> Result<BoundUnix, UnixSocketError> {
    let path = cfg.path.clone();
    let io_err = |what: &'static str| {
        let path = path.clone();
        move |source| UnixSocketError::Io { path, what, source }
    };
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(UnixSocketError::InUse(path));
            }
            std::fs::remove_file(&path).map_err(io_err("removing the stale socket"))?;
        }
        Ok(_) => return Err(UnixSocketError::NotASocket(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting the path")(e)),
    }
    let listener = UnixListener::bind(&path).map_err(io_err("binding"))?;
    if let Err(e) = apply_owner_and_mode(cfg) {
        // Do not leave a socket with the wrong owner or mode behind.
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let inode = std::fs::symlink_metadata(&path)
        .map_err(io_err("inspecting the socket"))?
        .ino();
    Ok(BoundUnix {
        listener,
        path,
        inode,
    })
}
