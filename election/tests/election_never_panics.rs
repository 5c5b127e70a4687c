//! The election state machine on arbitrary events from arbitrary sids
//! (votes with any field values, including i64::MIN/MAX clocks): it never
//! panics, never sends to itself, never sets a timer in the past, and names
//! a leader exactly when it is not LOOKING.

use std::time::Duration;

use proptest::prelude::*;
use zk_election::fle::{Action, Election, Event, Settings, Timer};
use zk_election::quorum::{QuorumVerifier, Verifiers};
use zk_election::vote::Vote;
use zk_election::wire::ServerState;

fn any_sid() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(1i64),
        Just(2),
        Just(3),
        Just(128),
        Just((1 << 62) + 3),
        Just(i64::MIN),
        Just(i64::MAX),
        any::<i64>(),
    ]
}

fn any_number() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..4,
        Just(-1),
        Just(i64::MIN),
        Just(i64::MAX),
        any::<i64>()
    ]
}

fn any_vote() -> impl Strategy<Value = Vote> {
    (
        0usize..4,
        any_sid(),
        any_number(),
        any_number(),
        any_number(),
        prop_oneof![Just(0i32), Just(2), any::<i32>()],
    )
        .prop_map(
            |(state, leader, zxid, election_epoch, peer_epoch, version)| Vote {
                state: [
                    ServerState::Looking,
                    ServerState::Following,
                    ServerState::Leading,
                    ServerState::Observing,
                ][state],
                leader,
                zxid,
                election_epoch,
                peer_epoch,
                version,
            },
        )
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (any_sid(), any_vote()).prop_map(|(from, vote)| Event::Received { from, vote }),
        1 => any_sid().prop_map(|sid| Event::Connected { sid }),
        1 => any_sid().prop_map(|sid| Event::Disconnected { sid }),
        2 => prop_oneof![Just(Timer::Notification), Just(Timer::Finalize), Just(Timer::Tick)]
            .prop_map(Event::Timer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_events(
        myid in prop_oneof![Just(1i64), Just(3), Just(128)],
        steps in proptest::collection::vec((0u64..3000, any_event()), 0..150),
    ) {
        let verifiers = Verifiers::new(QuorumVerifier::majority([1, 2, 3]), 0);
        let (mut election, _) = Election::start(Settings::new(myid, verifiers), Duration::ZERO);
        let mut now = Duration::ZERO;
        for (advance, event) in steps {
            now += Duration::from_millis(advance);
            // Drivers fire timers at their deadline; so do we, half the time.
            let event = match (event, election.next_deadline()) {
                (Event::Timer(_), Some((timer, at))) if advance % 2 == 0 => {
                    now = now.max(at);
                    Event::Timer(timer)
                }
                (event, _) => event,
            };
            for action in election.step(now, event) {
                match action {
                    Action::Send { to, .. } => prop_assert_ne!(to, myid),
                    Action::SetTimer { at, .. } => prop_assert!(at >= now),
                    _ => {}
                }
            }
            prop_assert_eq!(
                election.leader().is_some(),
                election.state() != ServerState::Looking
            );
        }
    }
}
