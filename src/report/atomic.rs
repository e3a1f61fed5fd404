//! The one atomic writer behind every output steerlab writes (vectors, GGUF exports, data sets,
//! reports, SAE and dissection folders, `run --cache`), and the checks run on an output path
//! before long work starts.
//!
//! - A file is written to a temporary name unique to this writer (`.NAME.PID.N.tmp`, created
//!   with `O_EXCL`) in the target's own directory, synced, then renamed over the target; the
//!   temporary file is removed on every failure path (and if the writer panics).
//! - Only a regular file (or nothing) is ever replaced: a directory, device, FIFO or socket at
//!   the target is refused with a message naming it (`--out /dev/null` never replaces
//!   `/dev/null`).
//! - A folder of several files ([`write_dir_atomic`]) is filled under a temporary name and
//!   renamed into place when the target does not exist yet; an existing folder is updated file
//!   by file with its completion marker removed first and written last, so a reader that
//!   requires the marker never accepts a half-written folder.
//!
//! Errors are plain [`std::io::Error`]s whose text says what is wrong with the path; callers wrap
//! them with the path in their own error types (the text never repeats the path).
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name next to `path`: `.NAME.PID.N.SUFFIX` in the same directory.
fn temp_sibling(path: &Path, suffix: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{}.{n}.{suffix}", std::process::id()))
}

/// What a non-regular file is, in words ("a directory", "a character device", ...).
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidInput, msg)
}

/// Refuses a target that exists and is not a regular file (following symlinks).
fn check_replaceable(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => Err(invalid(format!(
            "it is {}; steerlab only replaces regular files (choose a file name)",
            kind_of(&m.file_type())
        ))),
        // A missing or non-folder parent is reported by the folder check that follows.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The directory a target lives in (`.` for a bare file name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that `dir` exists, is a directory, and that a file can be created in it (by creating
/// and removing a probe file: permission bits lie for root and read-only mounts).
fn check_writable_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => {
            return Err(invalid(format!(
                "its folder {} is {}, not a directory",
                dir.display(),
                kind_of(&m.file_type())
            )))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(std::io::Error::new(
                ErrorKind::NotFound,
                format!("its folder {} does not exist", dir.display()),
            ))
        }
        Err(e) => return Err(e),
    }
    let probe = temp_sibling(&dir.join("probe"), "probe");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("cannot create files in {}: {e}", dir.display()),
        )),
    }
}

/// Refuses an input that is not a regular file (a FIFO would block forever, a device never end);
/// the text says what it is.
pub fn require_regular_file(path: &Path) -> std::io::Result<()> {
    let m = std::fs::metadata(path)?;
    if m.is_file() {
        return Ok(());
    }
    Err(invalid(format!(
        "it is {}, not a regular file",
        kind_of(&m.file_type())
    )))
}

/// Checks an output file before long work starts: it is a regular file or absent, and its folder
/// exists and is writable. The error text names the problem, not the path (callers add it).
pub fn check_output_file(path: &Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() {
        return Err(invalid("the output path is empty".into()));
    }
    check_replaceable(path)?;
    check_writable_dir(&parent_of(path))
}

/// Checks an output folder before long work starts: it is a directory or absent, and its parent
/// exists and is writable (the folder itself is created when the work is done).
pub fn check_output_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(invalid("the output folder path is empty".into()));
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => check_writable_dir(dir),
        Ok(m) => Err(invalid(format!(
            "it is {}, not a folder",
            kind_of(&m.file_type())
        ))),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            // Created later with create_dir_all: the nearest existing ancestor must be writable.
            let mut anc = parent_of(dir);
            while !anc.exists() {
                match anc.parent() {
                    Some(p) if !p.as_os_str().is_empty() => anc = p.to_path_buf(),
                    _ => {
                        anc = PathBuf::from(".");
                        break;
                    }
                }
            }
            check_writable_dir(&anc)
        }
        Err(e) => Err(e),
    }
}

