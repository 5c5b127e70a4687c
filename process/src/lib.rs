//! zk-process: real Apache ZooKeeper server processes.
//!
//! [`install`] finds ZooKeeper and Java and builds the command that runs a
//! server; [`fourlw`] asks a server `ruok`, `srvr`, `mntr` and `conf`. Used by
//! `zk-operator local`, by the sidecar's probe of its own server, by the
//! benchmarks and by every test that runs a real server. [`listen`] binds
//! the sidecar's and the operator's HTTP listeners on IPv4 and IPv6 alike;
//! [`stores`] writes a member's quorum TLS stores by rename-into-place.

#![warn(clippy::unwrap_used)]

pub mod fourlw;
pub mod install;
pub mod listen;
pub mod stores;

use std::net::SocketAddr;

pub use fourlw::{FourLetterError, Mode, Srvr};
pub use install::{DiscoverError, Installation};
pub use listen::{Listening, listen};
pub use nix::sys::signal::Signal;
pub use nix::unistd::Pid;

/// Fails with the OS error when something already listens on `addr`.
pub fn ensure_port_free(addr: SocketAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}

/// Sends a signal to a process.
pub fn signal(pid: u32, signal: Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::Error::ESRCH)?;
    nix::sys::signal::kill(Pid::from_raw(pid), signal)
}

/// Whether a process with this pid exists (and may be signalled by us).
pub fn is_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|pid| nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok())
}
