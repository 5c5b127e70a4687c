//! Every decoder of the election port on arbitrary bytes: no panic, no
//! out-of-bounds read, no huge allocation. Run with
//! `cargo fuzz run decode` from `election/` (needs a nightly toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zk_election::config::QuorumConfig;
use zk_election::sasl::{Credentials, DigestMd5};
use zk_election::wire::{AuthPacket, Notification, Preamble, split_frame};

fuzz_target!(|data: &[u8]| {
    let _ = Preamble::decode(data);
    let _ = Notification::decode(data);
    let _ = QuorumConfig::parse(data);
    let _ = AuthPacket::decode(data);
    let mut sasl = DigestMd5::new(Credentials {
        username: "learner".into(),
        password: "secret".into(),
    });
    let _ = sasl.respond(data);
    let _ = sasl.verify(data);
    if let Ok(Some((payload, _))) = split_frame(data) {
        let _ = Notification::decode(payload);
    }
});
