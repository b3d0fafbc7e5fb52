//! Entering a node: a freshly forked child joins the node's namespaces before `exec`.
//!
//! `setns(CLONE_NEWUSER)` demands a single-threaded caller, which a child between `fork` and
//! `exec` always is, whatever the parent (a multi-threaded test harness) looks like. The
//! namespace files are opened in the parent so that the child does nothing but system calls
//! (no allocation after `fork`).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Namespace kinds joined, in order. The user namespace comes first: it grants the
/// capabilities needed to join the others.
const KINDS: [(&str, libc::c_int); 4] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("net", libc::CLONE_NEWNET),
    ("uts", libc::CLONE_NEWUTS),
];

/// Make `cmd` run inside the namespaces of `holder` (a node's holder process).
///
/// `join_user` is false when the caller is already inside the testbed's user namespace (the
/// supervisor): joining one's own user namespace is EINVAL. The child also gets
/// `PR_SET_PDEATHSIG(SIGKILL)`, so it cannot outlive the thread that spawned it.
pub fn enter(cmd: &mut Command, holder: u32, join_user: bool) -> std::io::Result<()> {
    enter_in(cmd, holder, join_user, None)
}

/// [`enter`], then change to `cwd` (default: the caller's working directory).
pub fn enter_in(
    cmd: &mut Command,
    holder: u32,
    join_user: bool,
    cwd: Option<&Path>,
) -> std::io::Result<()> {
    let mut fds: Vec<(OwnedFd, libc::c_int)> = Vec::with_capacity(4);
    for (name, flag) in KINDS {
        if flag == libc::CLONE_NEWUSER && !join_user {
            continue;
        }
        let path = format!("/proc/{holder}/ns/{name}");
        let f = File::open(&path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{path}: {e} (is the testbed still up?)"))
        })?;
        fds.push((f.into(), flag));
    }
    // Joining a mount namespace resets the working directory to its root; restore the
    // caller's (the node's mounts are a copy of the host's, so the path exists).
    let cwd = cwd
        .map(Path::to_owned)
        .or_else(|| std::env::current_dir().ok())
        .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
    // SAFETY: the closure only makes async-signal-safe system calls (setns, chdir, prctl,
    // getppid) on values prepared before fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for (fd, flag) in &fds {
                if libc::setns(fd.as_raw_fd(), *flag) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(cwd) = &cwd {
                libc::chdir(cwd.as_ptr());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Is `pid` still alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // The state letter follows the parenthesised command name, which may contain spaces.
            let state = s
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Write a file atomically (write a sibling, rename), so readers never see half of it.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
