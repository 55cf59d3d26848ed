//! Room for the descriptors a node holds: a few per pod (its namespaces, pipes, sockets).

use std::fs::File;

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::Error;

/// Makes room for `count` open descriptors in this process: raises the soft limit on open
/// files to the hard limit if it is lower than `count` (as the Go runtime does for the
/// kubelet), and grows the process's descriptor table to hold `count` now.
///
/// Call it before the process starts threads. The kernel grows the table by doubling when a
/// descriptor beyond it is opened, and while threads share the table each growth waits for an
/// RCU grace period, around ten milliseconds, in whatever thread opened that descriptor: in a
/// burst of pod starts, the thread making sandboxes. With one thread it costs nothing.
///
/// Returns how many descriptors there is room for (less than `count` if the hard limit is
/// lower).
pub fn reserve_descriptors(count: u64) -> Result<u64, Error> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|errno| Error::os("read the open-files limit", errno.into()))?;
    let room = count.min(hard);
    if soft < room {
        setrlimit(Resource::RLIMIT_NOFILE, room, hard)
            .map_err(|errno| Error::os("raise the open-files limit", errno.into()))?;
    }
    // Duplicate a descriptor to the highest number needed, then close it: the table keeps its size.
    let highest = i32::try_from(room.saturating_sub(1)).unwrap_or(i32::MAX);
    if highest > 2 {
        let null = File::open("/dev/null").map_err(|error| Error::os("open /dev/null", error))?;
        let duplicate = fcntl(&null, FcntlArg::F_DUPFD_CLOEXEC(highest))
            .map_err(|errno| Error::os("grow the descriptor table", errno.into()))?;
        nix::unistd::close(duplicate).map_err(|errno| Error::os("close the table-growing descriptor", errno.into()))?;
    }
    Ok(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_for_descriptors_up_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let room = reserve_descriptors(2048).unwrap();
        assert_eq!(room, 2048.min(hard));
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert!(soft >= room);
        // A descriptor near the top can be had now.
        let null = File::open("/dev/null").unwrap();
        let high = fcntl(&null, FcntlArg::F_DUPFD_CLOEXEC(i32::try_from(room - 1).unwrap())).unwrap();
        assert_eq!(i64::from(high), i64::try_from(room - 1).unwrap());
        nix::unistd::close(high).unwrap();
    }
}
