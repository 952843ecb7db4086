//! The study's cache: checksummed record files, one per finished stage of a cell, and per-cell
//! locks (`flock`) so that several `txfm ablate` processes (or `--jobs` workers) never compute the same
//! cell twice at once.
//!
//! A record is two parts in one file, written atomically: a header line
//! `txfm-ablate-record v1 key=<key> sha256=<hex>` and the payload's JSON, whose bytes the hash
//! covers. A record whose header, key, hash or JSON does not check out is reported as corrupt and
//! recomputed, never trusted.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::study::hex;
use crate::atomic::write_atomic;
use crate::{Error, Result};

const MAGIC: &str = "txfm-ablate-record v1";

/// What reading a record found.
#[derive(Debug)]
pub enum Record<T> {
    Missing,
    Valid(T),
    /// Present but not to be trusted; the reason, for the log.
    Corrupt(String),
}

/// Writes `payload` as the record of `key` at `path` (atomically).
pub fn write_record<T: Serialize>(path: &Path, key: &str, payload: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(payload).map_err(|e| Error::format(path, e.to_string()))?;
    let sum = hex(&Sha256::digest(json.as_bytes()));
    write_atomic(path, &format!("{MAGIC} key={key} sha256={sum}\n{json}"))
}

/// Reads the record of `key` at `path`.
pub fn read_record<T: DeserializeOwned>(path: &Path, key: &str) -> Result<Record<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Record::Missing),
        Err(e) => return Err(Error::io(path, e)),
    };
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        return Ok(Record::Corrupt("no header line".into()));
    };
    let (header, json) = (String::from_utf8_lossy(&bytes[..newline]), &bytes[newline + 1..]);
    let expected = format!("{MAGIC} key={key} sha256={}", hex(&Sha256::digest(json)));
    if header != expected {
        let reason = if !header.starts_with(MAGIC) {
            "not a record".to_string()
        } else if !header.contains(&format!("key={key} ")) {
            "written for another config".to_string()
        } else {
            "checksum mismatch".to_string()
        };
        return Ok(Record::Corrupt(reason));
    }
    match serde_json::from_slice(json) {
        Ok(v) => Ok(Record::Valid(v)),
        Err(e) => Ok(Record::Corrupt(format!("unreadable payload: {e}"))),
    }
}

/// An exclusive claim on a cell folder, held while it is computed: an `flock` on the lock file,
/// which the kernel releases when the holder exits or is killed, so a killed study's cells are
/// free again at once and a live holder is never taken over. The file itself stays (removing it
/// would race with a process opening it).
pub struct CellLock {
    _file: std::fs::File,
}

impl CellLock {
    /// `Ok(None)` when another open of the file (another process, or another claim in this one)
    /// holds it.
    pub fn acquire(path: &Path) -> Result<Option<CellLock>> {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| Error::io(path, e))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(CellLock { _file: file }));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(Error::io(path, err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.rec");
        assert!(matches!(read_record::<Vec<f64>>(&p, "k1").unwrap(), Record::Missing));
        write_record(&p, "k1", &vec![1.5, 2.25]).unwrap();
        match read_record::<Vec<f64>>(&p, "k1").unwrap() {
            Record::Valid(v) => assert_eq!(v, vec![1.5, 2.25]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_record::<Vec<f64>>(&p, "k2").unwrap(), Record::Corrupt(r) if r.contains("another config")));
        let text = std::fs::read_to_string(&p).unwrap().replace("2.25", "2.5");
        std::fs::write(&p, text).unwrap();
        assert!(matches!(read_record::<Vec<f64>>(&p, "k1").unwrap(), Record::Corrupt(r) if r.contains("checksum")));
        std::fs::write(&p, "garbage").unwrap();
        assert!(matches!(read_record::<Vec<f64>>(&p, "k1").unwrap(), Record::Corrupt(_)));
    }

    #[test]
    fn a_lock_excludes_other_holders_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cell.lock");
        let held = CellLock::acquire(&p).unwrap().expect("free");
        assert!(CellLock::acquire(&p).unwrap().is_none(), "held");
        drop(held);
        assert!(CellLock::acquire(&p).unwrap().is_some(), "released with its holder");
        // A lock file left by a killed process (no flock held) is free.
        std::fs::write(dir.path().join("stale.lock"), "12345").unwrap();
        assert!(CellLock::acquire(&dir.path().join("stale.lock")).unwrap().is_some());
    }
}
