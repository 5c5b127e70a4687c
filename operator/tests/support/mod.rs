//! A small in-memory Kubernetes API server behind kube's `Client`
//! (tower-test), for controller and leader-election tests.
//!
//! It keeps objects by path and does what the real server does that the
//! tests rely on: GET and LIST (with equality label selectors), POST
//! (409 when the name exists), PUT with optimistic concurrency (409 on a
//! stale `resourceVersion`), server-side apply with per-manager field
//! ownership (a field a manager stops applying is removed; a no-op apply
//! keeps the `resourceVersion`), the status subresource, DELETE, and WATCH
//! requests held open. Every request is logged for assertions.
#![allow(dead_code)]

pub mod admin;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Map, Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
}

impl Logged {
    /// Whether this request changed (or tried to change) anything.
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

impl std::fmt::Display for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    /// Leaf paths each field manager owns, per object.
    owned: BTreeMap<(String, String), BTreeSet<Vec<String>>>,
    next_version: u64,
    log: Vec<Logged>,
    /// Requests to fail: (method, path) → status code.
    failures: Vec<(Method, String, u16)>,
    /// Paths whose object another writer changes right after the next GET.
    bump_after_get: BTreeSet<String>,
}

/// The fake API server; clone it to inspect it while a client uses it.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// A fake and a client talking to it.
    pub fn start() -> (FakeApi, Client) {
        let fake = FakeApi::default();
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = fake.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                match server.respond(&parts, &bytes) {
                    None => held.push(respond), // a watch that never sends anything
                    Some((status, reply)) => respond.send_response(
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                            .unwrap(),
                    ),
                }
            }
        });
        (fake, Client::new(mock, "default"))
    }

    /// Serves the fake over plain HTTP on loopback, for a real `zk-operator`
    /// process (point a kubeconfig at the returned address).
    pub async fn serve_http(&self) -> std::net::SocketAddr {
        use axum::body::Bytes;
        use axum::extract::{Request as AxumRequest, State};
        use axum::response::IntoResponse;

        async fn handler(
            State(fake): State<FakeApi>,
            request: AxumRequest,
        ) -> axum::response::Response {
            let (parts, body) = request.into_parts();
            let bytes: Bytes = axum::body::to_bytes(body, 1 << 24)
                .await
                .unwrap_or_default();
            match fake.respond(&parts, &bytes) {
                // A watch: headers now, then nothing until the client leaves.
                None => axum::body::Body::from_stream(futures::stream::pending::<
                    Result<Bytes, std::io::Error>,
                >())
                .into_response(),
                Some((status, reply)) => (
                    status,
                    [("content-type", "application/json")],
                    serde_json::to_vec(&reply).unwrap(),
                )
                    .into_response(),
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .fallback(handler)
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    /// The reply to one request; `None` for a watch, which is held open.
    fn respond(&self, parts: &http::request::Parts, bytes: &[u8]) -> Option<(StatusCode, Value)> {
        let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let query = query(&parts.uri);
        if parts.method == Method::GET && query.get("watch").map(String::as_str) == Some("true") {
            self.state.lock().unwrap().log.push(Logged {
                method: Method::GET,
                path: parts.uri.path().to_owned(),
                query,
                body: Value::Null,
            });
            return None;
        }
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Some(self.handle(
            parts.method.clone(),
            parts.uri.path(),
            query,
            &content_type,
            body,
        ))
    }

    /// Stores an object (a pod the StatefulSet controller would create, say).
    pub fn insert(&self, path: &str, mut object: Value) {
        let mut state = self.state.lock().unwrap();
        state.next_version += 1;
        let version = state.next_version.to_string();
        let meta = object["metadata"].as_object_mut().unwrap();
        meta.entry("uid")
            .or_insert_with(|| json!(format!("uid-{version}")));
        meta.insert("resourceVersion".into(), json!(version));
        state.objects.insert(path.to_owned(), object);
    }

    /// Deletes an object (a pod the StatefulSet controller removed, say).
    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().objects.remove(path);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    pub fn paths(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().cloned().collect()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Makes every `method` request to `path` fail with `code`.
    pub fn fail(&self, method: Method, path: &str, code: u16) {
        self.state
            .lock()
            .unwrap()
            .failures
            .push((method, path.to_owned(), code));
    }

    /// Ends every failure [`FakeApi::fail`] asked for.
    pub fn heal(&self) {
        self.state.lock().unwrap().failures.clear();
    }

    /// After the next GET of `path`, another writer changes the object
    /// (its `resourceVersion` moves on), as in a race between two clients.
    pub fn bump_after_next_get(&self, path: &str) {
        self.state
            .lock()
            .unwrap()
            .bump_after_get
            .insert(path.to_owned());
    }

    fn handle(
        &self,
        method: Method,
        path: &str,
        query: BTreeMap<String, String>,
        content_type: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut state = self.state.lock().unwrap();
        state.log.push(Logged {
            method: method.clone(),
            path: path.to_owned(),
            query: query.clone(),
            body: body.clone(),
        });
        if let Some((_, _, code)) = state
            .failures
            .iter()
            .find(|(m, p, _)| *m == method && p == path)
        {
            return status_error(*code, "InternalError", "injected failure");
        }
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(object) => (object.to_owned(), Some("status")),
            None => (path.to_owned(), None),
        };
        match method {
            Method::GET => match state.objects.get(path).cloned() {
                Some(object) => {
                    if state.bump_after_get.remove(path) {
                        let bumped = state.stamp(object.clone(), Some(&object));
                        state.objects.insert(path.to_owned(), bumped);
                    }
                    (StatusCode::OK, object)
                }
                None if is_collection(path) => {
                    let selector = query.get("labelSelector").map(String::as_str);
                    let items: Vec<Value> = state
                        .objects
                        .iter()
                        .filter(|(p, _)| in_collection(p, path))
                        .map(|(_, o)| o.clone())
                        .filter(|o| matches_selector(o, selector))
                        .collect();
                    let version = state.next_version.to_string();
                    (
                        StatusCode::OK,
                        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": version}, "items": items}),
                    )
                }
                None => status_error(404, "NotFound", &format!("{path} not found")),
            },
            Method::POST => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let object_path = format!("{path}/{name}");
                if state.objects.contains_key(&object_path) {
                    return status_error(409, "AlreadyExists", &format!("{name} already exists"));
                }
                let object = state.stamp(body, None);
                state.objects.insert(object_path, object.clone());
                (StatusCode::CREATED, object)
            }
            Method::PUT => {
                let Some(current) = state.objects.get(path).cloned() else {
                    return status_error(404, "NotFound", &format!("{path} not found"));
                };
                let sent = body["metadata"]["resourceVersion"].as_str();
                if sent.is_some() && sent != current["metadata"]["resourceVersion"].as_str() {
                    return status_error(409, "Conflict", "the object has been modified");
                }
                let object = state.stamp(body, Some(&current));
                state.objects.insert(path.to_owned(), object.clone());
                (StatusCode::OK, object)
            }
            Method::PATCH if content_type.starts_with("application/apply-patch") => {
                let manager = query.get("fieldManager").cloned().unwrap_or_default();
                let current = state.objects.get(&object_path).cloned();
                if subresource == Some("status") {
                    let Some(mut object) = current else {
                        return status_error(404, "NotFound", &format!("{object_path} not found"));
                    };
                    let before = object.clone();
                    object["status"] = body["status"].clone();
                    let object = if object == before {
                        object
                    } else {
                        state.stamp(object, Some(&before))
                    };
                    state.objects.insert(object_path, object.clone());
                    return (StatusCode::OK, object);
                }
                let key = (object_path.clone(), manager);
                let applied = leaves(&body);
                let previously = state.owned.get(&key).cloned().unwrap_or_default();
                let mut merged = current.clone().unwrap_or_else(|| json!({}));
                for gone in previously.difference(&applied) {
                    remove(&mut merged, gone);
                }
                merge(&mut merged, &body);
                state.owned.insert(key, applied);
                let object = match &current {
                    Some(current) if *current == merged => merged,
                    _ => state.stamp(merged, current.as_ref()),
                };
                state.objects.insert(object_path, object.clone());
                (StatusCode::OK, object)
            }
            Method::PATCH => {
                // merge patch (events)
                let Some(mut object) = state.objects.get(path).cloned() else {
                    return status_error(404, "NotFound", &format!("{path} not found"));
                };
                merge(&mut object, &body);
                let object = state.stamp(object, None);
                state.objects.insert(path.to_owned(), object.clone());
                (StatusCode::OK, object)
            }
            Method::DELETE => match state.objects.remove(path) {
                Some(_) => (
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => status_error(404, "NotFound", &format!("{path} not found")),
            },
            _ => status_error(405, "MethodNotAllowed", "not supported by the fake"),
        }
    }
}

impl State {
    /// A new resourceVersion (and uid, for a new object).
    fn stamp(&mut self, mut object: Value, before: Option<&Value>) -> Value {
        self.next_version += 1;
        let version = self.next_version.to_string();
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let meta = object["metadata"].as_object_mut().unwrap();
        let uid = before
            .and_then(|b| b["metadata"]["uid"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("uid-{version}"));
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!(version));
        object
    }
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// `/api/v1/namespaces/ns/pods` or `/apis/g/v/namespaces/ns/kind` (or the
/// cluster-wide forms): paths whose last segment is a resource.
fn is_collection(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let after_version = if segments.first() == Some(&"api") {
        2
    } else {
        3
    };
    let rest = &segments[after_version.min(segments.len())..];
    matches!(rest, [_resource] | ["namespaces", _, _resource])
}

/// Whether the object at `object` belongs to the collection at `collection`
/// (`…/namespaces/ns/pods` or, across namespaces, `…/pods`).
fn in_collection(object: &str, collection: &str) -> bool {
    let Some((parent, _name)) = object.rsplit_once('/') else {
        return false;
    };
    if parent == collection {
        return true;
    }
    // …/v1/namespaces/<ns>/<resource> matches the cluster-wide …/v1/<resource>.
    let segments: Vec<&str> = parent.split('/').collect();
    match segments.as_slice() {
        [head @ .., "namespaces", _ns, resource] => {
            format!("{}/{resource}", head.join("/")) == collection
        }
        _ => false,
    }
}

fn matches_selector(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][key].as_str() == Some(value)
    })
}

/// Every leaf path of an applied object (lists count as leaves).
fn leaves(value: &Value) -> BTreeSet<Vec<String>> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// Removes the field at `path`, and maps it leaves empty (as the API
/// server omits empty maps).
fn remove(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(map) = value.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        map.remove(first);
        return;
    }
    if let Some(child) = map.get_mut(first) {
        remove(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            map.remove(first);
        }
    }
}

/// JSON merge: objects merge key by key, anything else replaces, null removes.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge(
                        target.entry(k.clone()).or_insert(Value::Object(Map::new())),
                        v,
                    );
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

pub fn status_error(code: u16, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}
