//! Where `shm://` names live: the private runtime directory and the rendezvous socket and
//! lock file paths of a name.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The directory holding rendezvous sockets: `$SHMSOCK_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/shmsock`, else `/tmp/shmsock-$UID`. Created 0700 if missing; refused
/// if it is not a directory owned by us with no group/other access.
pub fn runtime_dir() -> io::Result<PathBuf> {
    let dir = runtime_dir_path();
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("creating {}: {e}", dir.display()),
            ))
        }
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    let uid = rustix::process::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "rendezvous directory {} is not a private directory of uid {uid} (mode {:o}, owner {}); remove it or set SHMSOCK_RUNTIME_DIR",
                dir.display(),
                meta.permissions().mode() & 0o7777,
                meta.uid()
            ),
        ));
    }
    Ok(dir)
}

/// Where [`runtime_dir`] is, without creating or checking it.
pub(crate) fn runtime_dir_path() -> PathBuf {
    if let Some(d) = std::env::var_os("SHMSOCK_RUNTIME_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        Path::new(&d).join("shmsock")
    } else {
        PathBuf::from(format!(
            "/tmp/shmsock-{}",
            rustix::process::geteuid().as_raw()
        ))
    }
}

/// The rendezvous socket path of a shm:// name, without creating the directory (names a
/// segment's memfd). `None` if the name would leave the directory.
pub(crate) fn socket_path_of(name: &str) -> Option<PathBuf> {
    (!name.is_empty() && !name.contains('/') && !name.starts_with('.'))
        .then(|| runtime_dir_path().join(format!("{name}.sock")))
}

/// Socket and lock paths for a shm:// name.
pub(crate) fn paths(name: &str) -> io::Result<(PathBuf, PathBuf)> {
    let dir = runtime_dir()?;
    Ok((
        dir.join(format!("{name}.sock")),
        dir.join(format!("{name}.lock")),
    ))
}
