//! The files `hop` keeps for its user (the path cache, connect records): written to a fresh
//! temporary file — mode 0600, never through a link, never one that already exists — then
//! renamed into place; read only when they are a regular file of a bounded size, so a FIFO or
//! a device put in their place cannot hang or flood a request.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` as `file`: a temporary file next to it (created with `O_EXCL | O_NOFOLLOW`,
/// mode 0600), renamed over `file`. The parent directory is created 0700 if missing.
/// Returns the written file, still open (its metadata is the new file's identity).
pub fn replace(file: &Path, bytes: &[u8]) -> io::Result<File> {
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = temporary_name(file);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| f)
}

/// `file` with a suffix no other writer picks: the process id and a random number.
fn temporary_name(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(
        ".{}.{:08x}.tmp",
        std::process::id(),
        crate::probe::random_nonce()
    ));
    PathBuf::from(name)
}

/// Reads `file` if it is a regular file of at most `max` octets (never through a link at
/// its last component, never blocking on a FIFO); hands the file back to be closed later.
pub fn read(file: &Path, max: u64) -> io::Result<(Vec<u8>, File)> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than it can be",
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize + 1);
    Read::by_ref(&mut f).take(max + 1).read_to_end(&mut buf)?;
    Ok((buf, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn written_files_are_private_and_replace_links_without_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/cache.json");
        replace(&file, b"{}").unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sub = std::fs::metadata(dir.path().join("sub")).unwrap();
        assert_eq!(sub.permissions().mode() & 0o777, 0o700);
        // A link put where the file goes is replaced, its target left alone.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&victim, &file).unwrap();
        replace(&file, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");
    }

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || tx.send(read(&f, 1024).is_err()).unwrap());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(2)),
            Ok(true),
            "a FIFO is refused at once, not read until a writer comes"
        );
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(read(&big, 1024).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert!(read(&link, 4096).is_err(), "not through a link");
        assert_eq!(read(&big, 4096).unwrap().0.len(), 2048);
    }
}
