//! The exclusive lock a tapdisk holds on a mapping file while it serves the disk (DESIGN.md
//! "Control path").
//!
//! The lock is `flock(LOCK_EX | LOCK_NB)` on a sidecar `<mapping file>.lock`, not on the mapping
//! file itself: the mapping file is replaced by rename when rewritten, which would leave a lock
//! on the old inode. The holder writes its pid, host name and command line into the sidecar so a
//! refusal can say who serves the disk. The lock goes with the file descriptor: dropping
//! [`MappingLock`] (or the process dying) releases it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the lock was not taken.
#[derive(Debug, Error)]
pub enum LockError {
    #[error("mapping file {path} is being served by {holder}")]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock mapping file {path} (lock file {lock_path}): {source}")]
    Io {
        path: PathBuf,
        lock_path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held exclusive lock on a mapping file; released on drop.
#[derive(Debug)]
pub struct MappingLock {
    file: File,
    lock_path: PathBuf,
}

/// The sidecar lock file of a mapping file.
pub fn lock_path_for(mapping: &Path) -> PathBuf {
    let mut s = mapping.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn command_line() -> String {
    let mut args = std::env::args();
    let exe = args
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or(a)
        })
        .unwrap_or_default();
    match args.next() {
        Some(sub) => format!("{exe} {sub}"),
        None => exe,
    }
}

impl MappingLock {
    /// Takes the lock or refuses at once, naming the holder.
    pub fn acquire(mapping: &Path) -> Result<MappingLock, LockError> {
        let lock_path = lock_path_for(mapping);
        let io = |source| LockError::Io {
            path: mapping.to_path_buf(),
            lock_path: lock_path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process (it has not written its name yet)".to_string()
                } else {
                    holder.to_string()
                };
                return Err(LockError::Held {
                    path: mapping.to_path_buf(),
                    holder,
                });
            }
            return Err(io(err));
        }
        let who = format!(
            "pid {} ({}) on host {}\n",
            std::process::id(),
            command_line(),
            hostname()
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(who.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(MappingLock { file, lock_path })
    }

    /// The sidecar lock file.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }
}

impl Drop for MappingLock {
    fn drop(&mut self) {
        // Clear the holder line while still holding the lock; the lock itself goes with the fd.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_holder_named_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.map");
        std::fs::write(&p, b"{}").unwrap();
        let l = MappingLock::acquire(&p).unwrap();
        // flock locks belong to open file descriptions, so a second open in the same process
        // conflicts just as another process would.
        let e = MappingLock::acquire(&p).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("on host"), "{msg}");
        assert!(msg.contains("is being served by"), "{msg}");
        drop(l);
        let _l2 = MappingLock::acquire(&p).unwrap();
    }
}
