//! Safe use of an output folder: the lock, the marker, atomic writes and the test-only
//! fault-injection hook.
//!
//! - **Lock.** `run` and `merge` hold an exclusive `flock(2)` on `<folder>/.neqkin.lock`
//!   for as long as they write the folder (`merge` also holds the lock of each input while
//!   it reads it). The file records the holder (`pid`, `host`, start time, command); a
//!   second process is refused with those. The kernel drops the lock when its holder dies,
//!   however it dies, so a stale lock file never blocks: only a live holder does. The
//!   lock file is never deleted (deleting a lock file others may have open breaks the
//!   exclusion).
//! - **Marker.** `<folder>/.neqkin` is written when neqkin first takes a folder. `--force`
//!   and `merge --force` delete results only in a folder that has it (or a `meta.json` of
//!   an older neqkin), never in anyone else's.
//! - **Atomic writes.** [`write_atomic`] writes a temporary file `.<name>.tmp` beside the
//!   target, syncs it and renames it over the target: a reader (or a resume after a kill)
//!   sees the old file or the new one, never a part. [`write_many_atomic`] does the same
//!   for a batch's arrays without a sync per file (see there).
//!   [`append_synced`] appends whole records to an append-only file and syncs it; readers
//!   take only complete lines, so a record torn by a kill is not read.
//! - **Fault injection (tests only).** With `NEQKIN_TEST_FAULT_AT=k` the process exits
//!   (code [`FAULT_EXIT`], no cleanup, like a kill) at the `k`-th file-system event of the
//!   output code: a create, a write (half of its bytes are written first: a torn write), a
//!   rename or a removal. `NEQKIN_TEST_FAULT_TRACE=1` prints each event with its number on
//!   stderr. The resume tests run a sweep once for every `k`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::{NeqkinError, Result};

/// The lock file inside an output folder.
pub const LOCK: &str = ".neqkin.lock";
/// The marker file: this folder was made by neqkin.
pub const MARKER: &str = ".neqkin";
/// Exit code of a process stopped by the fault-injection hook.
pub const FAULT_EXIT: i32 = 86;

static EVENTS: AtomicUsize = AtomicUsize::new(0);

fn fault_target() -> Option<usize> {
    static TARGET: OnceLock<Option<usize>> = OnceLock::new();
    *TARGET.get_or_init(|| std::env::var("NEQKIN_TEST_FAULT_AT").ok().and_then(|v| v.parse().ok()))
}

fn fault_trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("NEQKIN_TEST_FAULT_TRACE").is_some())
}

/// Counts one file-system event; true when the fault hook stops the process here.
fn fault_here(what: &str, path: &Path) -> bool {
    let target = fault_target();
    if target.is_none() && !fault_trace() {
        return false;
    }
    let n = EVENTS.fetch_add(1, Ordering::SeqCst) + 1;
    if fault_trace() {
        eprintln!("neqkin: fault event {n}: {what} {}", path.display());
    }
    target == Some(n)
}

/// Stops the process as the fault hook does (no destructors, no flushing of our files).
fn fault_exit() -> ! {
    std::process::exit(FAULT_EXIT)
}

/// Fault event that is not a write: stops the process when it is the chosen one.
pub fn event(what: &str, path: &Path) {
    if fault_here(what, path) {
        fault_exit();
    }
}

/// Writes `bytes` to `f` (a write event: the hook writes half of them, then stops).
fn write_event(f: &mut impl Write, bytes: &[u8], path: &Path) -> Result<()> {
    if fault_here("write", path) {
        let _ = f.write_all(&bytes[..bytes.len() / 2]);
        fault_exit();
    }
    f.write_all(bytes).map_err(|e| NeqkinError::io(path, e))
}

/// `.<name>.tmp` beside `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Whether a file name is one of our temporary files.
pub fn is_tmp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then
/// renamed over `path`. A kill at any instant leaves the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    event("create", &tmp);
    let mut f = File::create(&tmp).map_err(|e| NeqkinError::io(&tmp, e))?;
    write_event(&mut f, bytes, &tmp)?;
    f.sync_data().map_err(|e| NeqkinError::io(&tmp, e))?;
    drop(f);
    event("rename", path);
    std::fs::rename(&tmp, path).map_err(|e| NeqkinError::io(path, e))
}

/// Writes several files atomically against a kill (temporary file, then rename), without
/// syncing each: the arrays of a batch. The batch's rows and progress record are synced
/// after them, and a resume checks every recorded array, so one that did not reach the
/// disk before an OS crash is found and its point redone. (A sync per file cost 5× the
/// run time of a small sweep on a virtual disk.)
pub fn write_many_atomic(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    for (path, bytes) in files {
        let tmp = tmp_path(path);
        event("create", &tmp);
        let mut f = File::create(&tmp).map_err(|e| NeqkinError::io(&tmp, e))?;
        write_event(&mut f, bytes, &tmp)?;
        drop(f);
        event("rename", path);
        std::fs::rename(&tmp, path).map_err(|e| NeqkinError::io(path, e))?;
    }
    Ok(())
}

/// Appends `bytes` (whole lines) to the append-only file `f` at `path` and syncs it.
pub fn append_synced(f: &mut File, bytes: &[u8], path: &Path) -> Result<()> {
    write_event(f, bytes, path)?;
    f.sync_data().map_err(|e| NeqkinError::io(path, e))
}

/// Removes a file if it is there (a fault event).
pub fn remove_file(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        event("remove", path);
        std::fs::remove_file(path).map_err(|e| NeqkinError::io(path, e))?;
    }
    Ok(())
}

