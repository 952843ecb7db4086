//! Outputs appear complete or not at all: each is written beside its destination under a hidden
//! temporary name and renamed into place. Temporaries are created with the permissions a plain
//! create would give (0666/0777 minus the umask), not tempfile's private 0600/0700, so a finished
//! h5ad or corpus is as readable by the user's group as the output of any other tool.
//!
//! A temporary's name carries the writing process's id (`.<name>.<pid>.XXXX.partial`): one left by
//! a killed run is removed by the next run that writes the same output, once that process is
//! gone. A command with several outputs stages the small ones ([`Staged`]) while the large one is
//! written and renames them after it, so a full disk leaves none of them behind.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::{NamedTempFile, TempDir};

use crate::{Error, Result};

/// Refuses an `output` that is the `input` file itself (the same inode: also through a link or
/// another spelling of the path). Outputs are written beside and renamed over their destination,
/// so such a command would replace the input with a file holding only what the output carries
/// (e.g. an h5ad copy without the input's layers, uns, obsp, varm or raw).
pub fn refuse_to_overwrite_input(input: &Path, output: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(i), Ok(o)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return Ok(());
    };
    if i.dev() == o.dev() && i.ino() == o.ino() {
        return Err(Error::Invalid(format!(
            "{}: this output is the input {}; writing it would replace the input with a copy that keeps only \
             obs, var, X and the embeddings (its layers, uns, obsp, varm and raw would be lost). Choose another output path",
            output.display(),
            input.display()
        )));
    }
    Ok(())
}

fn parent_and_name(path: &Path) -> Result<(&Path, String)> {
    let name = path.file_name().ok_or_else(|| Error::format(path, "not a file path"))?.to_string_lossy().into_owned();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((dir, name))
}

/// Refuses outputs that are existing folders, before any work: renaming a file over a folder
/// fails only at the end, after the other outputs were written.
pub fn refuse_folders(outputs: &[&Path]) -> Result<()> {
    for out in outputs {
        if out.is_dir() {
            return Err(Error::format(out, "this output path is an existing folder; choose a file path"));
        }
    }
    Ok(())
}

/// Removes the temporaries of `name` in `dir` whose writing process no longer runs (a run killed
/// mid-write), leaving the live ones of other processes and any it cannot read a process id from.
fn sweep_stale(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix).filter(|_| file.ends_with(".partial")) else { continue };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        // SAFETY: signal 0 only asks whether the process exists; it sends nothing.
        let gone = pid > 0 && pid != std::process::id() as i32 && unsafe { libc::kill(pid, 0) } == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// A temporary file beside `path` (`.<name>.<pid>.XXXX.partial`), removed on drop unless persisted.
pub fn temp_file_beside(path: &Path) -> Result<NamedTempFile> {
    let (dir, name) = parent_and_name(path)?;
    sweep_stale(dir, &name);
    tempfile::Builder::new()
        .prefix(&format!(".{name}.{}.", std::process::id()))
        .suffix(".partial")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, e))
}

/// A temporary folder beside `path`, removed on drop unless kept.
pub fn temp_dir_beside(path: &Path) -> Result<TempDir> {
    let (dir, name) = parent_and_name(path)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    sweep_stale(dir, &name);
    tempfile::Builder::new()
        .prefix(&format!(".{name}.{}.", std::process::id()))
        .suffix(".partial")
        .permissions(std::fs::Permissions::from_mode(0o777))
        .tempdir_in(dir)
        .map_err(|e| Error::io(path, e))
}

/// Writes `path` through `write`, atomically.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    Staged::with(path, write)?.commit()
}

/// Writes `text` to `path`, atomically.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(text.as_bytes()))
}

/// A small output written in full under its temporary name, renamed into place by
/// [`Staged::commit`] once the command's other outputs are done (dropped uncommitted, it is
/// removed).
pub struct Staged {
    tmp: NamedTempFile,
    path: std::path::PathBuf,
}

impl Staged {
    /// Writes the contents of `path` through `write` under a temporary name.
    pub fn with(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<Staged> {
        let mut tmp = temp_file_beside(path)?;
        write(tmp.as_file_mut()).and_then(|()| tmp.as_file_mut().flush()).map_err(|e| Error::io(path, e))?;
        Ok(Staged { tmp, path: path.to_path_buf() })
    }

    /// Writes `text` for `path` under a temporary name.
    pub fn text(path: &Path, text: &str) -> Result<Staged> {
        Staged::with(path, |f| f.write_all(text.as_bytes()))
    }

    /// Renames the file into place.
    pub fn commit(self) -> Result<()> {
        self.tmp.persist(&self.path).map_err(|e| Error::io(&self.path, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_get_ordinary_permissions_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, "hi").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "hi");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_ne!(mode & 0o044, 0, "group/other can read, as with File::create under a usual umask: {mode:o}");
        let failed = write_atomic_with(&dir.path().join("b.txt"), |_| Err(std::io::Error::other("boom")));
        assert!(failed.unwrap_err().to_string().contains("b.txt: boom"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    /// A kill -9 leaves `.out.<pid>.XXXX.partial` behind; the next write of `out` removes it once
    /// that process is gone, and leaves a live process's temporary and foreign files alone.
    #[test]
    fn stale_temporaries_of_a_dead_process_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".out.txt.{dead}.abc123.partial"));
        let stale_dir = dir.path().join(format!(".out.txt.{dead}.def456.partial"));
        let live = dir.path().join(format!(".out.txt.{}.ghi789.partial", std::process::id()));
        let other = dir.path().join(".other.txt.1.xyz.partial");
        std::fs::write(&stale, "left by a kill").unwrap();
        std::fs::create_dir(&stale_dir).unwrap();
        std::fs::write(stale_dir.join("inner"), "x").unwrap();
        std::fs::write(&live, "being written").unwrap();
        std::fs::write(&other, "another output's").unwrap();
        write_atomic(&dir.path().join("out.txt"), "done").unwrap();
        assert!(!stale.exists() && !stale_dir.exists());
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn an_output_that_is_the_input_is_refused_under_any_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.h5ad");
        std::fs::write(&input, "x").unwrap();
        let err = refuse_to_overwrite_input(&input, &input).unwrap_err().to_string();
        assert!(err.contains("is the input") && err.contains("in.h5ad"), "{err}");
        let dotted = dir.path().join(".").join("in.h5ad");
        assert!(refuse_to_overwrite_input(&input, &dotted).is_err());
        let link = dir.path().join("link.h5ad");
        std::fs::hard_link(&input, &link).unwrap();
        assert!(refuse_to_overwrite_input(&input, &link).is_err(), "a hard link is the same file");
        // Another file, or one that does not exist yet, is fine.
        std::fs::write(dir.path().join("other.h5ad"), "x").unwrap();
        refuse_to_overwrite_input(&input, &dir.path().join("other.h5ad")).unwrap();
        refuse_to_overwrite_input(&input, &dir.path().join("new.h5ad")).unwrap();
    }
}
