//! Where `hop get` writes what it receives: stdout, or a file that appears (or is replaced)
//! only once the transfer succeeded. The bytes go to a temporary file beside it, renamed
//! over it at the end, so a failed request (an HTTP error, a timeout, a reset mid-body)
//! leaves no file, or the old one untouched: a script's `hop get -o x || …` never finds an
//! empty or half-written `x`. What cannot be renamed over (`/dev/null`, a FIFO) is opened as
//! it is, at the first byte; so is a file whose directory does not let us create the
//! temporary one.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::ClientError;

/// The destination the command line named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dest {
    Stdout,
    File(PathBuf),
}

/// A destination being written.
pub(super) struct Sink {
    dest: Dest,
    open: Open,
    /// Octets written so far (stdout's cannot be taken back: no retry after them).
    pub(super) written: u64,
}

enum Open {
    Nothing,
    Stdout,
    /// `temp` is renamed over `target` by [`Sink::commit`], removed if the sink is dropped.
    Temp {
        file: BufWriter<File>,
        temp: PathBuf,
        target: PathBuf,
    },
    Direct(BufWriter<File>),
}

fn cannot(what: &str, p: &Path, e: std::io::Error) -> ClientError {
    ClientError::local(format!("cannot {what} {}: {e}", p.display()))
}

impl Sink {
    pub(super) fn new(dest: Dest) -> Sink {
        Sink {
            dest,
            open: Open::Nothing,
            written: 0,
        }
    }

    pub(super) fn to_stdout(&self) -> bool {
        self.dest == Dest::Stdout
    }

    pub(super) fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.ensure_open()?;
        let r = match &mut self.open {
            Open::Stdout => std::io::stdout().lock().write_all(data),
            Open::Temp { file, .. } | Open::Direct(file) => file.write_all(data),
            Open::Nothing => Ok(()),
        };
        r.map_err(|e| ClientError::local(format!("writing the body: {e}")))?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// The transfer succeeded: the file is complete (created empty if no octet came) and
    /// takes its name.
    pub(super) fn commit(mut self) -> Result<(), ClientError> {
        self.ensure_open()?;
        match std::mem::replace(&mut self.open, Open::Nothing) {
            Open::Nothing => Ok(()),
            Open::Stdout => std::io::stdout()
                .flush()
                .map_err(|e| ClientError::local(format!("writing the body: {e}"))),
            Open::Direct(mut file) => file.flush().map_err(|e| cannot("write", &self.path(), e)),
            Open::Temp { file, temp, target } => {
                let done = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .and_then(|()| std::fs::rename(&temp, &target));
                if let Err(e) = done {
                    let _ = std::fs::remove_file(&temp);
                    return Err(cannot("write", &target, e));
                }
                Ok(())
            }
        }
    }

    fn path(&self) -> PathBuf {
        match &self.dest {
            Dest::File(p) => p.clone(),
            Dest::Stdout => PathBuf::from("-"),
        }
    }

    fn ensure_open(&mut self) -> Result<(), ClientError> {
        if !matches!(self.open, Open::Nothing) {
            return Ok(());
        }
        self.open = match &self.dest {
            Dest::Stdout => Open::Stdout,
            Dest::File(p) => open_file(p)?,
        };
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Open::Temp { temp, .. } = &self.open {
            let _ = std::fs::remove_file(temp);
        }
    }
}

fn open_file(p: &Path) -> Result<Open, ClientError> {
    // Through a link to the file it names, as writing to the path would go.
    let target = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let existing = std::fs::metadata(&target).ok();
    if existing.as_ref().is_some_and(|m| !m.is_file()) {
        // /dev/null, a FIFO, a terminal: nothing to rename over.
        return direct(&target);
    }
    match temp_beside(&target) {
        Ok((file, temp)) => {
            if let Some(m) = &existing {
                // The replacement keeps the file's permissions, as writing into it would.
                let _ = file.set_permissions(m.permissions());
            }
            Ok(Open::Temp {
                file: BufWriter::new(file),
                temp,
                target,
            })
        }
        // A directory we may not create in, with a file in it we may write.
        Err(_) if existing.is_some() => direct(&target),
        Err(e) => Err(cannot("create", p, e)),
    }
}

fn direct(p: &Path) -> Result<Open, ClientError> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(p)
        .map_err(|e| cannot("create", p, e))?;
    Ok(Open::Direct(BufWriter::new(f)))
}

/// A new file `.NAME.hop-PID-N` in `target`'s directory (never an existing one: `O_EXCL`).
fn temp_beside(target: &Path) -> std::io::Result<(File, PathBuf)> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    for n in 0..100 {
        let temp = dir.join(format!(".{name}.hop-{}-{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(f) => return Ok((f, temp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name left")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::write(&out, "old").unwrap();
        // A failed transfer: the old file stays, no temporary file is left.
        let mut s = Sink::new(Dest::File(out.clone()));
        s.write(b"half").unwrap();
        drop(s);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A new file is not there before the commit.
        let new = dir.path().join("new");
        let mut s = Sink::new(Dest::File(new.clone()));
        s.write(b"body").unwrap();
        assert!(!new.exists());
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "body");
        // Nothing written, but a success: an empty file, as curl leaves.
        let empty = dir.path().join("empty");
        Sink::new(Dest::File(empty.clone())).commit().unwrap();
        assert_eq!(std::fs::read(&empty).unwrap(), b"");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn dev_null_is_written_not_replaced() {
        let mut s = Sink::new(Dest::File("/dev/null".into()));
        s.write(b"gone").unwrap();
        s.commit().unwrap();
        assert!(
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }

    use std::os::unix::fs::FileTypeExt;
}
