//! Files a pod's containers see at paths of their own (the kubelet's volumes: a ConfigMap's or
//! Secret's keys, the service account's token and CA, an empty scratch directory): each volume
//! is one tmpfs, made and filled in the pod's mount namespace only at its first whole mount, and
//! each of its other mounts is a bind of it (or of a `subPath` in it) at the mount's path,
//! read-only where asked. Two containers mounting one volume at different paths share its
//! files, as on any node. The host never sees the files; only the empty directory or file a
//! mount is bound on is made on the host's filesystem where it did not exist (the pod shares the
//! host's files otherwise). A volume mounted only by `subPath` is filled in a directory of
//! `/dev/shm` that is removed once its mounts are made. A `hostPath` volume binds the node's own
//! directory or file instead.
//!
//! Files are laid out as the kubelet's atomic writer lays them out, so that a running pod's
//! volume can change all at once ([`update_volume`]): they live in a directory named for the
//! moment it was written (`..2026_12_06_20_30_00.123456789`), `..data` links to that directory,
//! and each top-level name links into `..data` (`key -> ..data/key`). An update writes a new
//! directory and swaps `..data` with one `rename`, so a reader sees the old files or the new,
//! never a mix, and a program watching `..data` sees one change. A `subPath` mount is bound to
//! the file or directory its path led to when it was made, and keeps it (as the kubelet's
//! `subPath` mounts receive no updates).

use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::Error;

/// One volume of a pod: its files, and where its containers see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    /// The pod's name for it.
    pub name: String,
    /// What the volume holds (when the pod starts, or after an update).
    pub files: Vec<VolumeFile>,
    /// The tmpfs's size limit in bytes (an `emptyDir`'s `sizeLimit`); the kernel's default
    /// (half the memory) if `None`.
    pub size_limit: Option<u64>,
    /// Where it appears: each path once.
    pub mounts: Vec<VolumeMount>,
    /// A directory or file of the node's own filesystem (a `hostPath` volume) to bind instead of
    /// a tmpfs of `files` (checked, or made, by the caller before).
    pub host_path: Option<PathBuf>,
}

/// Where a volume appears in the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeMount {
    /// Absolute path in the pod.
    pub path: PathBuf,
    /// The file or directory of the volume bound there (relative, without `..`; a directory
    /// that is not there is made), or the whole volume if `None`.
    pub sub_path: Option<PathBuf>,
    /// Whether the pod's writes are refused there (always for a ConfigMap's, a Secret's, the
    /// token's).
    pub read_only: bool,
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

/// Whether `path` is relative, not empty, and names only plain components (no `..`, no `.`).
fn plain_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Checks what [`mount_volume`] would refuse, before anything is made.
pub(crate) fn validate(volume: &Volume) -> Result<(), String> {
    if volume.host_path.as_deref().is_some_and(|path| !path.is_absolute()) {
        return Err(format!("hostPath {:?} must be absolute", volume.host_path));
    }
    for mount in &volume.mounts {
        if !mount.path.is_absolute() || mount.path.components().any(|c| c == Component::ParentDir) {
            return Err(format!("mount path {:?} must be absolute, without '..'", mount.path));
        }
        if mount.path == Path::new("/") {
            return Err("mount path may not be '/'".into());
        }
        if let Some(sub_path) = mount.sub_path.as_deref().filter(|sub_path| !plain_relative(sub_path)) {
            return Err(format!("subPath {sub_path:?} must be relative, without '..'"));
        }
    }
    for file in &volume.files {
        if !plain_relative(&file.path) {
            return Err(format!("file path {:?} must be relative, without '..'", file.path));
        }
    }
    Ok(())
}

