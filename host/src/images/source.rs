//! A data file's bytes, read sequentially and decompressed on the fly when it is gzip, with the
//! position kept so errors can say where the file ends.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};

/// gzip's two magic bytes (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most trailing bytes [`Source::remaining`] reads to count them (a gzip stream can expand
/// a thousandfold).
pub(crate) const DRAIN_LIMIT: u64 = 1 << 30;

pub(crate) struct Source {
    pub(crate) path: PathBuf,
    reader: Box<dyn Read>,
    gzip: bool,
    /// Bytes consumed so far (of the decompressed stream for gzip).
    pos: u64,
    /// The file's size on disk, for uncompressed files.
    pub(crate) disk_len: Option<u64>,
}

impl Source {
    /// Opens `path`; a file starting with gzip's magic bytes is decompressed.
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                reason: "is a directory, not a data file".into(),
            });
        }
        let mut buffered = BufReader::new(file);
        let head = buffered.fill_buf().map_err(io)?;
        let gzip = head.starts_with(&GZIP_MAGIC);
        let reader: Box<dyn Read> = if gzip {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        Ok(Source {
            path: path.to_path_buf(),
            reader,
            gzip,
            pos: 0,
            disk_len: (!gzip).then_some(meta.len()),
        })
    }

    /// A [`Error::Malformed`] for this file.
    pub(crate) fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Malformed {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// `"byte N"`, saying when N counts decompressed bytes.
    pub(crate) fn at(&self, byte: u64) -> String {
        if self.gzip {
            format!("byte {byte} of the decompressed data")
        } else {
            format!("byte {byte}")
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Fills as much of `buf` as the file holds; returns how many bytes were read (fewer than
    /// `buf.len()` only at the end of the file).
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if self.gzip => {
                    return Err(self.bad(format!(
                        "corrupt gzip data after {}: {e}",
                        self.at(self.pos + got as u64)
                    )))
                }
                Err(source) => {
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        self.pos += got as u64;
        Ok(got)
    }

    /// How many bytes are left after the current position: `0` at the end (for gzip, after its
    /// checksum was verified). The rest is read to count it — and, for gzip, to tell trailing
    /// bytes from corrupt data that happened to decompress — up to [`DRAIN_LIMIT`] bytes, the
    /// count returned when there are more.
    pub(crate) fn remaining(&mut self) -> Result<u64> {
        let mut buf = vec![0u8; 1 << 16];
        let start = self.pos;
        while self.pos - start < DRAIN_LIMIT {
            if self.fill(&mut buf)? == 0 {
                break;
            }
        }
        Ok(self.pos - start)
    }
}
