//! Pseudo-terminals for commands run with a TTY (`kubectl exec -t`): the node keeps the master
//! side, the command gets the slave as its standard input, output and error, and becomes the
//! leader of a new session with it as its controlling terminal (through util-linux `setsid
//! --ctty --wait`, which also passes on the exit status), so ^C reaches it as SIGINT.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;

use rustix::pty::OpenptFlags;

/// The program that starts a command in a new session with its terminal.
pub const SESSION_LEADER: &[&str] = &["/usr/bin/setsid", "--ctty", "--wait"];

/// The node's side of a pseudo-terminal.
#[derive(Debug)]
pub struct Terminal {
    master: OwnedFd,
}

/// The command's side: its standard input, output and error.
#[derive(Debug)]
pub struct TerminalStdio {
    /// The slave, for standard input.
    pub stdin: Stdio,
    /// The slave, for standard output.
    pub stdout: Stdio,
    /// The slave, for standard error.
    pub stderr: Stdio,
}

impl Terminal {
    /// A new pseudo-terminal.
    pub fn open() -> io::Result<(Terminal, TerminalStdio)> {
        let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let path =
            std::path::PathBuf::from(std::os::unix::ffi::OsStrExt::from_bytes(name.as_bytes()) as &std::ffi::OsStr);
        let slave = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open(path)?;
        let stdio = TerminalStdio {
            stdin: Stdio::from(slave.try_clone()?),
            stdout: Stdio::from(slave.try_clone()?),
            stderr: Stdio::from(slave),
        };
        Ok((Terminal { master }, stdio))
    }

    /// Sets the terminal's size in characters.
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
        Ok(rustix::termios::tcsetwinsize(&self.master, size)?)
    }

    /// The master side for reading (what the command writes) and for writing (what it reads),
    /// as files for tokio; reading ends once the command and its children have closed the slave.
    pub fn files(&self) -> io::Result<(tokio::fs::File, tokio::fs::File)> {
        let reader = File::from(self.master.try_clone()?);
        let writer = File::from(self.master.try_clone()?);
        Ok((tokio::fs::File::from_std(reader), tokio::fs::File::from_std(writer)))
    }
}
