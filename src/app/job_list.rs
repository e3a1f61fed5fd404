//! The app's list of background jobs: typed [`crate::jobs::JobHandle`]s with a completion
//! callback that stores the result in the app state `S` (`AppState`), erased so one status
//! area can show them all. Generic over `S` so this file does not depend on the state that owns
//! it (`AppState::spawn_job` and `AppState::poll_jobs` are in `state.rs`).
//!
//! Panels start work with `AppState::spawn_job`; the shell polls every frame and runs the
//! callbacks on the UI thread. No algorithm code here.
use std::time::Duration;

use crate::jobs::JobHandle;

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

/// What runs with a job's result on the UI thread.
pub(crate) type OnDone<T, S> = Box<dyn FnOnce(Result<T, String>, &mut S)>;

trait AnyJob<S> {
    fn id(&self) -> JobId;
    fn poll(&mut self);
    fn is_finished(&self) -> bool;
    fn status(&self) -> JobStatus;
    fn cancel(&self);
    fn finish(self: Box<Self>, state: &mut S);
}

struct TypedJob<T, S> {
    id: JobId,
    handle: JobHandle<T>,
    on_done: OnDone<T, S>,
}

impl<T: 'static, S> AnyJob<S> for TypedJob<T, S> {
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
    fn finish(mut self: Box<Self>, state: &mut S) {
        let result = self
            .handle
            .take_result()
            .unwrap_or_else(|| Err("job vanished".to_string()));
        (self.on_done)(result, state);
    }
}

/// All background jobs the app has started and not yet collected; `S` is the state their
/// callbacks receive.
pub struct JobList<S> {
    next_id: u64,
    running: Vec<Box<dyn AnyJob<S>>>,
}

impl<S> Default for JobList<S> {
    fn default() -> Self {
        Self {
            next_id: 0,
            running: Vec::new(),
        }
    }
}

/// A job that has ended, taken out of the list: [`Finished::finish`] runs its callback.
pub(crate) struct Finished<S>(Box<dyn AnyJob<S>>);

impl<S> Finished<S> {
    /// Runs the job's callback with its result.
    pub(crate) fn finish(self, state: &mut S) {
        self.0.finish(state)
    }
}

impl<S: 'static> JobList<S> {
    /// Registers a spawned job and the callback that receives its result on the UI thread.
    pub(crate) fn push<T: 'static>(
        &mut self,
        handle: JobHandle<T>,
        on_done: OnDone<T, S>,
    ) -> JobId {
        self.next_id += 1;
        let id = JobId(self.next_id);
        self.running.push(Box::new(TypedJob {
            id,
            handle,
            on_done,
        }));
        id
    }

    /// Polls every job's events and takes out the ones that ended, oldest first (their
    /// callbacks may start new jobs, so the caller runs them after this returns).
    pub(crate) fn collect_finished(&mut self) -> Vec<Finished<S>> {
        for j in self.running.iter_mut() {
            j.poll();
        }
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|j| j.is_finished());
        self.running = running;
        done.into_iter().map(Finished).collect()
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
