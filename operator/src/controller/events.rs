//! Publishing Events. kube's `Recorder` folds every Event of one type,
//! reason and action about one object into a series for several minutes and
//! keeps the first Event's note: a second `InvalidSpec` naming another field,
//! or a `LeaderElected` naming the next leader, would be shown with the
//! words of the first. So every distinct note gets a recorder of its own:
//! repeats of one note (a reconcile failing the same way again) still
//! become one Event with a count, a new note is a new Event.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use tracing::warn;

/// How many notes keep their recorder (and so their series) before all
/// are forgotten; kube's own series last only minutes.
const KEPT_NOTES: usize = 256;

pub struct Events {
    client: Client,
    reporter: Reporter,
    recorders: Mutex<HashMap<(String, Option<String>), Recorder>>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Events {
        Events {
            client,
            reporter,
            recorders: Mutex::new(HashMap::new()),
        }
    }

    /// The recorder for `event`'s reason and note.
    pub fn recorder(&self, event: &Event) -> Recorder {
        let mut recorders = self
            .recorders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recorders.len() >= KEPT_NOTES {
            recorders.clear();
        }
        recorders
            .entry((event.reason.clone(), event.note.clone()))
            .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
            .clone()
    }

    /// Publishes `event` about `reference`; a refusal is logged, not fatal.
    pub async fn publish(&self, event: &Event, reference: &ObjectReference) {
        let recorder = self.recorder(event);
        if let Err(e) = recorder.publish(event, reference).await {
            warn!(error = %e, reason = %event.reason, "cannot publish an Event");
        }
    }
}
