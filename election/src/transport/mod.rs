//! The election port over TCP (spec §2), with tokio. Thin: it moves checked
//! frames between sockets and the sans-IO state machine and enforces the
//! connection rules; it decides nothing about elections.
//!
//! * [`connection`]: one connection — dial (connect timeout, preamble in one
//!   write), accept (preamble under a read timeout), framed send/receive with
//!   the caps of §2. Reused by the sidecar's watcher.
//! * [`mesh`]: a voting peer's connection manager (`QuorumCnxManager`): one
//!   connection per pair by the larger-sid rule, dials on demand with
//!   [`backoff`], per-peer [`outbox`]es, one shared [`inbox`].
//! * [`tls`]: the connector for `sslQuorum=true`, from a member's PEM stores.
//! * [`outbox`], [`inbox`]: the queue semantics of §2.7, pure, so the
//!   simulator shares them.

pub mod backoff;
pub mod connection;
pub mod inbox;
pub mod mesh;
pub mod outbox;
pub mod tls;

pub use backoff::Backoff;
pub use connection::{
    CONNECT_TIMEOUT, Connection, FrameReader, FrameWriter, MAX_PREAMBLE_LEN, Security,
    TransportError, accept, dial,
};
pub use inbox::{Entry, Inbox, RECV_CAPACITY};
pub use mesh::{Mesh, MeshConfig, MeshEvent};
pub use outbox::Outbox;
pub use tls::{Connector, TlsError};
