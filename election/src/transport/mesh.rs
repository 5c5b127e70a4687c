//! The connection manager of a voting Rust peer (ZooKeeper's
//! `QuorumCnxManager`, spec §2): it listens on our election address, keeps at
//! most one connection per peer, and moves notifications between those
//! connections and one inbound queue.
//!
//! The rules it enforces:
//! * Only the connection dialled by the larger sid survives (§2.3). A dial to
//!   a larger sid is a request to be called back: preamble, then close. An
//!   accepted connection from a smaller sid is closed and answered by
//!   dialling that sid at its configured address; from a larger sid it is
//!   kept and replaces any older one; from our own sid it is refused.
//! * Dials happen on demand (a message waits for the peer), one in flight
//!   per sid, retried with [`Backoff::MESH`]; connect timeout 5 s.
//! * Per peer, an [`Outbox`]: newest message wins, and a new connection
//!   first replays the last message (§2.7).
//! * One [`Inbox`] of 100 messages for all peers, oldest dropped (§2.7).
//! * Every cap of §2 on input (preamble read timeout, address length and
//!   port, frame length 1..=524288); a frame that is not a notification is
//!   reported and dropped, as 3.5.8+ members do.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use super::connection::{CONNECT_TIMEOUT, Connection, FrameReader, FrameWriter, accept, dial};
use super::{Backoff, Entry, Inbox, Outbox, TransportError};
use crate::wire::{DecodeError, ElectionAddress, Notification, Preamble};

/// Connections from sids outside the config (watchers, strangers) we keep
/// at most. ZooKeeper has no limit; we would rather refuse than grow.
pub const MAX_UNKNOWN_PEERS: usize = 64;

/// How a mesh is set up.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    pub myid: i64,
    /// Where we accept election connections.
    pub listen: SocketAddr,
    /// Our election endpoint as our V1 preamble advertises it.
    pub advertised: ElectionAddress,
    /// The election address of every member we may dial (the config's).
    pub peers: BTreeMap<i64, ElectionAddress>,
    pub connect_timeout: Duration,
    /// How long an accepted connection may take to send its preamble
    /// (`tickTime × syncLimit` on a member).
    pub preamble_timeout: Duration,
    pub backoff: Backoff,
}

impl MeshConfig {
    pub fn new(
        myid: i64,
        listen: SocketAddr,
        advertised: ElectionAddress,
        peers: BTreeMap<i64, ElectionAddress>,
    ) -> MeshConfig {
        MeshConfig {
            myid,
            listen,
            advertised,
            peers,
            connect_timeout: CONNECT_TIMEOUT,
            preamble_timeout: Duration::from_secs(10),
            backoff: Backoff::MESH,
        }
    }
}

/// What the mesh hands to its user, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshEvent {
    Received {
        from: i64,
        notification: Notification,
    },
    /// A frame from `from` that is not a valid notification (dropped).
    Malformed { from: i64, error: DecodeError },
    /// A connection to `sid` is up.
    Connected { sid: i64 },
    /// The connection to `sid` closed and no other replaced it.
    Disconnected { sid: i64 },
}

#[derive(Debug, Default)]
struct Link {
    outbox: Outbox<Arc<Vec<u8>>>,
    wake: Arc<Notify>,
    connection: Option<(u64, AbortHandle)>,
    dialing: bool,
    /// Ends a dial loop's back-off early: the peer asked to be called back,
    /// so it is up now.
    redial: Arc<Notify>,
}

#[derive(Debug, Default)]
struct State {
    links: BTreeMap<i64, Link>,
    inbox: Inbox<(i64, Notification), MeshEvent>,
    next_connection: u64,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    config: MeshConfig,
    preamble: Preamble,
    state: Mutex<State>,
    inbox_ready: Notify,
    tasks: Mutex<JoinSet<()>>,
}

