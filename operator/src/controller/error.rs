//! Why a reconcile failed. Each error names the object and the API
//! server's answer; [`Error::category`] is the bounded label used in
//! metrics, and [`Error::reason`] the Event reason.

/// A failed step of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {kind} {name}: {source}")]
    Read {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot list the pods of {cluster}: {source}")]
    ListPods {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot label pod {pod}: {source}")]
    LabelPod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write the status of {cluster}: {source}")]
    WriteStatus {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot change the membership of {cluster}: {source}")]
    Reconfig {
        cluster: String,
        #[source]
        source: crate::reconfig::ReconfigError,
    },
    #[error(
        "the Secret {name} holds no super password; delete it and zookube creates a new one (then restart the members: `kubectl annotate zk/{cluster} zookube.io/restart=\"$(date)\" --overwrite`)"
    )]
    NoSuperPassword { name: String, cluster: String },
}

impl Error {
    /// Every category there is, for documentation and tests.
    pub const CATEGORIES: [&'static str; 9] = [
        "read",
        "apply",
        "delete",
        "list_pods",
        "label_pod",
        "write_status",
        "encode",
        "reconfig",
        "super_secret",
    ];

    /// The metric label: one of [`Error::CATEGORIES`].
    pub fn category(&self) -> &'static str {
        match self {
            Error::Read { .. } => "read",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
            Error::ListPods { .. } => "list_pods",
            Error::LabelPod { .. } => "label_pod",
            Error::WriteStatus { .. } => "write_status",
            Error::Encode { .. } => "encode",
            Error::Reconfig { .. } => "reconfig",
            Error::NoSuperPassword { .. } => "super_secret",
        }
    }

    /// The Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Delete { .. } => "DeleteFailed",
            Error::ListPods { .. } => "ListPodsFailed",
            Error::LabelPod { .. } => "LabelPodFailed",
            Error::WriteStatus { .. } => "WriteStatusFailed",
            Error::Encode { .. } => "EncodeFailed",
            Error::Reconfig { .. } => "ReconfigFailed",
            Error::NoSuperPassword { .. } => "NoSuperPassword",
        }
    }
}
