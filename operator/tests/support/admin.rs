//! A stand-in for a ZooKeeper ensemble's membership, behind the operator's
//! `EnsembleAdmin`: it holds a committed config, applies the `reconfig`s it
//! is given (checking the expected version, as ZooKeeper does) and logs
//! them, so tests can assert the order of changes.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use zk_ensemble::plan::Membership;
use zk_ensemble::{Myid, Role};
use zk_operator::reconfig::{EnsembleAdmin, Reconfig, ReconfigError, Target};

#[derive(Default)]
struct State {
    committed: Option<Membership>,
    log: Vec<String>,
    /// Reads and reconfigs never answer (an ensemble that hangs).
    stalled: bool,
}

#[derive(Clone, Default)]
pub struct FakeAdmin {
    state: Arc<Mutex<State>>,
}

impl FakeAdmin {
    /// An ensemble that cannot be reached.
    pub fn unreachable() -> FakeAdmin {
        FakeAdmin::default()
    }

    /// An ensemble whose committed config lists `myids` (roles by myid).
    pub fn committed(myids: &[u8]) -> FakeAdmin {
        let admin = FakeAdmin::default();
        admin.set(myids);
        admin
    }

    pub fn set(&self, myids: &[u8]) {
        let servers = myids
            .iter()
            .map(|n| {
                let myid = Myid::new(i64::from(*n)).unwrap();
                (myid, myid.role())
            })
            .collect();
        self.state.lock().unwrap().committed = Some(Membership {
            version: 0x1_0000_0000,
            servers,
        });
    }

    /// From now on no read or reconfig answers; each one asked is logged
    /// as `stalled read` or `stalled reconfig`.
    pub fn stall(&self) {
        self.state.lock().unwrap().stalled = true;
    }

    /// The committed servers' myids.
    pub fn servers(&self) -> Vec<u8> {
        let state = self.state.lock().unwrap();
        state
            .committed
            .iter()
            .flat_map(|c| c.servers.keys().map(|m| m.get()))
            .collect()
    }

    /// Every reconfig so far: `add server.4=…`, `remove 5`.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

impl EnsembleAdmin for FakeAdmin {
    fn read_config<'a>(
        &'a self,
        _target: &'a Target,
    ) -> BoxFuture<'a, Result<Membership, ReconfigError>> {
        let mut state = self.state.lock().unwrap();
        if state.stalled {
            state.log.push("stalled read".to_owned());
            return Box::pin(std::future::pending());
        }
        let committed = state.committed.clone();
        Box::pin(async move { committed.ok_or(ReconfigError::NoMembers) })
    }

    fn reconfig<'a>(
        &'a self,
        _target: &'a Target,
        change: &'a Reconfig,
    ) -> BoxFuture<'a, Result<Membership, ReconfigError>> {
        let mut state = self.state.lock().unwrap();
        if state.stalled {
            state.log.push("stalled reconfig".to_owned());
            return Box::pin(std::future::pending());
        }
        let result = match state.committed.as_mut() {
            None => Err(ReconfigError::NoMembers),
            Some(committed) => {
                let (version, entry) = match change {
                    Reconfig::Add {
                        myid,
                        line,
                        version,
                    } => (*version, format!("add {line} ({})", role(*myid))),
                    Reconfig::Remove { myid, version } => (*version, format!("remove {myid}")),
                };
                if version != committed.version {
                    Err(ReconfigError::Changed { expected: version })
                } else {
                    match change {
                        Reconfig::Add { myid, .. } => {
                            committed.servers.insert(*myid, myid.role());
                        }
                        Reconfig::Remove { myid, .. } => {
                            committed.servers.remove(myid);
                        }
                    }
                    committed.version += 1;
                    state.log.push(entry);
                    Ok(state.committed.clone().unwrap())
                }
            }
        };
        Box::pin(async move { result })
    }
}

fn role(myid: Myid) -> &'static str {
    match myid.role() {
        Role::Voter => "voter",
        Role::Observer => "observer",
    }
}
