//! The per-peer send queue of `QuorumCnxManager` (spec §2.7), without I/O:
//! capacity 1 where a newer message replaces one not yet sent, and the last
//! message handed to the wire is sent again first on a new connection when
//! nothing newer waits. The mesh and the simulator both use it, so the
//! simulated network delivers exactly what the real one would.

/// One peer's outbound queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox<T> {
    pending: Option<T>,
    last: Option<T>,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Outbox {
            pending: None,
            last: None,
        }
    }
}

impl<T: Clone> Outbox<T> {
    /// Queues `message`, replacing any message not yet sent (newest wins).
    pub fn push(&mut self, message: T) {
        self.pending = Some(message);
    }

    /// The next message to write on the current connection, remembered as
    /// the last one sent.
    pub fn take(&mut self) -> Option<T> {
        let message = self.pending.take()?;
        self.last = Some(message.clone());
        Some(message)
    }

    /// The first message to write on a new connection: the queued one, or,
    /// when nothing is queued, the last one sent again (`SendWorker.run`), so
    /// a peer that lost the connection mid-way still gets it.
    pub fn first_on_new_connection(&mut self) -> Option<T> {
        self.take().or_else(|| self.last.clone())
    }

    /// Whether a message waits to be sent.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_message_wins_and_the_last_is_replayed() {
        let mut outbox = Outbox::default();
        assert_eq!(outbox.first_on_new_connection(), None);
        outbox.push(1);
        outbox.push(2);
        assert!(outbox.has_pending());
        assert_eq!(outbox.take(), Some(2));
        assert_eq!(outbox.take(), None);
        // A new connection with nothing queued replays the last message.
        assert_eq!(outbox.first_on_new_connection(), Some(2));
        // With something queued, that goes first and is not followed by a replay.
        outbox.push(3);
        assert_eq!(outbox.first_on_new_connection(), Some(3));
        assert_eq!(outbox.take(), None);
        assert_eq!(outbox.first_on_new_connection(), Some(3));
    }
}
