//! A small data volume that can be filled up: a tmpfs of a few MiB mounted
//! over a member's `dataDir`, as a full disk would be for a pod. Mounting
//! needs root; [`SmallVolume::mount`] says why it cannot, and the caller
//! fails in CI or skips elsewhere ([`crate::small_volume`]). Dropping
//! it unmounts it (lazily, so a server still holding files there cannot
//! keep it mounted).

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The filler file's name in the volume.
const FILLER: &str = "zookube-test-filler";

#[derive(Debug)]
pub struct SmallVolume {
    path: PathBuf,
}

impl SmallVolume {
    /// Mounts a tmpfs of `mib` MiB over `path` (which must exist), keeping
    /// what `path` held: it is copied onto the new volume.
    pub fn mount(path: &Path, mib: u32) -> Result<SmallVolume, String> {
        let saved: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| Some((PathBuf::from(e.file_name()), fs::read(e.path()).ok()?)))
            .collect();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={mib}m"))
            .arg("tmpfs")
            .arg(path))?;
        let volume = SmallVolume {
            path: path.to_owned(),
        };
        for (name, bytes) in saved {
            fs::write(path.join(&name), bytes)
                .map_err(|e| format!("cannot copy {} onto the volume: {e}", name.display()))?;
        }
        Ok(volume)
    }

    /// Fills the volume up with a file of zeros until the kernel says it
    /// is full; returns how many bytes that took.
    pub fn fill(&self) -> Result<u64, String> {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join(FILLER))
            .map_err(|e| format!("cannot create the filler: {e}"))?;
        let block = vec![0u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) => return Ok(written),
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) || e.kind() == ErrorKind::StorageFull => {
                    return Ok(written);
                }
                Err(e) => return Err(format!("cannot fill {}: {e}", self.path.display())),
            }
        }
    }

    /// Frees what [`SmallVolume::fill`] took.
    pub fn free(&self) -> Result<(), String> {
        fs::remove_file(self.path.join(FILLER))
            .map_err(|e| format!("cannot remove the filler: {e}"))
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