/// A running connection manager. Dropping it closes every connection.
#[derive(Debug)]
pub struct Mesh {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl Mesh {
    /// Binds the election listener and starts accepting.
    pub async fn bind(config: MeshConfig) -> io::Result<Mesh> {
        let preamble = Preamble::V1 {
            sid: config.myid,
            address: config.advertised.clone(),
        };
        preamble
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            preamble,
            state: Mutex::new(State::default()),
            inbox_ready: Notify::new(),
            tasks: Mutex::new(JoinSet::new()),
        });
        shared.spawn(accept_loop(shared.clone(), listener));
        Ok(Mesh { shared, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn myid(&self) -> i64 {
        self.shared.config.myid
    }

    /// Queues `payload` (an encoded notification) for `to`, replacing any
    /// message for it not yet sent, and dials `to` when no connection is up.
    pub fn send(&self, to: i64, payload: Vec<u8>) {
        let shared = &self.shared;
        let mut state = shared.lock();
        if !state.links.contains_key(&to) && !shared.config.peers.contains_key(&to) {
            // A sid outside the config that is not connected (a watcher that
            // left): we could never dial it, and an answer kept for its next
            // connection would be stale by then.
            return;
        }
        let link = state.links.entry(to).or_default();
        link.outbox.push(Arc::new(payload));
        if link.connection.is_some() {
            link.wake.notify_one();
        } else {
            shared.start_dialling(&mut state, to, false);
        }
    }

    /// The next message or connection event.
    pub async fn recv(&self) -> MeshEvent {
        loop {
            let next = self.shared.lock().inbox.pop();
            match next {
                Some(Entry::Message((from, notification))) => {
                    return MeshEvent::Received { from, notification };
                }
                Some(Entry::Event(event)) => return event,
                None => self.shared.inbox_ready.notified().await,
            }
        }
    }

    /// Messages dropped because the inbound queue was full.
    pub fn dropped_messages(&self) -> u64 {
        self.shared.lock().inbox.dropped()
    }

    /// The sids with a connection up right now.
    pub fn connected(&self) -> Vec<i64> {
        self.shared
            .lock()
            .links
            .iter()
            .filter(|(_, link)| link.connection.is_some())
            .map(|(sid, _)| *sid)
            .collect()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
    }
}

fn unknown_links(state: &State, config: &MeshConfig) -> usize {
    state
        .links
        .keys()
        .filter(|sid| !config.peers.contains_key(sid))
        .count()
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn<F>(&self, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task)
    }

    fn push_event(&self, state: &mut State, event: MeshEvent) {
        state.inbox.push_event(event);
        self.inbox_ready.notify_one();
    }

    /// Starts the one dial loop for `sid` unless one runs, it is connected,
    /// or we do not know where it is. `called_back`: dial at least once even
    /// with nothing to send, because the peer asked us to (§2.3).
    fn start_dialling(self: &Arc<Self>, state: &mut State, sid: i64, called_back: bool) {
        if state.closed || !self.config.peers.contains_key(&sid) {
            return;
        }
        let link = state.links.entry(sid).or_default();
        if link.connection.is_some() {
            return;
        }
        if link.dialing {
            if called_back {
                link.redial.notify_one();
            }
            return;
        }
        link.dialing = true;
        let redial = link.redial.clone();
        self.spawn(dial_loop(self.clone(), sid, called_back, redial));
    }

    /// Makes `connection` the one connection for `sid`, replacing (closing)
    /// any older one.
    fn install(self: &Arc<Self>, sid: i64, connection: Connection) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.next_connection += 1;
        let id = state.next_connection;
        let link = state.links.entry(sid).or_default();
        let replaced = link.connection.take();
        if let Some((_, old)) = &replaced {
            old.abort();
        }
        let wake = link.wake.clone();
        let handle = self.spawn(run_connection(self.clone(), sid, id, connection, wake));
        if let Some(link) = state.links.get_mut(&sid) {
            link.connection = Some((id, handle));
        }
        info!(sid, replaced = replaced.is_some(), "election connection up");
        self.push_event(&mut state, MeshEvent::Connected { sid });
    }

