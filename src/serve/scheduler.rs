//! The generation worker: one thread owns the model and advances up to `max_active` requests
//! one token each in turn (so a long request does not hold up a short one), taking new ones
//! from a bounded queue (full: the caller answers 429). Each request has its own unbounded
//! channel of [`Event`]s: the worker never waits on a client, and a request whose receiver is
//! gone (client disconnected) is dropped at its next turn. A panic or error while stepping a
//! request ends that request only.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;

use crate::model::{GenerateOptions, Generation, Hooks, Model};

use super::{Result, ServeError};

/// Why a generation ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// End of sequence or a stop string.
    Stop,
    /// `max_tokens` or the model's context reached.
    Length,
}

impl Finish {
    /// `stop` or `length`.
    pub fn name(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What the worker sends back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// More text (never empty).
    Text(String),
    /// The end, with token counts.
    Done {
        /// Why it ended.
        finish: Finish,
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Generated tokens (EOS excluded).
        completion_tokens: usize,
    },
    /// Generation failed; nothing more follows.
    Failed(String),
}

/// A request for the worker.
pub struct Job {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Sampling settings.
    pub opts: GenerateOptions,
    /// The request's steering.
    pub hooks: Hooks,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Where events go.
    pub events: UnboundedSender<Event>,
}

/// Counters the worker keeps (for `/health` and tests).
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests generating now.
    pub active: AtomicUsize,
    /// Requests waiting in the queue.
    pub queued: AtomicUsize,
    /// Requests finished normally.
    pub completed: AtomicU64,
    /// Requests dropped because their client went away.
    pub cancelled: AtomicU64,
    /// Requests that failed.
    pub failed: AtomicU64,
    /// Tokens generated in total.
    pub tokens: AtomicU64,
}

/// The sending side of the worker's queue.
#[derive(Clone)]
pub struct Scheduler {
    tx: SyncSender<Job>,
    stats: Arc<Stats>,
    capacity: usize,
}

impl Scheduler {
    /// Starts the worker thread on `model`; `max_active` requests generate at once and
    /// `max_queue` more may wait. The thread ends when every `Scheduler` clone is dropped and
    /// its active requests are done.
    pub fn start(
        model: Arc<Model>,
        max_active: usize,
        max_queue: usize,
    ) -> Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = sync_channel::<Job>(max_queue);
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        let handle = std::thread::Builder::new()
            .name("steerlab-serve-worker".into())
            .spawn(move || worker(&model, rx, max_active.max(1), &st))
            .map_err(|e| ServeError::Start(format!("worker thread: {e}")))?;
        Ok((
            Self {
                tx,
                stats,
                capacity: max_queue,
            },
            handle,
        ))
    }

    /// Queues `job`; a full queue is [`ServeError::QueueFull`].
    pub fn submit(&self, job: Job) -> Result<()> {
        // Counted before sending so the worker's decrement never runs first.
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stats.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => ServeError::QueueFull(self.capacity),
                    TrySendError::Disconnected(_) => ServeError::Unavailable,
                })
            }
        }
    }

    /// The worker's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Cuts generated text at stop strings and holds back a tail that could still become one.
#[derive(Debug, Default)]
pub struct StopText {
    stops: Vec<String>,
    text: String,
    sent: usize,
}

impl StopText {
    /// Watches for `stops`.
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            ..Default::default()
        }
    }

    /// Adds `piece`; returns the text that may be sent now and whether a stop string was hit
    /// (then nothing more must be sent).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        let from = self.sent;
        self.text.push_str(piece);
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        // Earliest stop string that ends in the new text.
        let search_from = from.saturating_sub(longest);
        let mut hit: Option<usize> = None;
        for s in &self.stops {
            let mut start = search_from;
            while !self.text.is_char_boundary(start) {
                start -= 1;
            }
            if let Some(i) = self.text[start..].find(s.as_str()) {
                let at = start + i;
                hit = Some(hit.map_or(at, |h: usize| h.min(at)));
            }
        }
        if let Some(at) = hit {
            let out = self.text[self.sent.min(at)..at].to_string();
            self.sent = at.max(self.sent);
            return (out, true);
        }
        let mut safe = self.text.len().saturating_sub(longest.saturating_sub(1));
        while safe > self.sent && !self.text.is_char_boundary(safe) {
            safe -= 1;
        }
        if safe <= self.sent {
            return (String::new(), false);
        }
        let out = self.text[self.sent..safe].to_string();
        self.sent = safe;
        (out, false)
    }

    /// What is held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        let out = self.text[self.sent..].to_string();
        self.sent = self.text.len();
        out
    }
}

struct Active<'m> {
    gen: Generation<'m>,
    stop: StopText,
    events: UnboundedSender<Event>,
}

