//! The processes `local` starts and later signals or stops: detached from
//! the terminal (their own process group, so Ctrl-C on `up` leaves them
//! running), logging to files, and recorded with the kernel's start time so
//! that a pid the kernel has since given to another program is never
//! signalled. Reads `/proc`, so this is Linux's.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zk_process::Signal;

/// A process `local` started: enough to find it again, and to be sure it is
/// still the same process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRecord {
    pub pid: u32,
    /// When the process started, in clock ticks after boot (field 22 of
    /// `/proc/<pid>/stat`): a pid and its start time name one process.
    pub start_time: u64,
    /// What it is, for messages (`ZooKeeper server`, `sidecar`).
    pub program: String,
}

/// Whether a recorded process still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Running,
    /// Stopped by SIGSTOP (or a debugger); SIGCONT resumes it.
    Paused,
    /// Exited, or its pid now belongs to another process.
    Exited,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Running => "running",
            Liveness::Paused => "paused",
            Liveness::Exited => "exited",
        }
    }

    pub fn is_alive(self) -> bool {
        self != Liveness::Exited
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The one-letter state (`R`, `S`, `T`, `Z`, …) of its main thread.
    pub state: char,
    /// Threads not yet exited, the main one included.
    pub threads: u64,
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); threads are field 20, start time 22.
    let state = fields.first()?.chars().next()?;
    let threads = fields.get(20 - 3)?.parse().ok()?;
    let start_time = fields.get(22 - 3)?.parse().ok()?;
    Some(Stat {
        state,
        threads,
        start_time,
    })
}

/// The liveness of a process with `stat` (or none) against its record. A
/// zombie has exited: it is only waiting for its parent to read its status.
/// But a main thread shows `Z` as soon as it has exited itself, while the
/// process's other threads may still be exiting with its files (and so
/// its listening ports) open: it has exited only when they are all gone.
pub fn liveness_of(stat: Option<Stat>, start_time: u64) -> Liveness {
    match stat {
        Some(stat) if stat.start_time == start_time => match stat.state {
            'Z' | 'X' | 'x' if stat.threads > 1 => Liveness::Running,
            'Z' | 'X' | 'x' => Liveness::Exited,
            'T' | 't' => Liveness::Paused,
            _ => Liveness::Running,
        },
        _ => Liveness::Exited,
    }
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl ProcessRecord {
    pub fn liveness(&self) -> Liveness {
        liveness_of(read_stat(self.pid), self.start_time)
    }

    /// Sends `signal`, but only to the recorded process.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        if !self.liveness().is_alive() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} (pid {}) is not running", self.program, self.pid),
            ));
        }
        zk_process::signal(self.pid, signal).map_err(io::Error::from)
    }
}

/// Starts `command` detached: its own process group, no stdin, standard
/// output and error appended to `log`.
pub fn spawn(
    command: &mut Command,
    log: &Path,
    program: &str,
) -> io::Result<(Child, ProcessRecord)> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    // The child exists until it is reaped, and we have not reaped it.
    let start_time = read_stat(pid).map(|s| s.start_time).ok_or_else(|| {
        io::Error::other(format!(
            "cannot read /proc/{pid}/stat of the {program} just started"
        ))
    })?;
    Ok((
        child,
        ProcessRecord {
            pid,
            start_time,
            program: program.to_owned(),
        },
    ))
}

/// Stops every recorded process that still runs: SIGTERM (and SIGCONT, so
/// that a paused one can act on it), then SIGKILL for those still running
/// after `grace`. Returns the ones that were running.
pub fn stop_all(records: &[&ProcessRecord], grace: Duration) -> Vec<ProcessRecord> {
    let running: Vec<ProcessRecord> = records
        .iter()
        .filter(|r| r.liveness().is_alive())
        .map(|r| (*r).clone())
        .collect();
    for record in &running {
        let _ = record.signal(Signal::SIGTERM);
        let _ = record.signal(Signal::SIGCONT);
    }
    if !wait_until_exited(&running, grace) {
        for record in &running {
            let _ = record.signal(Signal::SIGKILL);
        }
        wait_until_exited(&running, Duration::from_secs(5));
    }
    running
}

/// Waits until every record has exited; false when `timeout` passes first.
pub fn wait_until_exited(records: &[ProcessRecord], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if records.iter().all(|r| !r.liveness().is_alive()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (java) S 1 4242 4242 0 -1 4194560 12345 0 3 0 250 31 0 0 20 0 42 0 987654 5000000000 60000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_gives_state_and_start_time() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                state: 'S',
                threads: 42,
                start_time: 987654
            })
        );
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_skipped() {
        let odd = STAT.replace("(java)", "(a (b) c)");
        assert_eq!(parse_stat(&odd).map(|s| s.start_time), Some(987654));
        assert_eq!(parse_stat("4242 (java"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn liveness_follows_the_state_and_guards_against_pid_reuse() {
        let stat = |state| {
            Some(Stat {
                state,
                threads: 1,
                start_time: 7,
            })
        };
        assert_eq!(liveness_of(stat('S'), 7), Liveness::Running);
        assert_eq!(liveness_of(stat('R'), 7), Liveness::Running);
        assert_eq!(liveness_of(stat('T'), 7), Liveness::Paused);
        assert_eq!(liveness_of(stat('Z'), 7), Liveness::Exited);
        // Its main thread is gone, but other threads still hold its files.
        let exiting = Stat {
            state: 'Z',
            threads: 30,
            start_time: 7,
        };
        assert_eq!(liveness_of(Some(exiting), 7), Liveness::Running);
        // The same pid, started at another time: another process.
        assert_eq!(liveness_of(stat('S'), 8), Liveness::Exited);
        assert_eq!(liveness_of(None, 7), Liveness::Exited);
    }

    #[test]
    fn a_spawned_process_is_recorded_signalled_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let (mut child, record) = spawn(Command::new("sleep").arg("30"), &log, "sleep").unwrap();
        assert_eq!(record.liveness(), Liveness::Running);
        record.signal(Signal::SIGSTOP).unwrap();
        assert!(wait_for(|| record.liveness() == Liveness::Paused));
        let stopped = stop_all(&[&record], Duration::from_secs(5));
        assert_eq!(stopped, vec![record.clone()]);
        assert_eq!(record.liveness(), Liveness::Exited);
        assert!(record.signal(Signal::SIGTERM).is_err());
        let _ = child.wait();
        // A record of a process that has gone is never signalled.
        let stale = ProcessRecord {
            start_time: record.start_time + 1,
            ..record
        };
        assert_eq!(stale.liveness(), Liveness::Exited);
    }

    fn wait_for(check: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}
