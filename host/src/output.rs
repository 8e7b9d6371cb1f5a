//! Writing output files atomically: a file is either absent, its old version, or complete; and
//! a command's several outputs together: all of them, or none ([`Outputs`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// crash or a full disk never leaves a truncated output behind.
///
/// # Errors
/// [`Error::Write`] naming `path` (the temporary file is removed on failure).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let io = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Runs `write` on a temporary path next to `path` and renames the result into place (for
/// writers, such as the PNG encoder, that insist on a path).
///
/// # Errors
/// The writer's error, or [`Error::Write`] if the rename fails.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    match write(&tmp).and_then(|()| {
        fs::rename(&tmp, path).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
    }) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Checks, before a run starts, that an output can be written at `path`: its folder exists and
/// takes a new file (a probe file is created and removed), and `path` is not a folder or a
/// read-only file. A long run then does not fail only at the end.
///
/// # Errors
/// [`Error::InvalidInput`] naming `setting`.
pub fn check_writable(setting: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let bad = |reason: String| Err(Error::invalid(setting, path.display(), reason));
    if !dir.is_dir() {
        return bad(format!("folder {} does not exist", dir.display()));
    }
    if path.is_dir() {
        return bad("is a folder".into());
    }
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().readonly() {
            return bad("the file is read-only".into());
        }
    }
    let probe = dir.join(format!(".keel-probe.{}", std::process::id()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bad(format!("cannot write in {}: {e}", dir.display())),
    }
}

/// A command's outputs, written together once the whole run has succeeded: each is first made
/// in a temporary file next to its destination ([`Outputs::bytes`], [`Outputs::with`]), and
/// [`Outputs::commit`] renames them all into place. Dropped without a commit — a later output
/// failed, or the run did — it removes its temporary files and leaves every destination as it
/// was.
#[derive(Debug, Default)]
pub struct Outputs {
    staged: Vec<(PathBuf, PathBuf)>,
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stages `bytes` for `path`.
    ///
    /// # Errors
    /// [`Error::Write`] naming `path`.
    pub fn bytes(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.with(path, |tmp| {
            let io = |source| Error::Write {
                path: path.to_path_buf(),
                source,
            };
            let mut f = fs::File::create(tmp).map_err(io)?;
            f.write_all(bytes).map_err(io)?;
            f.sync_all().map_err(io)
        })
    }

    /// Stages what `write` writes at the path it is given (a temporary file, with `path`'s
    /// extension last, for encoders that choose the format from it).
    ///
    /// # Errors
    /// The writer's error.
    pub fn with(&mut self, path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let tmp = temp_path(path);
        self.staged.push((tmp.clone(), path.to_path_buf()));
        write(&tmp)
    }

    /// Moves every staged output into place.
    ///
    /// # Errors
    /// [`Error::Write`] for a rename that fails (the outputs not yet moved are removed).
    pub fn commit(mut self) -> Result<()> {
        for (tmp, path) in std::mem::take(&mut self.staged) {
            if let Err(source) = fs::rename(&tmp, &path) {
                let _ = fs::remove_file(&tmp);
                return Err(Error::Write { path, source });
            }
        }
        Ok(())
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Removes temporary files that an interrupted write of `path` left behind: those named as
/// [`temp_path`] names them, for a process that no longer runs (a write killed midway leaves
/// one; nothing else would remove it).
fn sweep_stale(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return; // no way to tell a live writer from a dead one
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let suffix = format!(".tmp.{}", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let Some(pid) = file
            .strip_prefix('.')
            .and_then(|f| f.strip_suffix(suffix.as_str()))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    sweep_stale(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep the extension last: some encoders choose the format from it.
    let tmp_name = format!(".{}.tmp.{name}", std::process::id());
    path.with_file_name(tmp_name)
}

/// [`check_writable`] for a plot, which Keel writes as PNG: the name must end in `.png`.
///
/// # Errors
/// [`Error::InvalidInput`] naming `setting`.
pub fn check_plot(setting: &str, path: &Path) -> Result<()> {
    check_writable(setting, path)?;
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        return Err(Error::invalid(
            setting,
            path.display(),
            "plots are PNG files: give a name ending in .png",
        ));
    }
    Ok(())
}

/// The bytes of `path`, or [`Error::Io`] naming it.
///
/// # Errors
/// As described.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The text of `path`, or [`Error::Io`] naming it (also for a file that is not UTF-8).
///
/// # Errors
/// As described.
pub fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_written_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("model.bin"), dir.path().join("plot.png"));
        fs::write(&a, b"old model").unwrap();
        let mut out = Outputs::new();
        out.bytes(&a, b"new model").unwrap();
        let failed = out.with(&b, |_| {
            Err(Error::Plot {
                path: b.clone(),
                reason: "no font".into(),
            })
        });
        assert!(failed.is_err());
        drop(out);
        assert_eq!(fs::read(&a).unwrap(), b"old model", "nothing replaced");
        assert!(!b.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporaries left"
        );
        let mut out = Outputs::new();
        out.bytes(&a, b"new model").unwrap();
        out.with(&b, |tmp| {
            fs::write(tmp, b"png").map_err(|source| Error::Write {
                path: tmp.to_path_buf(),
                source,
            })
        })
        .unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new model");
        assert_eq!(fs::read(&b).unwrap(), b"png");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_killed_writers_temporary_file_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        // PIDs never exceed 2²², so 999999999 is a writer that no longer runs; PID 1 always runs.
        let dead = dir.path().join(".999999999.tmp.out.json");
        let live = dir.path().join(".1.tmp.out.json");
        let other = dir.path().join(".999999999.tmp.other.json");
        for f in [&dead, &live, &other] {
            fs::write(f, b"partial").unwrap();
        }
        write_atomic(&p, b"whole").unwrap();
        assert!(
            !dead.exists(),
            "the dead writer's temporary file is removed"
        );
        assert!(live.exists(), "a running writer's file is kept");
        assert!(other.exists(), "another output's file is kept");
        assert_eq!(fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn unwritable_outputs_are_refused_before_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_writable("plot", dir.path()).unwrap_err();
        assert!(
            e.is_input_error() && e.to_string().contains("is a folder"),
            "{e}"
        );
        let ro = dir.path().join("ro.png");
        fs::write(&ro, b"x").unwrap();
        let mut perm = fs::metadata(&ro).unwrap().permissions();
        perm.set_readonly(true);
        fs::set_permissions(&ro, perm).unwrap();
        let e = check_writable("plot", &ro).unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        check_writable("plot", &dir.path().join("new.png")).unwrap();
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the probe is removed"
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_writer_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plot.png");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |tmp| {
            fs::write(tmp, b"partial").unwrap();
            Err(Error::Plot {
                path: p.clone(),
                reason: "boom".into(),
            })
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_directory_is_an_input_error() {
        let e = check_writable("csv", Path::new("/no/such/dir/x.csv")).unwrap_err();
        assert!(e.is_input_error());
        assert!(e.to_string().contains("csv"));
    }
}