const FLAGS: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// Inside the pod's (new) mount namespace: makes the volume's tmpfs in a directory of its own
/// under `staging` (on the host's filesystem, empty there), writes its files, binds it (or a
/// `subPath` of it) at each mount's path, then lets go of the staging directory.
pub(crate) fn mount_volume(volume: &Volume, staging: &Path) -> Result<(), Error> {
    if let Some(host_path) = &volume.host_path {
        let root = std::fs::canonicalize(host_path)
            .map_err(|error| Error::os(format!("resolve hostPath {}", host_path.display()), error))?;
        return bind_all(&root, volume.mounts.iter());
    }
    // Made where it is first mounted whole, as a volume always was: no staging mount to take
    // down again (an unmount waits for an RCU grace period, most of a millisecond per pod).
    if let Some(whole) = volume.mounts.iter().position(|mount| mount.sub_path.is_none()) {
        let target = &volume.mounts[whole].path;
        std::fs::create_dir_all(target).map_err(|error| Error::os(format!("make {}", target.display()), error))?;
        let root = fill(volume, target)?;
        let others = volume.mounts.iter().enumerate().filter(|(i, _)| *i != whole).map(|(_, mount)| mount);
        bind_all(&root, others)?;
        return if volume.mounts[whole].read_only { make_read_only(target) } else { Ok(()) };
    }
    // Mounted only by subPath: made in a staging directory, which goes once the binds are made.
    std::fs::create_dir(staging).map_err(|error| Error::os(format!("make {}", staging.display()), error))?;
    let made = fill(volume, staging).and_then(|root| bind_all(&root, volume.mounts.iter()));
    // The binds keep the tmpfs; the staging mount and directory go, whatever happened.
    let _ = umount2(staging, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(staging);
    made
}

/// Mounts the volume's tmpfs at `target` and writes its files; returns the resolved root.
fn fill(volume: &Volume, target: &Path) -> Result<PathBuf, Error> {
    let mut options = String::from("mode=0755");
    if let Some(limit) = volume.size_limit {
        options.push_str(&format!(",size={limit}"));
    }
    mount(Some("tmpfs"), target, Some("tmpfs"), FLAGS, Some(options.as_str()))
        .map_err(|errno| Error::os(format!("mount a tmpfs at {}", target.display()), errno.into()))?;
    if !volume.files.is_empty() {
        write_payload(target, &volume.files)?;
    }
    std::fs::canonicalize(target).map_err(|error| Error::os("resolve the volume's root", error))
}

/// Binds the volume at `root` at each of `mounts`, then makes those that ask read-only (after
/// every bind: a bind of a read-only mount would be read-only too).
fn bind_all<'a>(root: &Path, mounts: impl Iterator<Item = &'a VolumeMount> + Clone) -> Result<(), Error> {
    for mount in mounts.clone() {
        bind(root, mount)?;
    }
    mounts.filter(|mount| mount.read_only).try_for_each(|mount| make_read_only(&mount.path))
}

/// Binds the volume at `root` (or the mount's `subPath` in it) at the mount's path.
fn bind(root: &Path, volume_mount: &VolumeMount) -> Result<(), Error> {
    let os = |what: String| move |error: std::io::Error| Error::os(what, error);
    let source = match &volume_mount.sub_path {
        None => root.to_path_buf(),
        Some(sub_path) => {
            let wanted = root.join(sub_path);
            if std::fs::symlink_metadata(&wanted).is_err() {
                std::fs::create_dir_all(&wanted).map_err(os(format!("make subPath {}", sub_path.display())))?;
            }
            // Through the volume's own links (a key of a ConfigMap), never out of it.
            let source =
                std::fs::canonicalize(&wanted).map_err(os(format!("resolve subPath {}", sub_path.display())))?;
            if !source.starts_with(root) {
                return Err(Error::Invalid {
                    what: format!("subPath {}", sub_path.display()),
                    reason: "leads out of its volume".into(),
                });
            }
            source
        }
    };
    let target = &volume_mount.path;
    let is_dir = source.is_dir();
    if is_dir {
        std::fs::create_dir_all(target).map_err(os(format!("make {}", target.display())))?;
    } else if std::fs::symlink_metadata(target).is_err() {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(os(format!("make {}", parent.display())))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(target)
            .map_err(os(format!("make {}", target.display())))?;
    }
    mount(Some(source.as_path()), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|errno| Error::os(format!("bind the volume at {}", target.display()), errno.into()))
}

/// Inside the pod's mount namespace: replaces the volume's files with `volume.files`, all at
/// once (see the module's note), through a mount of the whole volume (made writable for the
/// moment it takes if it is read-only). A volume mounted only by `subPath` is left as it is.
pub(crate) fn update_volume(volume: &Volume) -> Result<(), Error> {
    if volume.host_path.is_some() {
        return Ok(()); // the node's own files: nothing of ours to write
    }
    let Some(whole) = volume.mounts.iter().find(|mount| mount.sub_path.is_none()) else { return Ok(()) };
    let target = &whole.path;
    if whole.read_only {
        let flags = FLAGS | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .map_err(|errno| Error::os(format!("make {} writable", target.display()), errno.into()))?;
    }
    let written = write_payload(target, &volume.files);
    if whole.read_only {
        make_read_only(target)?;
    }
    written
}

