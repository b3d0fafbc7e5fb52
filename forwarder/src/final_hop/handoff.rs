//! Hand-off mode, hopd side: the control socket where services register, and passing accepted
//! connections to them with `SCM_RIGHTS`. The protocol is described in [`crate::service`].

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::socket::{
    self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, sockopt,
};
use tokio::io::unix::AsyncFd;

use crate::service::{MAX_MESSAGE, Metadata, PROTOCOL_VERSION, Register, RegisterReply};

use super::config::Mode;

/// How long a hand-off may wait for room in a service's control socket.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One registered service process.
struct Registrant {
    id: u64,
    fd: AsyncFd<OwnedFd>,
}

/// Registered service processes by name. Several processes may register one name; connections
/// go round-robin.
#[derive(Default)]
pub struct Registry {
    by_name: Mutex<HashMap<String, Vec<Arc<Registrant>>>>,
    next_id: AtomicU64,
    rr: AtomicUsize,
}

/// Why a hand-off did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("no process is registered for `{0}`")]
    NotRegistered(String),
    #[error("every registered process for `{service}` failed: {last}")]
    Failed { service: String, last: String },
}

impl Registry {
    pub fn registered(&self, name: &str) -> usize {
        self.lock().get(name).map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<Registrant>>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.by_name.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, name: &str, r: Arc<Registrant>) {
        self.lock().entry(name.to_owned()).or_default().push(r);
    }

    /// Forgets every process registered for `name` (a reload removed the service): no
    /// connection goes to them any more.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn remove(&self, name: &str, id: u64) {
        let mut m = self.lock();
        if let Some(v) = m.get_mut(name) {
            v.retain(|r| r.id != id);
            if v.is_empty() {
                m.remove(name);
            }
        }
    }

    /// Passes `conn` to a process registered for `name`. On success hopd's copy is closed
    /// (dropped) when this returns, so hopd is out of the byte path.
    pub async fn hand_off(
        &self,
        name: &str,
        conn: OwnedFd,
        meta: &Metadata,
    ) -> Result<(), (OwnedFd, HandoffError)> {
        let msg = match serde_json::to_vec(meta) {
            Ok(m) => m,
            Err(e) => {
                return Err((
                    conn,
                    HandoffError::Failed {
                        service: name.to_owned(),
                        last: e.to_string(),
                    },
                ));
            }
        };
        let candidates: Vec<Arc<Registrant>> = self.lock().get(name).cloned().unwrap_or_default();
        if candidates.is_empty() {
            return Err((conn, HandoffError::NotRegistered(name.to_owned())));
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..candidates.len() {
            let r = &candidates[(start + i) % candidates.len()];
            match tokio::time::timeout(SEND_TIMEOUT, send_fd(r, &msg, &conn)).await {
                Ok(Ok(())) => return Ok(()),
                // Its queue is full: the process is alive but not calling accept. Keep the
                // registration (it may catch up) and try the next one.
                Err(_) => {
                    tracing::warn!(
                        service = name,
                        "registered process is not accepting connections (queue full for {SEND_TIMEOUT:?})"
                    );
                    last = format!(
                        "the registered process is not accepting connections (its queue stayed full for {SEND_TIMEOUT:?})"
                    );
                }
                Ok(Err(e)) => {
                    tracing::warn!(service = name, error = %e, "hand-off to a registered process failed; unregistering it");
                    self.remove(name, r.id);
                    last = e.to_string();
                }
            }
        }
        Err((
            conn,
            HandoffError::Failed {
                service: name.to_owned(),
                last,
            },
        ))
    }
}

async fn send_fd(r: &Registrant, msg: &[u8], conn: &OwnedFd) -> std::io::Result<()> {
    loop {
        let mut guard = r.fd.writable().await?;
        let res = guard.try_io(|fd| {
            let fds = [conn.as_raw_fd()];
            socket::sendmsg::<()>(
                fd.as_raw_fd(),
                &[IoSlice::new(msg)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(std::io::Error::from)
        });
        match res {
            Ok(r) => return r.map(|_| ()),
            Err(_would_block) => continue,
        }
    }
}

/// Binds the control socket (SOCK_SEQPACKET). A stale socket file from a previous run is
/// replaced; the parent directory is created.
pub fn bind_control(path: &Path) -> std::io::Result<AsyncFd<OwnedFd>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    // Anyone may connect; who may register is decided by SO_PEERCRED per service.
    chmod_socket_file(path, 0o666)?;
    socket::listen(
        &fd,
        socket::Backlog::new(64).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    async_fd(fd)
}

/// Sets the mode of the socket file at `path` without following a link: the file is opened
/// `O_PATH | O_NOFOLLOW`, checked to be a socket, and changed through its descriptor
/// (`/proc/self/fd`), so a link swapped in after `bind` changes nothing elsewhere.
fn chmod_socket_file(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)?;
    if !f.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::other(format!(
            "{} is not the socket hopd bound",
            path.display()
        )));
    }
    let by_fd = format!("/proc/self/fd/{}", f.as_raw_fd());
    std::fs::set_permissions(by_fd, std::fs::Permissions::from_mode(mode))
}

