//! The inbound queue of `QuorumCnxManager` (spec §2.7), without I/O: one
//! queue shared by every peer, 100 messages deep, dropping the oldest
//! message when full. Connection events share the queue, so they stay in
//! order with the messages around them, but are never dropped.

use std::collections::VecDeque;

/// ZooKeeper's `RECV_CAPACITY`.
pub const RECV_CAPACITY: usize = 100;

/// An entry: a message, or an event that must not be lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<M, E> {
    Message(M),
    Event(E),
}

/// The shared inbound queue.
#[derive(Debug, Clone)]
pub struct Inbox<M, E> {
    entries: VecDeque<Entry<M, E>>,
    messages: usize,
    capacity: usize,
    dropped: u64,
}

impl<M, E> Default for Inbox<M, E> {
    fn default() -> Self {
        Inbox::with_capacity(RECV_CAPACITY)
    }
}

impl<M, E> Inbox<M, E> {
    pub fn with_capacity(capacity: usize) -> Inbox<M, E> {
        Inbox {
            entries: VecDeque::new(),
            messages: 0,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Queues a message; when `capacity` messages wait, the oldest goes.
    pub fn push_message(&mut self, message: M) {
        if self.messages >= self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .position(|e| matches!(e, Entry::Message(_)))
        {
            self.entries.remove(oldest);
            self.messages -= 1;
            self.dropped += 1;
        }
        self.entries.push_back(Entry::Message(message));
        self.messages += 1;
    }

    /// Queues an event; events are never dropped.
    pub fn push_event(&mut self, event: E) {
        self.entries.push_back(Entry::Event(event));
    }

    pub fn pop(&mut self) -> Option<Entry<M, E>> {
        let entry = self.entries.pop_front()?;
        if matches!(entry, Entry::Message(_)) {
            self.messages -= 1;
        }
        Some(entry)
    }

    /// How many messages were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_message_is_dropped_and_events_are_kept() {
        let mut inbox: Inbox<u32, &str> = Inbox::with_capacity(3);
        inbox.push_event("connected");
        for m in 1..=5 {
            inbox.push_message(m);
        }
        inbox.push_event("closed");
        assert_eq!(inbox.dropped(), 2);
        let all: Vec<_> = std::iter::from_fn(|| inbox.pop()).collect();
        assert_eq!(
            all,
            vec![
                Entry::Event("connected"),
                Entry::Message(3),
                Entry::Message(4),
                Entry::Message(5),
                Entry::Event("closed"),
            ]
        );
        assert!(inbox.is_empty());
        assert_eq!(Inbox::<u8, u8>::default().capacity, RECV_CAPACITY);
    }
}