/// Makes the bind mount at `target` read-only. The kernel refuses (`EBUSY`) while any file is
/// open for writing through that mount, and one of ours can be for a moment after we closed
/// it: a process another thread of the node spawns at that time (a container starting) holds a
/// copy of every descriptor until it execs, which closes them (`O_CLOEXEC`). So a refusal is
/// retried, briefly.
fn make_read_only(target: &Path) -> Result<(), Error> {
    const ATTEMPTS: u32 = 200;
    let flags = FLAGS | MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
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

/// The link to the current files' directory.
const DATA_LINK: &str = "..data";

/// Writes `files` into a new timestamped directory of `target`, points `..data` at it (one
/// `rename`), links each top-level name into `..data`, then removes the links no longer
/// wanted and the directory `..data` pointed at before.
fn write_payload(target: &Path, files: &[VolumeFile]) -> Result<(), Error> {
    let os = |what: String| move |error: std::io::Error| Error::os(what, error);
    let previous = std::fs::read_link(target.join(DATA_LINK)).ok();
    let stamp = timestamp_dir_name();
    let dir = target.join(&stamp);
    std::fs::create_dir(&dir).map_err(os(format!("make {}", dir.display())))?;
    for file in files {
        let path = dir.join(&file.path);
        write_file(&path, file).map_err(os(format!("write {}", path.display())))?;
    }
    let staged = target.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&stamp, &staged).map_err(os(format!("link {}", staged.display())))?;
    std::fs::rename(&staged, target.join(DATA_LINK))
        .map_err(os(format!("swap {DATA_LINK} in {}", target.display())))?;
    let wanted: std::collections::BTreeSet<&std::ffi::OsStr> =
        files.iter().filter_map(|file| file.path.components().next()).map(|c| c.as_os_str()).collect();
    for name in &wanted {
        let link = target.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link)
                .map_err(os(format!("link {}", link.display())))?;
        }
    }
    let entries = std::fs::read_dir(target).map_err(os(format!("list {}", target.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_link = entry.file_type().is_ok_and(|kind| kind.is_symlink());
        if is_link && !name.to_string_lossy().starts_with("..") && !wanted.contains(name.as_os_str()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(previous) = previous.filter(|previous| previous.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(target.join(previous));
    }
    Ok(())
}

/// `..2026_12_06_20_30_00.123456789`, as the kubelet names them (UTC here), for now: strictly
/// later than the name before it, so two writes in the same nanosecond still differ.
fn timestamp_dir_name() -> String {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let nanos = {
        let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = (*last + 1).max(now.as_nanos());
        *last
    };
    dir_name(nanos)
}

/// The directory name for `nanos` after the Unix epoch.
fn dir_name(nanos: u128) -> String {
    let (secs, sub) = ((nanos / 1_000_000_000) as i64, (nanos % 1_000_000_000) as u32);
    let at = chrono::DateTime::from_timestamp(secs, sub).unwrap_or_default();
    at.format("..%Y_%m_%d_%H_%M_%S.%f").to_string()
}

fn write_file(path: &Path, file: &VolumeFile) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::namespace::write_new_file(path, &file.contents, file.mode)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(path: &str) -> VolumeFile {
        VolumeFile { path: path.into(), contents: b"x".to_vec(), mode: 0o644 }
    }

    /// In a mount namespace of its own (a thread's), as a pod's.
    fn in_own_mount_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        use nix::sched::{unshare, CloneFlags};
        crate::namespace::on_thread(|| {
            unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS).unwrap();
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>).unwrap();
            Ok(f())
        })
        .unwrap()
    }

    #[test]
    fn the_staging_directory_goes_once_the_mounts_are_made_or_failed() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, target) = (dir.path().join("staging"), dir.path().join("target"));
        let volume = Volume {
            name: "v".into(),
            files: vec![file("a")],
            size_limit: None,
            mounts: vec![VolumeMount { path: target.clone(), sub_path: None, read_only: true }],
            host_path: None,
        };
        let seen = in_own_mount_namespace(|| {
            mount_volume(&volume, &staging).unwrap();
            let made = std::fs::read_to_string(target.join("a")).unwrap();
            // A bind that cannot be made (a directory's subPath onto a file) fails, and still
            // leaves no staging directory behind.
            std::fs::write(dir.path().join("plain-file"), "").unwrap();
            let bad = Volume {
                mounts: vec![VolumeMount {
                    path: dir.path().join("plain-file"),
                    sub_path: Some("dir".into()),
                    read_only: false,
                }],
                ..volume.clone()
            };
            let failed = mount_volume(&bad, &staging).is_err();
            (made, failed, staging.exists())
        });
        assert_eq!(seen, ("x".to_string(), true, false));
        assert!(!staging.exists());
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "the files were the mount namespace's only");
    }

    #[test]
    fn timestamped_directories_are_named_as_the_kubelets() {
        let day = 86_400 * 1_000_000_000u128;
        assert_eq!(dir_name(0), "..1970_01_01_00_00_00.000000000");
        assert_eq!(dir_name(20_428 * day + 73_800_000_000_007), "..2025_12_06_20_30_00.000000007");
        assert_eq!(dir_name(19_782 * day + 86_399_123_456_789), "..2024_02_29_23_59_59.123456789");
        let (a, b) = (timestamp_dir_name(), timestamp_dir_name());
        assert!(a.starts_with("..20") && a.len() == "..2026_12_06_20_30_00.123456789".len(), "{a}");
        assert!(a < b, "{a} then {b}");
    }

    #[test]
    fn a_payload_is_swapped_in_at_once_and_what_is_gone_goes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let with =
            |path: &str, contents: &str| VolumeFile { path: path.into(), contents: contents.into(), mode: 0o600 };
        write_payload(target, &[with("a", "1"), with("sub/b", "2")]).unwrap();
        let first = std::fs::read_link(target.join(DATA_LINK)).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(target.join("sub/b")).unwrap(), "2");
        assert_eq!(std::fs::read_link(target.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(std::fs::metadata(target.join("a")).unwrap().permissions().mode() & 0o777, 0o600);

        write_payload(target, &[with("a", "changed"), with("c", "3")]).unwrap();
        let second = std::fs::read_link(target.join(DATA_LINK)).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "changed");
        assert_eq!(std::fs::read_to_string(target.join("c")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(target.join("sub")).is_err(), "a key that went is unlinked");
        assert!(!target.join(&first).exists(), "the old directory is removed");
        let mut names: Vec<String> =
            std::fs::read_dir(target).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, [second.to_string_lossy().into_owned(), "..data".into(), "a".into(), "c".into()]);
    }

    #[test]
    fn paths_that_could_leave_the_volume_are_refused() {
        let at = |path: &str, sub_path: Option<&str>| VolumeMount {
            path: path.into(),
            sub_path: sub_path.map(PathBuf::from),
            read_only: false,
        };
        let volume =
            |path: &str, files: Vec<VolumeFile>| Volume { files, mounts: vec![at(path, None)], ..Volume::default() };
        let with_sub_path =
            |sub_path: &str| Volume { mounts: vec![at("/etc/app.conf", Some(sub_path))], ..Volume::default() };
        let cases = [
            (volume("/etc/config", vec![file("a"), file("dir/b")]), true),
            (volume("etc/config", vec![]), false),
            (volume("/", vec![]), false),
            (volume("/etc/../x", vec![]), false),
            (volume("/etc/config", vec![file("../escape")]), false),
            (volume("/etc/config", vec![file("/abs")]), false),
            (volume("/etc/config", vec![file("a/../../b")]), false),
            (volume("/etc/config", vec![file("")]), false),
            (with_sub_path("app.conf"), true),
            (with_sub_path("dir/app.conf"), true),
            (with_sub_path("../app.conf"), false),
            (with_sub_path("/etc/passwd"), false),
            (with_sub_path("a/../../b"), false),
            (with_sub_path(""), false),
        ];
        for (volume, ok) in cases {
            assert_eq!(validate(&volume).is_ok(), ok, "{volume:?}");
        }
    }
}
