//! The election port over TCP (spec §2), with tokio. Thin: it moves checked
//! frames between sockets and the sans-IO state machine and enforces the
//! connection rules; it decides nothing about elections.
//!
//! * [`connection`]: one connection — dial (connect timeout, preamble in one
//!   write), accept (preamble under a read timeout), framed send/receive with
//!   the caps of §2. Reused by the sidecar's watcher.
//! * [`outbox`]: the per-peer send queue (capacity 1, newest wins, replay of
//!   the last message on a new connection), pure so the simulator shares it.

pub mod connection;
pub mod outbox;

pub use connection::{
    CONNECT_TIMEOUT, Connection, FrameReader, FrameWriter, MAX_PREAMBLE_LEN, TransportError,
    accept, dial,
};
pub use outbox::Outbox;