    /// Closes the connection to `sid`, if any (a smaller sid asking to be
    /// called back tells us it has none).
    fn tear_down(&self, sid: i64) {
        let mut state = self.lock();
        if let Some((_, handle)) = state.links.get_mut(&sid).and_then(|l| l.connection.take()) {
            handle.abort();
            self.push_event(&mut state, MeshEvent::Disconnected { sid });
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                shared.spawn(handle_inbound(shared.clone(), stream));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                warn!(error = %e, "accepting an election connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// §2.3, the acceptor's side.
async fn handle_inbound(shared: Arc<Shared>, stream: TcpStream) {
    let remote = stream.peer_addr().ok();
    let (preamble, connection) = match accept(stream, shared.config.preamble_timeout).await {
        Ok(accepted) => accepted,
        Err(e) => {
            warn!(?remote, error = %e, reason = e.reason(), "refused an election connection");
            return;
        }
    };
    let sid = preamble.sid();
    let myid = shared.config.myid;
    if sid < myid {
        drop(connection);
        if !shared.config.peers.contains_key(&sid) {
            warn!(
                sid,
                "invalid server id: a smaller sid we do not know dialled us"
            );
            return;
        }
        debug!(sid, "a smaller sid dialled; calling it back");
        shared.tear_down(sid);
        let mut state = shared.lock();
        shared.start_dialling(&mut state, sid, true);
    } else if sid == myid {
        warn!(
            ?remote,
            sid, "connection request from a server with our own id; closed"
        );
    } else {
        {
            let state = shared.lock();
            if !state.links.contains_key(&sid)
                && !shared.config.peers.contains_key(&sid)
                && unknown_links(&state, &shared.config) >= MAX_UNKNOWN_PEERS
            {
                warn!(sid, "too many connections from unknown sids; closed");
                return;
            }
        }
        shared.install(sid, connection);
    }
}

/// Dials `sid` until a connection is up or nothing waits for it any more
/// (but at least once when it asked to be called back).
async fn dial_loop(shared: Arc<Shared>, sid: i64, called_back: bool, redial: Arc<Notify>) {
    let myid = shared.config.myid;
    let mut attempt = 0u32;
    loop {
        let address = {
            let state = shared.lock();
            let wanted = state.links.get(&sid).is_some_and(|l| {
                l.connection.is_none() && (l.outbox.has_pending() || (called_back && attempt == 0))
            });
            if state.closed || !wanted {
                break;
            }
            shared.config.peers.get(&sid).cloned()
        };
        let Some(address) = address else { break };
        match dial(
            &address,
            &shared.preamble,
            shared.config.connect_timeout,
            &super::Security::PLAIN,
        )
        .await
        {
            Ok(connection) if sid > myid => {
                // We lose the tie-break: the preamble asked it to call back.
                drop(connection);
            }
            Ok(connection) => {
                shared.install(sid, connection);
                break;
            }
            Err(e) => {
                if attempt == 0 {
                    info!(sid, %address, error = %e, "cannot reach peer; retrying with back-off");
                } else {
                    debug!(sid, %address, error = %e, attempt, "dial failed");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.backoff.delay(attempt)) => {}
            _ = redial.notified() => {}
        }
        attempt = attempt.saturating_add(1);
    }
    if let Some(link) = shared.lock().links.get_mut(&sid) {
        link.dialing = false;
    }
}

/// One connection: the reader and the writer run until either fails; then
/// both directions close (§2.7).
async fn run_connection(
    shared: Arc<Shared>,
    sid: i64,
    id: u64,
    connection: Connection,
    wake: Arc<Notify>,
) {
    let (mut reader, mut writer) = connection.split();
    let ended = tokio::select! {
        e = read_loop(&shared, sid, &mut reader) => e,
        e = write_loop(&shared, sid, &wake, &mut writer) => e,
    };
    let mut state = shared.lock();
    let current = state
        .links
        .get(&sid)
        .and_then(|l| l.connection.as_ref())
        .is_some_and(|(current, _)| *current == id);
    if !current {
        return;
    }
    match &ended {
        TransportError::Closed => info!(sid, "election connection closed by the peer"),
        e => info!(sid, error = %e, reason = e.reason(), "election connection closed"),
    }
    let known = shared.config.peers.contains_key(&sid);
    if let Some(link) = state.links.get_mut(&sid) {
        link.connection = None;
    }
    if !known {
        // A stranger's link (a watcher's) goes with its connection.
        state.links.remove(&sid);
    }
    shared.push_event(&mut state, MeshEvent::Disconnected { sid });
    shared.start_dialling(&mut state, sid, false);
}

async fn read_loop(shared: &Shared, sid: i64, reader: &mut FrameReader) -> TransportError {
    loop {
        match reader.recv_notification().await {
            Ok(Ok(notification)) => {
                let mut state = shared.lock();
                state.inbox.push_message((sid, notification));
                shared.inbox_ready.notify_one();
            }
            Ok(Err(error)) => {
                let mut state = shared.lock();
                shared.push_event(&mut state, MeshEvent::Malformed { from: sid, error });
            }
            Err(e) => return e,
        }
    }
}

async fn write_loop(
    shared: &Shared,
    sid: i64,
    wake: &Notify,
    writer: &mut FrameWriter,
) -> TransportError {
    let mut first = true;
    loop {
        let next = {
            let mut state = shared.lock();
            let link = state.links.entry(sid).or_default();
            if std::mem::take(&mut first) {
                link.outbox.first_on_new_connection()
            } else {
                link.outbox.take()
            }
        };
        match next {
            Some(payload) => {
                if let Err(e) = writer.send(&payload).await {
                    return e;
                }
            }
            None => wake.notified().await,
        }
    }
}
