//! `local scale`, `local restart` and `local apply`: a membership change or
//! a rolling restart of the local ensemble, one step at a time, every step
//! the one [`zk_ensemble::plan::next_step`] decides — the planner the
//! operator uses on Kubernetes — carried out on local processes and through
//! `reconfig` ([`crate::reconfig`]).
//!
//! Nothing here decides: [`observe`] turns processes, sidecars and the
//! committed config into the planner's [`Observation`], and [`act`] carries
//! one step out. Because the planner keeps no state, an interrupted change
//! (Ctrl-C, a timeout) resumes where the ensemble is when run again.
//!
//! The zookube super user: `up` generates a password (kept in
//! `<dir>/super-password`, readable by the owner only) and starts every
//! server with its digest, as the operator does on Kubernetes with a Secret.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use zk_ensemble::plan::{
    self, Desired, MemberObservation, Membership, Observation, Step, configured_servers,
};
use zk_ensemble::{MemberState, Myid, Ports, Role};

use super::backend::{Launcher, LocalEnsemble};
use super::commands::{
    Cli, POLL, Progress, ports_in_use_of, read_cluster, read_view_with, unix_now, write_file,
};
use super::error::LocalError;
use super::plan::{Layout, LocalPlan};
use super::state::{LocalState, Mismatch};
use super::view::LocalView;
use super::{ApplyArgs, ChangeArgs, ScaleArgs};
use crate::cluster::{self, ValidatedCluster, parse_cluster};
use crate::crd::RetentionPolicy;
use crate::reconfig::{
    EnsembleAdmin, Reconfig, ReconfigError, Target, ZkAdmin, generate_password, super_digest,
    super_digest_flag,
};
use crate::sidecar_client::SidecarClient;

/// How long, once the planner is done, to wait for every sidecar to report
/// the leader and the new membership (they poll once a second).
const AGREEMENT_GRACE: Duration = Duration::from_secs(5);