/// Removes a temporary path on drop unless disarmed (covers every error return and panics).
struct TempGuard {
    path: PathBuf,
    dir: bool,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            if self.dir {
                let _ = std::fs::remove_dir_all(&self.path);
            } else {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Writes `path`'s bytes to a fresh temporary sibling and syncs it; the returned guard removes
/// it unless [`commit`] renames it into place.
fn write_temp(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<TempGuard> {
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(invalid("the output path has no file name".into()));
    }
    check_replaceable(path)?;
    let dir = parent_of(path);
    std::fs::create_dir_all(&dir)?;
    let tmp = temp_sibling(path, "tmp");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let guard = TempGuard {
        path: tmp,
        dir: false,
        armed: true,
    };
    let mut w = std::io::BufWriter::new(file);
    fill(&mut w)?;
    w.flush()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(guard)
}

/// Renames a complete temporary file over `path` (checked again right before: something may
/// have appeared meanwhile).
fn commit(mut guard: TempGuard, path: &Path) -> std::io::Result<()> {
    check_replaceable(path)?;
    std::fs::rename(&guard.path, path)?;
    guard.armed = false;
    Ok(())
}

/// Writes `path` atomically with the bytes `fill` writes: a unique temporary file in the same
/// directory, synced, then renamed over `path`. The parent folder is created if needed; a target
/// that is not a regular file is refused; the temporary file never survives a failure.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let guard = write_temp(path, fill)?;
    commit(guard, path)
}

/// What writes one file of a set (see [`write_set`]).
pub type SetFill<'a> = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// Writes several files as one set: each is written to its own unique temporary file and
/// synced, and only when every one is complete are they renamed into place, in order. A
/// failure while writing (a refused target, a fill error, a full disk) leaves every target as
/// it was and no temporary file behind; only a failure between the renames (same folders, so
/// practically a kill) can leave part of the set new. The error carries the index of the file
/// it concerns. Two entries naming the same path are refused.
pub fn write_set(files: Vec<(&Path, SetFill<'_>)>) -> Result<(), (usize, std::io::Error)> {
    for (i, (p, _)) in files.iter().enumerate() {
        if files[..i].iter().any(|(q, _)| q == p) {
            return Err((
                i,
                invalid("the same path appears twice in one set of outputs".into()),
            ));
        }
    }
    let mut done = Vec::with_capacity(files.len());
    for (i, (path, fill)) in files.into_iter().enumerate() {
        let guard = write_temp(path, fill).map_err(|e| (i, e))?;
        done.push((path, guard));
    }
    for (i, (path, guard)) in done.into_iter().enumerate() {
        commit(guard, path).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (see [`write_with`]).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Writes a folder of several files: `fill` gets the folder to write into and must write
/// `marker` (the file readers require) among the others.
///
/// When `dir` does not exist, `fill` writes into a temporary sibling folder that is renamed to
/// `dir` once complete (nothing partial is ever visible under `dir`). When `dir` exists (a rerun
/// into the same folder), `marker` is removed first, `fill` writes into `dir` itself, and the
/// caller writes `marker` last; an interrupted run leaves a folder without its marker, which
/// readers refuse. A failed fill removes the temporary folder.
/// `on_io` turns a file-system error about `dir` into the caller's error type.
pub fn write_dir_atomic<E>(
    dir: &Path,
    marker: &str,
    on_io: impl Fn(std::io::Error) -> E,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            match std::fs::remove_file(dir.join(marker)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(on_io(e)),
            }
            fill(dir)
        }
        Ok(m) => Err(on_io(invalid(format!(
            "it is {}, not a folder",
            kind_of(&m.file_type())
        )))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(parent_of(dir)).map_err(&on_io)?;
            let tmp = temp_sibling(dir, "partial");
            std::fs::create_dir(&tmp).map_err(&on_io)?;
            let mut guard = TempGuard {
                path: tmp.clone(),
                dir: true,
                armed: true,
            };
            fill(&tmp)?;
            match std::fs::rename(&tmp, dir) {
                Ok(()) => {
                    guard.armed = false;
                    Ok(())
                }
                Err(e) => Err(on_io(e)),
            }
        }
        Err(e) => Err(on_io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    #[test]
    fn replaces_a_file_and_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.bin");
        std::fs::write(&p, b"old").unwrap();
        write_bytes(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn a_failing_fill_removes_its_temporary_and_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.bin");
        std::fs::write(&p, b"old").unwrap();
        let e = write_with(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
    }

    #[test]
    fn refuses_directories_and_devices() {
        let d = tempfile::tempdir().unwrap();
        let e = write_bytes(d.path(), b"x").unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write_bytes(&sub, b"x").unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        #[cfg(unix)]
        {
            let e = check_output_file(Path::new("/dev/null")).unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
            let fifo = d.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let e = write_bytes(&fifo, b"x").unwrap_err();
            assert!(e.to_string().contains("FIFO"), "{e}");
            use std::os::unix::fs::FileTypeExt;
            assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        }
    }

    #[test]
    fn a_set_is_written_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        std::fs::write(&a, b"old a").unwrap();
        // The third file fails: no target changes, no temporary is left.
        let r = write_set(vec![
            (&a, Box::new(|w: &mut dyn Write| w.write_all(b"new a"))),
            (&b, Box::new(|w: &mut dyn Write| w.write_all(b"new b"))),
            (
                &c,
                Box::new(|w: &mut dyn Write| {
                    w.write_all(b"half")?;
                    Err(std::io::Error::other("disk full"))
                }),
            ),
        ]);
        let (i, e) = r.unwrap_err();
        assert_eq!(i, 2);
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert!(!b.exists() && !c.exists());
        assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
        // A target that is a folder is refused before anything is renamed.
        std::fs::create_dir(&c).unwrap();
        let (i, e) = write_set(vec![
            (&a, Box::new(|w: &mut dyn Write| w.write_all(b"new a"))),
            (&c, Box::new(|w: &mut dyn Write| w.write_all(b"new c"))),
        ])
        .unwrap_err();
        assert_eq!(i, 1);
        assert!(e.to_string().contains("a directory"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        std::fs::remove_dir(&c).unwrap();
        let (i, _) = write_set(vec![
            (&a, Box::new(|w: &mut dyn Write| w.write_all(b"1"))),
            (&a, Box::new(|w: &mut dyn Write| w.write_all(b"2"))),
        ])
        .unwrap_err();
        assert_eq!(i, 1);
        // All succeed: all replaced.
        write_set(vec![
            (&a, Box::new(|w: &mut dyn Write| w.write_all(b"new a"))),
            (&b, Box::new(|w: &mut dyn Write| w.write_all(b"new b"))),
            (&c, Box::new(|w: &mut dyn Write| w.write_all(b"new c"))),
        ])
        .unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new a");
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        assert_eq!(std::fs::read(&c).unwrap(), b"new c");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn concurrent_writers_use_distinct_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.bin");
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || write_bytes(&p, &[i; 4096]))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.iter().all(|b| *b == got[0]), "mixed content");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn output_checks_name_the_problem() {
        let d = tempfile::tempdir().unwrap();
        let e = check_output_file(&d.path().join("missing").join("v.safetensors")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        check_output_file(&d.path().join("v.safetensors")).unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, b"").unwrap();
        let e = check_output_file(&f.join("v.safetensors")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = check_output_dir(&f).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
        check_output_dir(&d.path().join("new").join("deeper")).unwrap();
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn folders_appear_whole_or_keep_no_marker() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        // A failed first write leaves nothing at all.
        let r: Result<(), std::io::Error> = write_dir_atomic(
            &out,
            "report.json",
            |e| e,
            |dir| {
                write_bytes(&dir.join("a"), b"1")?;
                Err(std::io::Error::other("interrupted"))
            },
        );
        assert!(r.is_err());
        assert!(!out.exists());
        assert!(leftovers(d.path()).is_empty());
        write_dir_atomic(
            &out,
            "report.json",
            |e| e,
            |dir| {
                write_bytes(&dir.join("a"), b"1")?;
                write_bytes(&dir.join("report.json"), b"{}")
            },
        )
        .unwrap();
        assert!(out.join("report.json").exists());
        // A failed rerun into the existing folder leaves it without its marker.
        let r: Result<(), std::io::Error> = write_dir_atomic(
            &out,
            "report.json",
            |e| e,
            |dir| {
                write_bytes(&dir.join("a"), b"2")?;
                Err(std::io::Error::other("interrupted"))
            },
        );
        assert!(r.is_err());
        assert!(!out.join("report.json").exists());
    }
}
