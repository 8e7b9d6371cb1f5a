//! The engine's one file format: its cache of compiled kernels (`$XDG_CACHE_HOME/keel/<what>`,
//! else `~/.cache/keel/<what>`). A cache entry is written to a temporary file and renamed into
//! place, so a reader sees a whole entry or none; a failed write only costs a recompilation.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Keel's cache folder for `what`; `None` without `XDG_CACHE_HOME` or `HOME`.
pub fn dir(what: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("keel").join(what))
}

/// Stores `bytes` at `path` (creating its folder) through a temporary file and a rename.
///
/// # Errors
/// The I/O error; the temporary file is removed.
pub fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{}.tmp.{name}", std::process::id()));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
