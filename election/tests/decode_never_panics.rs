//! Decoding arbitrary bytes returns a value or an error, never a panic, and
//! never reads past a declared length. (The same property as the cargo-fuzz
//! target in `election/fuzz`, run in the normal test suite.)

use proptest::prelude::*;
use zk_election::config::QuorumConfig;
use zk_election::sasl::{Credentials, DigestMd5};
use zk_election::wire::{AUTH_MAGIC, AuthPacket, Notification, Preamble, split_frame};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Preamble::decode(&bytes);
        let _ = Notification::decode(&bytes);
        let _ = QuorumConfig::parse(&bytes);
        if let Ok(Some((payload, used))) = split_frame(&bytes) {
            prop_assert!(used <= bytes.len());
            prop_assert_eq!(payload.len() + 4, used);
        }
    }

    /// A member's quorum SASL bytes: an auth packet (the magic kept, so the
    /// token's length is what varies) and a challenge or final message of
    /// any text the decoder and the DIGEST-MD5 client get.
    #[test]
    fn sasl_packets_and_challenges(
        status in any::<i32>(),
        len in prop_oneof![Just(-1i32), 0i32..400, any::<i32>()],
        rest in proptest::collection::vec(any::<u8>(), 0..400),
        text in ".{0,300}",
    ) {
        let mut bytes = AUTH_MAGIC.to_be_bytes().to_vec();
        bytes.extend_from_slice(&status.to_be_bytes());
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&rest);
        if let Ok(Some((packet, used))) = AuthPacket::decode(&bytes) {
            prop_assert!(used <= bytes.len());
            prop_assert_eq!(used, 16 + packet.token.map_or(0, |t| t.len()));
        }
        let mut client = DigestMd5::new(Credentials {
            username: "learner".into(),
            password: "secret".into(),
        });
        let _ = client.respond(text.as_bytes());
        let _ = client.respond(&rest);
        let _ = client.verify(text.as_bytes());
    }

    /// Plausible frames: a valid header followed by random fields, so the
    /// decoder's deeper branches (versions, config lengths) are exercised.
    #[test]
    fn structured_notifications(
        state in 0i32..5,
        size in prop_oneof![Just(28usize), Just(36), Just(40), Just(44), 44usize..300],
        version in prop_oneof![Just(0i32), Just(1), Just(2), any::<i32>()],
        config_len in prop_oneof![Just(0i32), 0i32..300, any::<i32>()],
        filler in proptest::collection::vec(any::<u8>(), 300),
    ) {
        let mut payload = filler[..size].to_vec();
        payload[0..4].copy_from_slice(&state.to_be_bytes());
        if size >= 44 {
            payload[36..40].copy_from_slice(&version.to_be_bytes());
            payload[40..44].copy_from_slice(&config_len.to_be_bytes());
        }
        if let Ok(n) = Notification::decode(&payload)
            && let Some(config) = &n.config
        {
            prop_assert!(44 + config.len() <= payload.len());
            // A decoded version-2 notification encodes back to its prefix.
            if n.version == 2 && !config.is_empty() {
                let encoded = n.encode().unwrap();
                prop_assert_eq!(&payload[..encoded.len()], &encoded[..]);
            }
        }
    }

    #[test]
    fn preambles_round_trip(sid in 0i64..i64::MAX, a in any::<u8>(), b in any::<u8>(), port in any::<u16>()) {
        let preamble = Preamble::V1 {
            sid,
            address: zk_election::wire::ElectionAddress::new(format!("10.{a}.{b}.1"), port),
        };
        let bytes = preamble.encode().unwrap();
        prop_assert_eq!(Preamble::decode(&bytes).unwrap(), Some((preamble, bytes.len())));
    }
}
