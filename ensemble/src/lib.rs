//! zk-ensemble: the zookube domain model, pure and I/O-free.
//!
//! It decides every member's identity ([`identity`]), the quorum arithmetic
//! ([`quorum`]), every byte of `zoo.cfg` ([`spec`], [`zoocfg`]), whether a
//! member's configuration is acceptable ([`validate`]), the shape of the
//! sidecar's status document ([`status`]), and the next step of a
//! membership change or rolling restart ([`plan`]), and quorum TLS:
//! its keys, the names a member's certificate covers, the cluster's CA
//! ([`tls`]). It knows nothing of
//! Kubernetes, sockets, files or tokio; callers read and write the bytes.

#![warn(clippy::unwrap_used)]

pub mod identity;
pub mod messages;
pub mod plan;
pub mod quorum;
pub mod spec;
pub mod status;
pub mod tls;
pub mod validate;
pub mod zoocfg;

pub use identity::{Myid, Role};
pub use spec::{EnsembleSpec, Member, Placement, Ports, Settings, SpecError, SpecErrors};
pub use status::{MemberState, SidecarStatus};
pub use validate::{Problem, Summary, validate, validate_member};
pub use zoocfg::ZooCfg;
