//! The words users see when a spec is refused. The CRD's CEL rules, the
//! operator's `InvalidSpec` condition, `zk-operator render`, `local` and
//! `zk-sidecar check` all print these, so one mistake reads the same
//! everywhere.

/// Why even voter counts are refused.
pub const REPLICAS_ODD: &str = "replicas must be odd — 1, 3, 5, 7 …: an even ensemble tolerates no more failures than the odd one below it";

/// The allowed voter counts.
pub const REPLICAS_RANGE: &str =
    "replicas must be between 1 and 15; add read capacity with observers";

/// The allowed observer counts.
pub const OBSERVERS_RANGE: &str = "observers must be between 0 and 100";

/// Why some `zoo.cfg` keys cannot be overridden.
pub const EXTRA_OWNED: &str = "config.extra must not set keys zookube owns: server.*, dataDir, dataLogDir, clientPort, dynamicConfigFile, standaloneEnabled, reconfigEnabled, myid";
