//! The health record of an outbound job (poll target, registered target,
//! collector): up or down, when it last succeeded, and what a result does
//! to `/apps` and the self-metrics.
//!
//! A success counts the poll in the self-metrics; a failure counts it by
//! its closed reason, shows `reason: message` in `/apps`, and drops the
//! app's last good data once `stale_after` has passed since the last
//! success. The caller logs the [`Outcome`] with its own span fields.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{AppKind, Store};
use crate::telemetry::PollFailure;

/// A failed run: its closed reason and a message for `/apps` and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The label value.
    pub reason: PollFailure,
    /// What happened, naming the status or the setting at fault (never a
    /// secret, never a URL with a query).
    pub message: String,
}

/// A failure with its reason and message.
pub fn fail(reason: PollFailure, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
    }
}

/// How a run changed the job's state, for the caller's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded after a failure or for the first time.
    CameUp,
    /// Succeeded again.
    StillUp,
    /// Failed after a success or for the first time.
    WentDown,
    /// Failed again.
    StillDown,
}

/// Who the job is, as the store and the self-metrics know it.
#[derive(Debug, Clone, Copy)]
pub struct JobRef<'a> {
    /// The app name.
    pub name: &'a str,
    /// The app's kind.
    pub kind: AppKind,
    /// The source shown in `/apps` (a URL without credentials, or a name).
    pub source: &'a str,
    /// How long the last good data is served while runs fail.
    pub stale_after: Duration,
}

#[derive(Debug, Default)]
struct State {
    last_success: Option<Instant>,
    /// `None` before the first run.
    up: Option<bool>,
    /// Failed runs since the last success (or the start).
    failures_in_row: u32,
}

/// Up/down state of one job, and its failed runs in a row (what eviction
/// of a registered target counts).
#[derive(Debug, Default)]
pub struct Health(Mutex<State>);

impl Health {
    /// Failed runs since the last success (or since the start).
    pub fn failures_in_row(&self) -> u32 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failures_in_row
    }

    /// Records a run's result in the store and the self-metrics.
    pub fn record(
        &self,
        store: &Store,
        job: JobRef<'_>,
        elapsed: Duration,
        result: Result<(), &Failure>,
    ) -> Outcome {
        let metrics = store.self_metrics();
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let was_up = state.up;
        match result {
            Ok(()) => {
                state.last_success = Some(Instant::now());
                state.up = Some(true);
                state.failures_in_row = 0;
                drop(state);
                metrics.poll_result(job.name, elapsed, Ok(()));
                if was_up == Some(true) {
                    Outcome::StillUp
                } else {
                    Outcome::CameUp
                }
            }
            Err(f) => {
                let stale = state
                    .last_success
                    .is_none_or(|t| t.elapsed() >= job.stale_after);
                state.up = Some(false);
                state.failures_in_row = state.failures_in_row.saturating_add(1);
                drop(state);
                metrics.poll_result(job.name, elapsed, Err(f.reason));
                let message = format!("{}: {}", f.reason.as_str(), f.message);
                store.record_poll_failure(job.name, job.kind, job.source, &message, stale);
                if was_up == Some(false) {
                    Outcome::StillDown
                } else {
                    Outcome::WentDown
                }
            }
        }
    }
}

impl Failure {
    /// A transport error, by its kind, with its text without the URL.
    pub fn transport(e: reqwest::Error) -> Failure {
        let reason = match super::classify(&e) {
            super::Transport::Timeout => PollFailure::Timeout,
            super::Transport::Connect => PollFailure::Connect,
            super::Transport::Decode => PollFailure::InvalidBody,
            super::Transport::Other => PollFailure::Request,
        };
        fail(reason, super::error_chain(e))
    }

    /// A status other than 2xx.
    pub fn status(s: super::BadStatus) -> Failure {
        fail(PollFailure::HttpStatus, s.to_string())
    }

    /// A body that could not be read; `key` names the size setting.
    pub fn body(e: super::BodyError, key: &str) -> Failure {
        match e {
            super::BodyError::TooLarge { limit } => fail(
                PollFailure::TooLarge,
                format!("body larger than {key} ({limit} bytes)"),
            ),
            super::BodyError::Transport(e) => Failure::transport(e),
        }
    }
}
