//! Properties of rendering that must hold for every ensemble zookube runs:
//! 1..=15 odd voters, 0..=20 observers, any namespace, either placement.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use zk_ensemble::{EnsembleSpec, Myid, Placement, Role, ZooCfg, validate};

fn specs() -> impl Strategy<Value = EnsembleSpec> {
    (
        (0u32..8).prop_map(|k| 2 * k + 1),
        0u32..=20,
        "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        "[a-z][a-z0-9-]{0,20}",
        any::<bool>(),
        proptest::collection::btree_map("[a-z][a-zA-Z.]{1,12}", "[ -~]{0,20}", 0..4),
    )
        .prop_map(|(voters, observers, name, namespace, loopback, extra)| {
            let mut spec = EnsembleSpec::new(name, namespace);
            spec.voters = voters;
            spec.observers = observers;
            spec.overrides = extra
                .into_iter()
                .filter(|(k, _)| !zk_ensemble::spec::is_owned_key(k))
                .collect::<BTreeMap<_, _>>();
            if loopback {
                spec.placement = Placement::Loopback {
                    base: Ipv4Addr::new(127, 0, 0, 1),
                    data_root: "/var/tmp/zk".into(),
                    tls_root: "/var/tmp/zk-tls".into(),
                };
            }
            spec
        })
}

proptest! {
    #[test]
    fn every_member_finds_itself_with_its_own_myid_and_role(spec in specs()) {
        for member in spec.members() {
            let cfg = spec.zoo_cfg(member.myid).unwrap();
            let own = cfg.server(i64::from(member.myid)).expect("the member is listed");
            prop_assert_eq!(own.role, member.role);
            prop_assert_eq!(own.host(), member.host.as_str());
            let expected = if member.myid.get() < 128 { Role::Voter } else { Role::Observer };
            prop_assert_eq!(member.role, expected);
        }
    }

    #[test]
    fn all_members_get_the_same_server_list(spec in specs()) {
        let lists: Vec<String> = spec
            .members()
            .iter()
            .map(|m| spec.zoo_cfg(m.myid).unwrap().render_dynamic())
            .collect();
        prop_assert!(lists.windows(2).all(|w| w[0] == w[1]));
        let parsed = ZooCfg::parse(&lists[0]).unwrap();
        prop_assert_eq!(parsed.voters().len(), spec.voters as usize);
        prop_assert_eq!(parsed.observers().len(), spec.observers as usize);
        if spec.placement == Placement::Kubernetes {
            // On Kubernetes one ConfigMap serves every pod: identical bytes.
            let files: Vec<String> = spec
                .members()
                .iter()
                .map(|m| spec.zoo_cfg(m.myid).unwrap().render())
                .collect();
            prop_assert!(files.windows(2).all(|w| w[0] == w[1]));
        }
    }

    #[test]
    fn render_parse_render_is_byte_identical(spec in specs()) {
        for member in spec.members() {
            let text = spec.zoo_cfg(member.myid).unwrap().render();
            let again = ZooCfg::parse(&text).unwrap().render();
            prop_assert_eq!(&again, &text);
            prop_assert_eq!(spec.zoo_cfg(member.myid).unwrap().render(), text, "rendering is deterministic");
        }
    }

    #[test]
    fn validation_accepts_everything_render_produces(spec in specs()) {
        for member in spec.members() {
            let cfg = ZooCfg::parse(&spec.zoo_cfg(member.myid).unwrap().render()).unwrap();
            let summary = validate(&cfg, &member.myid.file_contents());
            prop_assert!(summary.is_ok(), "{:?}", summary);
            let summary = summary.unwrap();
            prop_assert_eq!(summary.voters, spec.voters as usize);
            prop_assert_eq!(summary.observers, spec.observers as usize);
            prop_assert_eq!(summary.role, member.role);
        }
    }

    #[test]
    fn even_voter_counts_never_render(k in 1u32..8, observers in 0u32..=20) {
        let mut spec = EnsembleSpec::new("zk", "default");
        spec.voters = 2 * k;
        spec.observers = observers;
        let err = spec.zoo_cfg(Myid::new(1).unwrap()).unwrap_err();
        prop_assert!(err.to_string().contains("replicas must be odd"));
    }
}
