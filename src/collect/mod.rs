//! Config-driven API collectors: any HTTP/JSON (or HTML) API turned into
//! Prometheus metrics by configuration alone, each collector an internal
//! app of kind `collector`.
//!
//! * [`spec`]: the definitions (`[[collectors]]` or `collectors_file`),
//!   validated with every problem naming the collector and the key.
//! * [`path`]: value paths (JSON pointer or dotted with `[*]`).
//! * [`expr`]: bounded jq expressions for values and labels.
//! * [`timeref`]: time placeholders (`${now-1m}`) in requests.
//! * [`secret`]: secrets from a whole file, the environment or a
//!   `KEY="value"` file.
//! * [`value`]: number parsing (strings, comma decimals, booleans, value
//!   maps, scale).
//! * [`mapping`]: the same metric syntax over a polled target's JSON body.
//! * [`metrics`]: the mappings, delta counters, summaries and histograms.
//! * [`run`]: one collector as a [`Job`](crate::outbound::scheduler::Job) of the
//!   poller's scheduler: steps, cookie jar, cache, store, self-metrics.

pub mod expr;
pub mod mapping;
pub mod metrics;
pub mod path;
pub mod run;
pub mod secret;
pub mod spec;
pub mod timeref;
pub mod value;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::outbound::scheduler::{Reconciled, Scheduler};
use crate::store::Store;
pub use run::CollectJob;
pub use spec::CollectorConfig;

/// Every collector of the proxy, on one scheduler.
#[derive(Debug)]
pub struct Collectors {
    scheduler: Scheduler<CollectJob>,
    store: Arc<Store>,
}

impl Collectors {
    /// At most `max_concurrent` cycles at once, until `shutdown`.
    pub fn new(store: Arc<Store>, max_concurrent: usize, shutdown: CancellationToken) -> Self {
        Collectors {
            scheduler: Scheduler::new(max_concurrent, shutdown),
            store,
        }
    }

    /// Makes the running collectors equal to `defs`.
    pub async fn set(&self, defs: Vec<CollectorConfig>) -> Reconciled {
        let jobs = defs
            .into_iter()
            .map(|d| CollectJob::new(d, self.store.clone()))
            .collect();
        self.scheduler.reconcile(jobs).await
    }

    /// Stops every collector and waits for them.
    pub async fn stop(&self) {
        self.scheduler.stop_all().await;
    }
}

#[cfg(test)]
mod compute_tests;
#[cfg(test)]
mod tests;
