//! The app's list of background jobs: typed [`crate::jobs::JobHandle`]s with a completion
//! callback that stores the result in [`AppState`], erased so one status area can show them all.
//!
//! Panels start work with [`AppState::spawn_job`]; the shell polls every frame and runs the
//! callbacks on the UI thread. No algorithm code here.
use std::time::Duration;

use crate::jobs::{JobCtx, JobHandle};

use super::state::AppState;

/// Identifies a job for the lifetime of the app (to cancel it or ask whether it still runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId(pub u64);

/// What the status area shows for one running job.
#[derive(Debug, Clone)]
pub struct JobStatus {
    /// Its id.
    pub id: JobId,
    /// Its name ("Load model").
    pub name: String,
    /// The latest stage text, if any report arrived.
    pub stage: Option<String>,
    /// Fraction done, when the job reports a total.
    pub fraction: Option<f32>,
    /// Estimated time left.
    pub eta: Option<Duration>,
    /// Time since start.
    pub elapsed: Duration,
    /// True once the user pressed cancel.
    pub cancel_requested: bool,
}

type OnDone<T> = Box<dyn FnOnce(Result<T, String>, &mut AppState)>;

trait AnyJob {
    fn id(&self) -> JobId;
    fn poll(&mut self);
    fn is_finished(&self) -> bool;
    fn status(&self) -> JobStatus;
    fn cancel(&self);
    fn finish(self: Box<Self>, state: &mut AppState);
}

struct TypedJob<T> {
    id: JobId,
    handle: JobHandle<T>,
    on_done: OnDone<T>,
}

impl<T: 'static> AnyJob for TypedJob<T> {
    fn id(&self) -> JobId {
        self.id
    }
    fn poll(&mut self) {
        self.handle.poll();
    }
    fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
    fn status(&self) -> JobStatus {
        JobStatus {
            id: self.id,
            name: self.handle.name.clone(),
            stage: self.handle.last.as_ref().map(|p| p.stage.clone()),
            fraction: self.handle.fraction(),
            eta: self.handle.eta(),
            elapsed: self.handle.elapsed(),
            cancel_requested: self.handle.is_cancel_requested(),
        }
    }
    fn cancel(&self) {
        self.handle.cancel();
    }
    fn finish(mut self: Box<Self>, state: &mut AppState) {
        let result = self
            .handle
            .take_result()
            .unwrap_or_else(|| Err("job vanished".to_string()));
        (self.on_done)(result, state);
    }
}

/// All background jobs the app has started and not yet collected.
#[derive(Default)]
pub struct JobList {
    next_id: u64,
    running: Vec<Box<dyn AnyJob>>,
}

impl JobList {
    /// Registers a spawned job and the callback that receives its result on the UI thread.
    pub(crate) fn push<T: 'static>(&mut self, handle: JobHandle<T>, on_done: OnDone<T>) -> JobId {
        self.next_id += 1;
        let id = JobId(self.next_id);
        self.running.push(Box::new(TypedJob {
            id,
            handle,
            on_done,
        }));
        id
    }

    /// True while at least one job runs.
    pub fn is_busy(&self) -> bool {
        !self.running.is_empty()
    }

    /// True while the job `id` runs.
    pub fn is_running(&self, id: JobId) -> bool {
        self.running.iter().any(|j| j.id() == id)
    }

    /// Asks job `id` to stop (no effect if it already finished).
    pub fn cancel(&self, id: JobId) {
        for j in &self.running {
            if j.id() == id {
                j.cancel();
            }
        }
    }

    /// The status of every running job, oldest first.
    pub fn statuses(&self) -> Vec<JobStatus> {
        self.running.iter().map(|j| j.status()).collect()
    }
}

impl AppState {
    /// Runs `work` on a background thread (it receives a progress sink that also carries the
    /// cancel flag); when it ends, `on_done` gets its result on the UI thread.
    pub fn spawn_job<T, F, D>(&mut self, name: &str, work: F, on_done: D) -> JobId
    where
        T: Send + 'static,
        F: FnOnce(&JobCtx<T>) -> anyhow::Result<T> + Send + 'static,
        D: FnOnce(Result<T, String>, &mut AppState) + 'static,
    {
        let handle = crate::jobs::spawn(name, self.waker(), work);
        self.jobs.push(handle, Box::new(on_done))
    }

    /// Drains job events and runs the callbacks of finished jobs. Called once per frame.
    pub fn poll_jobs(&mut self) {
        let mut jobs = std::mem::take(&mut self.jobs.running);
        for j in jobs.iter_mut() {
            j.poll();
        }
        let (done, running): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.is_finished());
        // Callbacks may start new jobs: keep the running ones first.
        let started_meanwhile = std::mem::replace(&mut self.jobs.running, running);
        self.jobs.running.extend(started_meanwhile);
        for j in done {
            j.finish(self);
        }
    }
}
