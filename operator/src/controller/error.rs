//! Why a reconcile failed. Each error names the object and the API
//! server's answer; [`Error::category`] is the bounded label used in
//! metrics, and [`Error::reason`] the Event reason.

use crate::status::Refusal;

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

/// Whether the API server refused a request for what it says (a 4xx other
/// than a conflict, a timeout or throttling): sending it again unchanged
/// gets the same answer. Server errors (5xx) and transport errors may pass
/// on their own.
pub fn is_refusal(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            (400..500).contains(&status.code) && ![408, 409, 429].contains(&status.code)
        }
        _ => false,
    }
}

impl Error {
    /// A child's apply the API server refused, as a [`Refusal`]; any other
    /// error as it was.
    pub fn into_refusal(self) -> Result<Refusal, Error> {
        match self {
            Error::Apply { kind, name, source } if is_refusal(&source) => {
                let message = match &source {
                    kube::Error::Api(status) => status.message.clone(),
                    other => other.to_string(),
                };
                Ok(Refusal {
                    kind,
                    name,
                    message,
                })
            }
            other => Err(other),
        }
    }

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

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Status::failure("no", "Invalid").with_code(code).boxed())
    }

    #[test]
    fn refusals_are_the_answers_a_retry_cannot_change() {
        let cases = [
            (400, true),
            (403, true),
            (404, true),
            (422, true),
            (408, false),
            (409, false),
            (429, false),
            (500, false),
            (503, false),
            (504, false),
        ];
        for (code, refused) in cases {
            assert_eq!(is_refusal(&api(code)), refused, "{code}");
        }
        let transport = kube::Error::Service("connection reset".into());
        assert!(!is_refusal(&transport));
    }

    #[test]
    fn only_a_refused_apply_becomes_a_refusal() {
        let apply = |code| Error::Apply {
            kind: "StatefulSet".into(),
            name: "zk".into(),
            source: api(code),
        };
        assert_eq!(
            apply(422).into_refusal().unwrap(),
            Refusal {
                kind: "StatefulSet".into(),
                name: "zk".into(),
                message: "no".into(),
            }
        );
        assert!(apply(500).into_refusal().is_err());
        let read = Error::Read {
            kind: "StatefulSet".into(),
            name: "zk".into(),
            source: api(403),
        };
        assert_eq!(read.into_refusal().unwrap_err().category(), "read");
    }
}
