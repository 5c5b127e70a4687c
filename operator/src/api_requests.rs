//! What the operator costs the API server: every request its Kubernetes
//! client sends, counted by verb and resource in
//! `zookube_operator_api_requests_total{verb, resource}`.
//!
//! A tower layer under the kube client sees each request before it leaves;
//! [`classify`] turns its method and path into two bounded labels (the
//! resource is a plural of the API, never a name or a namespace).

use std::task::{Context, Poll};

use http::{Method, Request};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::{Layer, Service};

/// The labels of `zookube_operator_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Kubernetes' own verbs: get, list, watch, create, update, patch,
    /// delete, deletecollection; `other` for anything else.
    pub verb: &'static str,
    /// The resource (`pods`, `statefulsets`, `zookeeperclusters`, with a
    /// subresource as `pods/proxy`), or `other` outside the resource API.
    pub resource: String,
}

/// Kubernetes' verb and the resource of a request.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> RequestLabels {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/GROUP/VERSION/...
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => {
            return RequestLabels {
                verb: "other",
                resource: "other".to_owned(),
            };
        }
    };
    // Namespaced paths: namespaces/NS/RESOURCE[/NAME[/SUB]]; the namespaces
    // resource itself is namespaces[/NAME].
    let rest = match rest {
        ["namespaces", _ns, resource, tail @ ..] => {
            let mut r = vec![*resource];
            r.extend_from_slice(tail);
            r
        }
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [] => ("other".to_owned(), false),
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let watching = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    RequestLabels { verb, resource }
}

/// Counts every request that passes through it.
#[derive(Clone, Debug)]
pub struct CountRequests {
    counts: Family<RequestLabels, Counter>,
}

impl CountRequests {
    pub fn new(counts: Family<RequestLabels, Counter>) -> CountRequests {
        CountRequests { counts }
    }
}

impl<S> Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counts: self.counts.clone(),
        }
    }
}

/// A service whose requests are counted.
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    counts: Family<RequestLabels, Counter>,
}

impl<S, B> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let uri = request.uri();
        self.counts
            .get_or_create(&classify(request.method(), uri.path(), uri.query()))
            .inc();
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_kubernetes_verbs_and_resources() {
        let cases: &[(Method, &str, Option<&str>, &str, &str)] = &[
            (
                Method::GET,
                "/apis/zookube.io/v1alpha1/zookeeperclusters",
                Some("watch=true&resourceVersion=1"),
                "watch",
                "zookeeperclusters",
            ),
            (
                Method::GET,
                "/apis/zookube.io/v1alpha1/zookeeperclusters",
                Some("limit=500"),
                "list",
                "zookeeperclusters",
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/data/statefulsets/zk",
                None,
                "get",
                "statefulsets",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/data/pods",
                Some("labelSelector=a%3Db"),
                "list",
                "pods",
            ),
            (
                Method::PATCH,
                "/apis/zookube.io/v1alpha1/namespaces/data/zookeeperclusters/zk/status",
                Some("fieldManager=zk-operator&force=true"),
                "patch",
                "zookeeperclusters/status",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/data/events",
                None,
                "create",
                "events",
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/zookube-system/leases/zookube",
                None,
                "update",
                "leases",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/data/pods/zk-2",
                None,
                "delete",
                "pods",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/data/pods",
                None,
                "deletecollection",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                None,
                "list",
                "namespaces",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/data",
                None,
                "get",
                "namespaces",
            ),
            (Method::GET, "/version", None, "other", "other"),
        ];
        for (method, path, query, verb, resource) in cases {
            let got = classify(method, path, *query);
            assert_eq!(
                (got.verb, got.resource.as_str()),
                (*verb, *resource),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_layer_counts_what_passes() {
        /// Answers every request at once.
        struct Answer;
        impl Service<Request<()>> for Answer {
            type Response = ();
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<(), Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request<()>) -> Self::Future {
                std::future::ready(Ok(()))
            }
        }
        let counts: Family<RequestLabels, Counter> = Family::default();
        let mut service = CountRequests::new(counts.clone()).layer(Answer);
        let request = || {
            Request::get("/api/v1/namespaces/data/pods/zk-0")
                .body(())
                .unwrap()
        };
        drop(service.call(request()));
        drop(service.call(request()));
        let labels = RequestLabels {
            verb: "get",
            resource: "pods".to_owned(),
        };
        assert_eq!(counts.get_or_create(&labels).get(), 2);
    }
}