/// Sends `ev`; false when the client is gone.
fn send(events: &UnboundedSender<Event>, ev: Event) -> bool {
    events.send(ev).is_ok()
}

/// One token of `a`; false once it is finished, failed or cancelled. Counters are updated
/// before the last event goes out, so a client that got its answer sees them in `/health`.
fn advance(a: &mut Active<'_>, stats: &Stats) -> bool {
    if a.events.is_closed() {
        stats.cancelled.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let step = catch_unwind(AssertUnwindSafe(|| a.gen.step()));
    let done = |a: &mut Active<'_>, finish: Finish| {
        let rest = a.stop.finish();
        if !rest.is_empty() {
            send(&a.events, Event::Text(rest));
        }
        send(
            &a.events,
            Event::Done {
                finish,
                prompt_tokens: a.gen.prompt_len(),
                completion_tokens: a.gen.tokens().len(),
            },
        );
    };
    match step {
        Ok(Ok(Some((_, piece)))) => {
            stats.tokens.fetch_add(1, Ordering::Relaxed);
            let (text, hit) = a.stop.push(&piece);
            if !text.is_empty() && !send(&a.events, Event::Text(text)) {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if hit {
                stats.completed.fetch_add(1, Ordering::Relaxed);
                send(
                    &a.events,
                    Event::Done {
                        finish: Finish::Stop,
                        prompt_tokens: a.gen.prompt_len(),
                        completion_tokens: a.gen.tokens().len(),
                    },
                );
                return false;
            }
            if a.gen.is_done() {
                let finish = if a.gen.hit_length_limit() {
                    Finish::Length
                } else {
                    Finish::Stop
                };
                stats.completed.fetch_add(1, Ordering::Relaxed);
                done(a, finish);
                return false;
            }
            true
        }
        Ok(Ok(None)) => {
            let finish = if a.gen.hit_length_limit() {
                Finish::Length
            } else {
                Finish::Stop
            };
            stats.completed.fetch_add(1, Ordering::Relaxed);
            done(a, finish);
            false
        }
        Ok(Err(e)) => {
            send(&a.events, Event::Failed(e.to_string()));
            stats.failed.fetch_add(1, Ordering::Relaxed);
            false
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            send(
                &a.events,
                Event::Failed(format!("internal error while generating: {msg}")),
            );
            stats.failed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

fn admit<'m>(model: &'m Model, job: Job, stats: &Stats) -> Option<Active<'m>> {
    stats.queued.fetch_sub(1, Ordering::SeqCst);
    if job.events.is_closed() {
        stats.cancelled.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let started = catch_unwind(AssertUnwindSafe(|| {
        model.start_generation(&job.prompt, &job.opts, &job.hooks)
    }));
    match started {
        Ok(Ok(gen)) => Some(Active {
            gen,
            stop: StopText::new(job.stop),
            events: job.events,
        }),
        Ok(Err(e)) => {
            send(&job.events, Event::Failed(e.to_string()));
            stats.failed.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(_) => {
            send(
                &job.events,
                Event::Failed("internal error while starting generation".into()),
            );
            stats.failed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn worker(model: &Model, rx: Receiver<Job>, max_active: usize, stats: &Stats) {
    let mut active: Vec<Active<'_>> = Vec::new();
    let mut open = true;
    loop {
        // Take new requests: block only when idle.
        while open && active.len() < max_active {
            let job = if active.is_empty() {
                match rx.recv() {
                    Ok(j) => j,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            } else {
                match rx.try_recv() {
                    Ok(j) => j,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            };
            if let Some(a) = admit(model, job, stats) {
                active.push(a);
            }
        }
        if active.is_empty() && !open {
            break;
        }
        stats.active.store(active.len(), Ordering::SeqCst);
        // One token each, in turn.
        active.retain_mut(|a| advance(a, stats));
        stats.active.store(active.len(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopText::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (t, hit) = s.push(p);
            out.push_str(&t);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&s.finish());
        (out, false)
    }

    #[test]
    fn stop_strings_cut_across_pieces() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["\n"], &["ab", "c\nd"]), ("abc".into(), true));
        // The stop string spans two pieces: nothing of it is sent.
        assert_eq!(run(&["END"], &["xE", "N", "Dy"]), ("x".into(), true));
        // A partial match that does not complete is sent at the end.
        assert_eq!(run(&["END"], &["xE", "N"]), ("xEN".into(), false));
        // The earliest of several stops wins.
        assert_eq!(run(&["b", "a"], &["xyab"]), ("xy".into(), true));
        // Multi-byte text near the hold-back boundary.
        assert_eq!(run(&["zz"], &["é", "ü", "zz"]), ("éü".into(), true));
    }
}