/// Removes a folder and everything in it if it is there (a fault event).
pub fn remove_dir_all(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        event("remove", path);
        std::fs::remove_dir_all(path).map_err(|e| NeqkinError::io(path, e))?;
    }
    Ok(())
}

/// This machine's host name (`unknown` where it cannot be read).
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("HOSTNAME").or_else(|_| std::env::var("COMPUTERNAME")).unwrap_or_else(|_| "unknown".into())
}

/// An exclusive lock on an output folder, held until dropped (or the process ends).
#[derive(Debug)]
pub struct FolderLock {
    _file: Option<File>,
}

impl FolderLock {
    /// Takes the lock of the existing folder `dir` for `command` (`run`, `merge`, ...),
    /// without waiting. A folder locked by another process is refused, naming its pid and
    /// host. The lock file records this process when it can be written; `must_write` is
    /// off for folders that are only read (a read-only shard folder is then locked where
    /// the file exists, and not at all where it does not: no run can write there either).
    pub fn acquire(dir: &Path, command: &str, must_write: bool) -> Result<FolderLock> {
        let path = dir.join(LOCK);
        let mut write_holder = true;
        let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
            Ok(f) => f,
            Err(e) if !must_write => match File::open(&path) {
                Ok(f) => {
                    write_holder = false;
                    f
                }
                // No lock file and none can be made (read-only folder): nothing to lock
                // against, since no neqkin run can write there either.
                Err(_) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(FolderLock { _file: None }),
                Err(_) => return Err(NeqkinError::io(&path, e)),
            },
            Err(e) => return Err(NeqkinError::io(&path, e)),
        };
        match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut text = String::new();
                let _ = (&file).read_to_string(&mut text);
                return Err(NeqkinError::output(dir, busy_message(&text)));
            }
            Err(e) => {
                return Err(NeqkinError::output(
                    dir,
                    format!("cannot lock {}: {e} (does this file system support flock?)", path.display()),
                ))
            }
        }
        if write_holder {
            let holder = serde_json::json!({
                "pid": std::process::id(),
                "host": hostname(),
                "since": crate::run::output::utc_now(),
                "command": command,
            });
            let text = format!("{holder}\n");
            let mut f = &file;
            f.set_len(0).and_then(|_| f.seek(SeekFrom::Start(0))).map_err(|e| NeqkinError::io(&path, e))?;
            write_event(&mut f, text.as_bytes(), &path)?;
        }
        Ok(FolderLock { _file: Some(file) })
    }
}

/// The refusal message for a folder whose lock is held, from the lock file's text.
fn busy_message(text: &str) -> String {
    let holder: Option<serde_json::Value> = serde_json::from_str(text.trim()).ok();
    let who = match holder {
        Some(h) if h["pid"].is_u64() => format!(
            "by neqkin {} (pid {} on host {}, since {})",
            h["command"].as_str().unwrap_or("?"),
            h["pid"],
            h["host"].as_str().unwrap_or("?"),
            h["since"].as_str().unwrap_or("?"),
        ),
        _ => "by another neqkin process (it has not recorded its pid yet, or only reads the folder)".into(),
    };
    format!("is in use {who}; wait for it to end (or stop it), then run again (with --resume to continue a run)")
}

/// Whether neqkin made `dir`: it has the marker, or a `meta.json` of an older neqkin.
pub fn is_ours(dir: &Path) -> bool {
    if dir.join(MARKER).is_file() {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(crate::run::output::META)) else { return false };
    serde_json::from_str::<serde_json::Value>(&text)
        .is_ok_and(|m| m.get("neqkin_version").is_some() && m.get("fingerprint").is_some())
}

/// Writes the marker into `dir` (if absent).
pub fn mark(dir: &Path, command: &str) -> Result<()> {
    let path = dir.join(MARKER);
    if path.is_file() {
        return Ok(());
    }
    let text = serde_json::json!({
        "what": "neqkin output folder; neqkin run --force and neqkin merge --force may delete its results",
        "created": crate::run::output::utc_now(),
        "by": command,
        "neqkin_version": crate::run::output::VERSION,
    });
    // Written in place, not atomically: a marker cut short by a kill (even an empty
    // file) still marks the folder, where a temporary file would not.
    event("create", &path);
    let mut f = File::create(&path).map_err(|e| NeqkinError::io(&path, e))?;
    write_event(&mut f, format!("{text}\n").as_bytes(), &path)?;
    f.sync_data().map_err(|e| NeqkinError::io(&path, e))
}

/// Entries of `dir` other than the lock and the marker (the folder counts as empty
/// without them); empty when `dir` does not exist.
pub fn entries(dir: &Path) -> Result<Vec<String>> {
    let it = match std::fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NeqkinError::io(dir, e)),
    };
    let mut names = Vec::new();
    for e in it {
        let e = e.map_err(|e| NeqkinError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name != LOCK && name != MARKER {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A path with `.` and `..` resolved and symlinks followed as far as it exists (for
/// comparing folders that may not exist yet).
pub fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => canonical(parent).join(name),
        _ => abs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let a = FolderLock::acquire(tmp.path(), "run", true).unwrap();
        let e = FolderLock::acquire(tmp.path(), "run", true).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains(&hostname()), "{e}");
        drop(a);
        FolderLock::acquire(tmp.path(), "run", true).unwrap();
    }

    #[test]
    fn tmp_names() {
        let t = tmp_path(Path::new("/a/b/meta.json"));
        assert_eq!(t, Path::new("/a/b/.meta.json.tmp"));
        assert!(is_tmp_name(".meta.json.tmp") && !is_tmp_name("meta.json"));
    }
}
