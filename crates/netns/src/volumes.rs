//! Files a pod's containers see at paths of their own (the kubelet's volumes: a ConfigMap's or
//! Secret's keys, the service account's token and CA, an empty scratch directory): each volume
//! is a tmpfs mounted in the pod's mount namespace only, filled, then made read-only if asked.
//! The host never sees the files; only the empty directory the tmpfs is mounted on is made on
//! the host's filesystem where it did not exist (the pod shares the host's files otherwise).

use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::Error;

/// One volume as mounted in a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    /// Absolute path in the pod where the volume appears.
    pub path: PathBuf,
    /// What the volume holds when the pod starts.
    pub files: Vec<VolumeFile>,
    /// Whether the pod may write to it (a ConfigMap's, a Secret's, the token's may not).
    pub read_only: bool,
    /// The tmpfs's size limit in bytes (an `emptyDir`'s `sizeLimit`); the kernel's default
    /// (half the memory) if `None`.
    pub size_limit: Option<u64>,
}

/// A file of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeFile {
    /// Relative to the volume, without `..` (directories on the way are made).
    pub path: PathBuf,
    /// The file's bytes.
    pub contents: Vec<u8>,
    /// Permission bits (`defaultMode`, or an item's `mode`).
    pub mode: u32,
}

/// Checks what [`mount_volume`] would refuse, before anything is made.
pub(crate) fn validate(volume: &Volume) -> Result<(), String> {
    if !volume.path.is_absolute() || volume.path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("mount path {:?} must be absolute, without '..'", volume.path));
    }
    if volume.path == Path::new("/") {
        return Err("mount path may not be '/'".into());
    }
    for file in &volume.files {
        let plain = file.path.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || file.path.as_os_str().is_empty() {
            return Err(format!("file path {:?} must be relative, without '..'", file.path));
        }
    }
    Ok(())
}

/// Inside the pod's (new) mount namespace: mounts a tmpfs at the volume's path and writes its
/// files.
pub(crate) fn mount_volume(volume: &Volume) -> Result<(), Error> {
    let target = &volume.path;
    std::fs::create_dir_all(target).map_err(|error| Error::os(format!("make {}", target.display()), error))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let mut options = String::from("mode=0755");
    if let Some(limit) = volume.size_limit {
        options.push_str(&format!(",size={limit}"));
    }
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options.as_str()))
        .map_err(|errno| Error::os(format!("mount a tmpfs at {}", target.display()), errno.into()))?;
    for file in &volume.files {
        let path = target.join(&file.path);
        write_file(&path, file).map_err(|error| Error::os(format!("write {}", path.display()), error))?;
    }
    if volume.read_only {
        make_read_only(target, flags)?;
    }
    Ok(())
}

/// Remounts the volume read-only. The kernel refuses (`EBUSY`) while any file of it is open for
/// writing, and one of ours can be for a moment after we closed it: a process another thread
/// of the node spawns at that time (a container starting) holds a copy of every descriptor until
/// it execs, which closes them (`O_CLOEXEC`). So a refusal is retried, briefly.
fn make_read_only(target: &Path, flags: MsFlags) -> Result<(), Error> {
    const ATTEMPTS: u32 = 200;
    let flags = flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let mut attempt = 1;
    loop {
        match mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) if attempt < ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            Err(errno) => return Err(Error::os(format!("make {} read-only", target.display()), errno.into())),
        }
    }
}

fn write_file(path: &Path, file: &VolumeFile) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::namespace::write_new_file(path, &file.contents, file.mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> VolumeFile {
        VolumeFile { path: path.into(), contents: b"x".to_vec(), mode: 0o644 }
    }

    #[test]
    fn paths_that_could_leave_the_volume_are_refused() {
        let volume = |path: &str, files: Vec<VolumeFile>| Volume { path: path.into(), files, ..Volume::default() };
        let cases = [
            (volume("/etc/config", vec![file("a"), file("dir/b")]), true),
            (volume("etc/config", vec![]), false),
            (volume("/", vec![]), false),
            (volume("/etc/../x", vec![]), false),
            (volume("/etc/config", vec![file("../escape")]), false),
            (volume("/etc/config", vec![file("/abs")]), false),
            (volume("/etc/config", vec![file("a/../../b")]), false),
            (volume("/etc/config", vec![file("")]), false),
        ];
        for (volume, ok) in cases {
            assert_eq!(validate(&volume).is_ok(), ok, "{volume:?}");
        }
    }
}
