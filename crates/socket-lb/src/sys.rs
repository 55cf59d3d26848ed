//! The bpf(2) commands this crate uses, and SO_NETNS_COOKIE: the only unsafe code in the
//! workspace. Each wrapper fills a zeroed `union bpf_attr` prefix of its command, passes
//! pointers that outlive the call, and turns the result into an owned descriptor or an error.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::program::Insn;

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_LINK_CREATE: libc::c_int = 28;

pub const BPF_MAP_TYPE_HASH: u32 = 1;
/// A hash map that evicts its least recently used element when full (always preallocated).
pub const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
/// Elements are allocated as they are added, not all at creation.
pub const BPF_F_NO_PREALLOC: u32 = 1;
pub const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub const BPF_CGROUP_INET4_CONNECT: u32 = 10;
pub const BPF_CGROUP_INET4_GETPEERNAME: u32 = 29;

/// `union bpf_attr` is 144 bytes in recent kernels; each command reads a prefix of it, and
/// the kernel requires whatever it does not know to be zero.
#[repr(C, align(8))]
struct Attr([u8; 144]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 144])
    }

    fn u32(&mut self, offset: usize, value: u32) -> &mut Self {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64(&mut self, offset: usize, value: u64) -> &mut Self {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn name(&mut self, offset: usize, name: &str) -> &mut Self {
        let bytes = &name.as_bytes()[..name.len().min(15)];
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
        self
    }
}

fn bpf(command: libc::c_int, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable 144-byte buffer; every pointer stored in it (keys,
    // values, instructions, licence, log) is borrowed by the caller for the whole call.
    let result = unsafe {
        libc::syscall(libc::SYS_bpf, command, attr as *mut Attr, std::mem::size_of::<Attr>() as libc::c_uint)
    };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// A map of `map_type`; `flags` as `map_flags`.
pub fn create_map(
    map_type: u32,
    name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, map_type).u32(4, key_size).u32(8, value_size).u32(12, max_entries).u32(16, flags).name(28, name);
    bpf(BPF_MAP_CREATE, &mut attr).map(owned)
}

/// Sets `key` to `value` (`BPF_ANY`). The slices must have the map's key and value sizes.
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.u32(0, map.as_raw_fd() as u32).u64(8, key.as_ptr() as u64).u64(16, value.as_ptr() as u64).u64(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Removes `key`; `Ok(false)` when it was not there.
pub fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = Attr::new();
    attr.u32(0, map.as_raw_fd() as u32).u64(8, key.as_ptr() as u64);
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Loads a program; on a verifier refusal the error carries the verifier's log.
pub fn load_program(
    program_type: u32,
    expected_attach_type: u32,
    name: &str,
    insns: &[Insn],
    license: &CStr,
) -> io::Result<OwnedFd> {
    let raw: Vec<u64> = insns
        .iter()
        .map(|i| {
            let mut bytes = [0u8; 8];
            bytes[0] = i.code;
            bytes[1] = i.regs;
            bytes[2..4].copy_from_slice(&i.off.to_ne_bytes());
            bytes[4..8].copy_from_slice(&i.imm.to_ne_bytes());
            u64::from_ne_bytes(bytes)
        })
        .collect();
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = Attr::new();
    attr.u32(0, program_type)
        .u32(4, raw.len() as u32)
        .u64(8, raw.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .name(48, name)
        .u32(68, expected_attach_type);
    bpf(BPF_PROG_LOAD, &mut attr).map(owned).map_err(|error| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        io::Error::new(error.kind(), format!("{error}; verifier: {}", tail.join(" | ")))
    })
}

/// Attaches `program` to the cgroup `target` through a BPF link: the attachment lasts as long
/// as the returned descriptor, so a process that dies (even by SIGKILL) leaves nothing attached.
pub fn link_create(program: BorrowedFd<'_>, target: BorrowedFd<'_>, attach_type: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, program.as_raw_fd() as u32).u32(4, target.as_raw_fd() as u32).u32(8, attach_type);
    bpf(BPF_LINK_CREATE, &mut attr).map(owned)
}

/// The cookie of the network namespace `socket` belongs to (Linux 5.14+).
pub fn netns_cookie(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` are live and sized as SO_NETNS_COOKIE writes them.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(cookie)
    }
}