/// Registers an owned descriptor with tokio's reactor.
fn async_fd(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is open until dropped and always returns the same descriptor; the
    // AsyncFd owns it for its whole life.
    unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// Control connections open at once: registered services (each holds its connection) and
/// handshakes in progress. More are closed as they are accepted.
pub const MAX_CONTROL_CONNECTIONS: usize = 256;

/// Accepts registrations until the task is dropped.
pub async fn serve_control(
    listener: AsyncFd<OwnedFd>,
    services: Arc<super::ServiceTable>,
    registry: Arc<Registry>,
) {
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNECTIONS));
    loop {
        let accepted = async {
            loop {
                let mut g = listener.readable().await?;
                match g.try_io(|fd| {
                    socket::accept4(
                        fd.as_raw_fd(),
                        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                    )
                    .map_err(std::io::Error::from)
                }) {
                    Ok(r) => return r,
                    Err(_would_block) => continue,
                }
            }
        }
        .await;
        let raw = match accepted {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        // Bounded: a local process that opens connections and says nothing holds a buffer
        // and a task for up to 5 s each; past the cap the connection is closed at once.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!("control socket: too many connections, one closed");
            continue;
        };
        let services = services.clone();
        let registry = registry.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = registration(fd, &services, &registry).await {
                tracing::info!(error = %e, "registration ended");
            }
        });
    }
}

async fn recv_msg(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut g = fd.readable().await?;
        match g.try_io(|fd| {
            socket::recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(std::io::Error::from)
        }) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

async fn registration(
    fd: OwnedFd,
    services: &super::ServiceTable,
    registry: &Registry,
) -> std::io::Result<()> {
    let cred = socket::getsockopt(&fd, sockopt::PeerCredentials)?;
    let fd = async_fd(fd)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), recv_msg(&fd, &mut buf))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no register message within 5 s",
            )
        })??;
    // The services as they are when the request arrives (a reload may have come since).
    let services = services.current();
    let verdict = match serde_json::from_slice::<Register>(&buf[..n]) {
        Err(e) => Err(format!("malformed register message: {e}")),
        Ok(req) if req.version != PROTOCOL_VERSION => Err(format!(
            "protocol version {} not supported (hopd speaks {PROTOCOL_VERSION})",
            req.version
        )),
        Ok(req) => match services.get(&req.register) {
            None => Err(format!(
                "no service `{}` in hopd's configuration",
                req.register
            )),
            Some(s) if s.cfg.mode != Mode::Handoff => Err(format!(
                "service `{}` is configured in {} mode, not handoff",
                req.register,
                s.cfg.mode.as_str()
            )),
            Some(s) => {
                let own = nix::unistd::getuid().as_raw();
                let allowed = s.cfg.allowed_uids.clone().unwrap_or_else(|| vec![own]);
                if allowed.contains(&cred.uid()) {
                    Ok(req.register)
                } else {
                    // Which uids may is hopd's configuration, not the asker's business.
                    Err(format!(
                        "uid {} (pid {}) may not register `{}`",
                        cred.uid(),
                        cred.pid(),
                        req.register
                    ))
                }
            }
        },
    };
    let reply = match &verdict {
        Ok(_) => RegisterReply {
            ok: true,
            error: None,
        },
        Err(why) => RegisterReply {
            ok: false,
            error: Some(why.clone()),
        },
    };
    let bytes = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    socket::send(
        fd.as_raw_fd(),
        &bytes,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )?;
    let name = match verdict {
        Ok(n) => n,
        Err(why) => {
            tracing::warn!(uid = cred.uid(), pid = cred.pid(), %why, "registration refused");
            return Ok(());
        }
    };
    let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
    let r = Arc::new(Registrant { id, fd });
    registry.add(&name, r.clone());
    tracing::info!(service = %name, uid = cred.uid(), pid = cred.pid(), "service registered");
    // The service sends nothing after registering; readability means it closed (or broke the
    // protocol, which we treat the same way).
    let _ = recv_msg(&r.fd, &mut buf).await;
    registry.remove(&name, id);
    tracing::info!(service = %name, pid = cred.pid(), "service unregistered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Until 2026-12-05 the mode was set by path after `bind`: a link put there in between
    /// made hopd chmod its target 0666.
    #[test]
    fn the_socket_mode_is_never_set_through_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"x").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("control.sock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(chmod_socket_file(&link, 0o666).is_err());
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Not a socket: refused too.
        assert!(chmod_socket_file(&victim, 0o666).is_err());
        // The real socket gets its mode.
        let sock = dir.path().join("real.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        chmod_socket_file(&sock, 0o666).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
    }
}