/// Generates the super user's password for an ensemble that `up` starts,
/// keeps it in `<dir>/super-password` (mode 0600), and adds its digest to
/// the servers' JVM flags.
pub fn enable_super(layout: &Layout, jvm_flags: &mut Vec<String>) -> Result<(), LocalError> {
    let password = generate_password();
    let path = layout.super_password_file();
    let write = |source| LocalError::Write {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(write)?;
    }
    let _ = fs::remove_file(&path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(write)?;
    file.write_all(password.as_bytes()).map_err(write)?;
    jvm_flags.retain(|f| !f.starts_with(&super_digest_flag("")));
    jvm_flags.push(super_digest_flag(&super_digest(&password)));
    Ok(())
}

impl Cli {
    /// `local scale`: the stored cluster with new sizes, validated as the
    /// operator validates it (an even `--replicas` is refused with the
    /// CRD's message and changes nothing), then converged.
    pub(super) async fn scale(&self, args: &ScaleArgs) -> Result<(), LocalError> {
        let ensemble = self.open()?;
        let file = self.layout.cluster_file();
        let text = fs::read_to_string(&file).map_err(|source| LocalError::Read {
            file: file.clone(),
            source,
        })?;
        let mut cluster = parse_cluster(&text, Some(&ensemble.state.cluster)).map_err(|error| {
            LocalError::Parse {
                file: file.clone(),
                error,
            }
        })?;
        let before = (cluster.spec.replicas, cluster.spec.observers);
        if let Some(replicas) = args.replicas {
            cluster.spec.replicas = replicas;
        }
        if let Some(observers) = args.observers {
            cluster.spec.observers = observers;
        }
        let validated = cluster::validate(&cluster).map_err(LocalError::Invalid)?;
        if ensemble.state.alive().is_empty() {
            return Err(self.nothing_running(&ensemble));
        }
        let yaml = serde_saphyr::to_string(&cluster).map_err(|e| LocalError::Write {
            path: file.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_file(&file, &yaml)?;
        let (voters, observers) = (cluster.spec.replicas, cluster.spec.observers);
        let what = format!(
            "{}: {} voters and {} observers -> {voters} voters and {observers} observers",
            validated.name, before.0, before.1
        );
        self.converge(ensemble, &validated, &args.change, what)
            .await
    }

    /// `local restart`: every member restarts once, the leader last. An
    /// unfinished restart is resumed rather than begun again.
    pub(super) async fn restart(&self, args: &ChangeArgs) -> Result<(), LocalError> {
        let mut ensemble = self.open()?;
        let (_, cluster) =
            read_cluster(&self.layout.cluster_file(), Some(&ensemble.state.cluster))?;
        if ensemble.state.alive().is_empty() {
            return Err(self.nothing_running(&ensemble));
        }
        let plan = LocalPlan::new(&cluster, ensemble.state.base, &self.layout)?;
        let pending = ensemble.state.restart.is_some()
            && ensemble
                .state
                .members
                .iter()
                .any(|m| m.revision != desired_revision(&plan, &ensemble.state, m.myid));
        if !pending {
            ensemble.state.restart = Some(format!("{}-{}", unix_now(), std::process::id()));
            ensemble.save()?;
        }
        let what = format!("{}: every member restarted", cluster.name);
        self.converge(ensemble, &cluster, args, what).await
    }

    /// `local apply`: the ensemble as FILE describes it. Its ports must
    /// stay: every server line holds them.
    pub(super) async fn apply(&self, args: &ApplyArgs) -> Result<(), LocalError> {
        let ensemble = self.open()?;
        let (text, cluster) = read_cluster(&args.file, args.name.as_deref())?;
        if cluster.name != ensemble.state.cluster {
            return Err(LocalError::Reuse {
                dir: self.layout.root().to_owned(),
                mismatch: Mismatch::Cluster {
                    found: ensemble.state.cluster.clone(),
                    wanted: cluster.name,
                },
            });
        }
        let (_, running) =
            read_cluster(&self.layout.cluster_file(), Some(&ensemble.state.cluster))?;
        // The TLS client port is in no server line: a roll moves it.
        let lines = |ports: Ports| Ports {
            secure_client: 0,
            ..ports
        };
        if lines(running.ensemble.ports) != lines(cluster.ensemble.ports) {
            return Err(LocalError::Immutable {
                field: "spec.ports",
                why: "every member's address and server line depend on it",
            });
        }
        if running.ensemble.quorum_tls != cluster.ensemble.quorum_tls {
            return Err(LocalError::Immutable {
                field: "spec.tls.quorum",
                why: "a member restarted with TLS and one without cannot reach each other, so a roll would stop at its first member",
            });
        }
        if ensemble.state.alive().is_empty() {
            return Err(self.nothing_running(&ensemble));
        }
        write_file(&self.layout.cluster_file(), &text)?;
        let what = format!("{}: applied {}", cluster.name, args.file.display());
        self.converge(ensemble, &cluster, &args.change, what).await
    }

    async fn converge(
        &self,
        mut ensemble: LocalEnsemble,
        cluster: &ValidatedCluster,
        args: &ChangeArgs,
        what: String,
    ) -> Result<(), LocalError> {
        let started = Instant::now();
        let launcher = Launcher::discover()?;
        let plan = LocalPlan::new(cluster, ensemble.state.base, &self.layout)?;
        let mut progress = Progress::new(started);
        let mut change = Change {
            ensemble: &mut ensemble,
            launcher: &launcher,
            plan,
            when_scaled: cluster.storage.when_scaled,
            timeout: args.timeout,
        };
        let outcome = change.converge(&mut progress).await?;
        let steps = match outcome.steps.len() {
            0 => "nothing to change".to_owned(),
            1 => "1 step".to_owned(),
            n => format!("{n} steps"),
        };
        println!(
            "{what} in {:.1} s ({steps})\n{}\n",
            started.elapsed().as_secs_f64(),
            outcome.view.headline()
        );
        print!("{}", outcome.view.table());
        Ok(())
    }
}

/// The revision member `myid` should run: its config as the spec renders
/// it now, the JVM flags, and the last restart request.
fn desired_revision(plan: &LocalPlan, state: &LocalState, myid: Myid) -> Option<String> {
    let alone = BTreeMap::from([(myid, myid.role())]);
    let member = plan.member_with(myid, &alone).ok()?;
    Some(member.revision(&state.jvm_flags, state.restart.as_deref()))
}

/// The password `up` generated.
fn super_password(layout: &Layout) -> Result<String, LocalError> {
    let path = layout.super_password_file();
    fs::read_to_string(&path)
        .map(|p| p.trim().to_owned())
        .map_err(|source| LocalError::NoSuperPassword { file: path, source })
}

/// What a change did.
#[derive(Debug)]
pub(super) struct Outcome {
    /// Every step that acted, in words.
    pub steps: Vec<String>,
    pub view: LocalView,
}

/// The local ensemble together with what a change needs.
pub(super) struct Change<'a> {
    pub ensemble: &'a mut LocalEnsemble,
    pub launcher: &'a Launcher,
    /// The spec to converge to, placed on loopback.
    pub plan: LocalPlan,
    pub when_scaled: RetentionPolicy,
    pub timeout: Duration,
}

impl Change<'_> {
    /// Steps until the planner is done, and the sidecars agree.
    pub(super) async fn converge(
        &mut self,
        progress: &mut Progress,
    ) -> Result<Outcome, LocalError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let desired = Desired::of(&self.plan.ensemble);
        let target_password = super_password(&self.ensemble.layout)?;
        let admin = ZkAdmin::new();
        let client = SidecarClient::new();
        let mut steps = Vec::new();
        let mut trouble: Option<String> = None;
        loop {
            let (observed, view, read_error) =
                self.observe(&admin, &client, &target_password).await;
            let step = plan::next_step(&desired, &observed);
            if let Some(servers) = configured_servers(&desired, &observed, &step) {
                self.ensemble.state.servers = servers.into_keys().collect();
                self.ensemble.save()?;
            }
            let words = step.describe(&desired);
            match &step {
                Step::Done => {
                    progress.finish();
                    let view = self.agreement(&client, &observed).await;
                    return Ok(Outcome { steps, view });
                }
                Step::Refuse(_) => {
                    progress.finish();
                    return Err(LocalError::Refused {
                        reason: words,
                        table: view.table(),
                    });
                }
                Step::Wait(_) => {
                    let why = read_error.or(trouble.take());
                    let line = match &why {
                        Some(error) => format!("{words} ({error})"),
                        None => words.clone(),
                    };
                    if Instant::now() >= deadline {
                        progress.finish();
                        return Err(LocalError::NotConverged {
                            timeout_secs: self.timeout.as_secs(),
                            waiting: line,
                            table: view.table(),
                        });
                    }
                    progress.show(&line);
                    tokio::time::sleep(POLL).await;
                }
                _ => {
                    progress.show(&words);
                    let target = self.target(&target_password);
                    match self
                        .act(&admin, &target, &desired, &observed, &step, deadline)
                        .await
                    {
                        Ok(()) => {
                            progress.finish();
                            eprintln!("  {:4.1}s  done: {words}", started.elapsed().as_secs_f64());
                            steps.push(words);
                        }
                        Err(StepError::Reconfig(e)) if e.is_transient() => {
                            if Instant::now() >= deadline {
                                return Err(LocalError::Reconfig(e));
                            }
                            trouble = Some(e.to_string());
                            tokio::time::sleep(POLL).await;
                        }
                        Err(StepError::Reconfig(e)) => return Err(LocalError::Reconfig(e)),
                        Err(StepError::Local(e)) => return Err(e),
                    }
                }
            }
        }
    }

    /// Every member whose server runs, as the planner sees it.
    async fn observe(
        &self,
        admin: &ZkAdmin,
        client: &SidecarClient,
        password: &str,
    ) -> (Observation, LocalView, Option<String>) {
        let view = read_view_with(self.ensemble, client).await;
        let desired = Desired::of(&self.plan.ensemble);
        let mut members = Vec::new();
        for record in &self.ensemble.state.members {
            let (server, _) = self.ensemble.liveness(record.myid);
            if !server.is_some_and(|l| l.is_alive()) {
                // A member the spec no longer wants is still there to be
                // removed and stopped (like a crashed pod of a StatefulSet);
                // a wanted one whose server is gone is started again.
                if !desired.wants(record.myid) {
                    members.push(MemberObservation {
                        myid: record.myid,
                        state: Some(MemberState::Down),
                        serving: false,
                        leader: None,
                        ready: false,
                        terminating: false,
                        current: true,
                    });
                }
                continue;
            }
            let Some(m) = view.member(record.myid) else {
                continue;
            };
            members.push(MemberObservation {
                myid: record.myid,
                state: m.state,
                serving: m.serving == Some(true),
                leader: m.leader.and_then(|l| Myid::try_from(l).ok()),
                ready: true,
                terminating: false,
                current: record.revision
                    == desired_revision(&self.plan, &self.ensemble.state, record.myid),
            });
        }
        let target = self.target(password);
        let (committed, error) = if target.connect.is_empty() {
            (None, Some("no member's server runs".to_owned()))
        } else {
            match admin.read_config(&target).await {
                Ok(membership) => (Some(membership), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        let observed = Observation {
            committed,
            leader: view.leader.and_then(|l| Myid::try_from(l).ok()),
            members,
        };
        (observed, view, error)
    }

    /// The running members' client addresses, for the admin session.
    fn target(&self, password: &str) -> Target {
        let connect = self
            .ensemble
            .state
            .members
            .iter()
            .filter(|m| {
                self.ensemble
                    .liveness(m.myid)
                    .0
                    .is_some_and(|l| l.is_alive())
            })
            .map(|m| m.client.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Target {
            connect,
            password: password.to_owned(),
        }
    }

    /// Carries one step out.
    async fn act(
        &mut self,
        admin: &ZkAdmin,
        target: &Target,
        desired: &Desired,
        observed: &Observation,
        step: &Step,
        deadline: Instant,
    ) -> Result<(), StepError> {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        match step {
            Step::Start { myid, servers } => self.start(*myid, servers, remaining()).await?,
            Step::Add { myid, version, .. } => {
                let line = self
                    .plan
                    .ensemble
                    .server_entry(&self.plan.ensemble.member(*myid))
                    .to_string();
                let change = Reconfig::Add {
                    myid: *myid,
                    line,
                    version: *version,
                };
                admin.reconfig(target, &change).await?;
            }
            Step::Remove { myid, version }
            | Step::HandOver {
                leader: myid,
                version,
            } => {
                let change = Reconfig::Remove {
                    myid: *myid,
                    version: *version,
                };
                admin.reconfig(target, &change).await?;
            }
            Step::Stop { myid } => self.stop(*myid)?,
            Step::Restart { myid } => {
                let servers = configured_servers(desired, observed, step)
                    .unwrap_or_else(|| BTreeMap::from([(*myid, myid.role())]));
                self.ensemble.stop_member(*myid)?;
                self.start(*myid, &servers, remaining()).await?;
            }
            Step::Done | Step::Wait(_) | Step::Refuse(_) => {}
        }
        Ok(())
    }

    /// Starts member `myid` with a config listing `servers`.
    async fn start(
        &mut self,
        myid: Myid,
        servers: &BTreeMap<Myid, Role>,
        timeout: Duration,
    ) -> Result<(), LocalError> {
        let member = self.plan.member_with(myid, servers)?;
        let busy = ports_in_use_of(&member, self.ensemble.sidecar_alive(myid));
        if !busy.is_empty() {
            return Err(LocalError::PortsInUse(busy));
        }
        self.ensemble
            .start_member(self.launcher, &member, timeout)
            .await
    }

    /// Stops a member that left, and forgets it; its data follows the
    /// cluster's `storage.whenScaled`.
    fn stop(&mut self, myid: Myid) -> Result<(), LocalError> {
        let data_dir = self.ensemble.data_dir(myid);
        let member_dir = self.ensemble.layout.member_dir(myid);
        self.ensemble.stop_member(myid)?;
        self.ensemble.state.members.retain(|m| m.myid != myid);
        self.ensemble.save()?;
        if self.when_scaled == RetentionPolicy::Delete {
            for dir in [data_dir, member_dir] {
                if dir.exists() {
                    fs::remove_dir_all(&dir)
                        .map_err(|source| LocalError::Write { path: dir, source })?;
                }
            }
        }
        Ok(())
    }

    /// Waits a moment for every sidecar to report the leader and the
    /// committed voters.
    async fn agreement(&self, client: &SidecarClient, observed: &Observation) -> LocalView {
        let voters: Vec<u64> = observed
            .committed
            .as_ref()
            .map(Membership::voters)
            .unwrap_or_default()
            .into_iter()
            .map(u64::from)
            .collect();
        let until = Instant::now() + AGREEMENT_GRACE;
        loop {
            let view = read_view_with(self.ensemble, client).await;
            let readings = self.ensemble.read_sidecars(client).await;
            let membership_known = readings
                .values()
                .all(|r| r.as_ref().is_ok_and(|s| s.quorum.voters == voters));
            if (view.agreed() && membership_known) || Instant::now() >= until {
                return view;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A step that failed: a refused or lost reconfig may succeed when planned
/// afresh; a local failure ends the change.
#[derive(Debug)]
enum StepError {
    Reconfig(ReconfigError),
    Local(LocalError),
}

impl From<ReconfigError> for StepError {
    fn from(e: ReconfigError) -> Self {
        StepError::Reconfig(e)
    }
}

impl From<LocalError> for StepError {
    fn from(e: LocalError) -> Self {
        StepError::Local(e)
    }
}
