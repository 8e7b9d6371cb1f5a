//! Writing output files atomically: a file is either absent, its old version, or complete.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// crash or a full disk never leaves a truncated output behind.
///
/// # Errors
/// [`Error::Io`] naming `path` (the temporary file is removed on failure).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let io = |source| Error::Io {
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
/// The writer's error, or [`Error::Io`] if the rename fails.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    match write(&tmp).and_then(|()| {
        fs::rename(&tmp, path).map_err(|source| Error::Io {
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

/// Checks that `path`'s directory exists, so a long run does not fail only at the end.
///
/// # Errors
/// [`Error::InvalidInput`] naming `flag`.
pub fn check_writable(flag: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::invalid(
            flag,
            path.display(),
            format!("directory {} does not exist", dir.display()),
        ));
    }
    if path.is_dir() {
        return Err(Error::invalid(flag, path.display(), "is a directory"));
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep the extension last: some encoders choose the format from it.
    let tmp_name = format!(".{}.tmp.{name}", std::process::id());
    path.with_file_name(tmp_name)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = check_writable("--csv", Path::new("/no/such/dir/x.csv")).unwrap_err();
        assert!(e.is_input_error());
        assert!(e.to_string().contains("--csv"));
    }
}
