//! One budget of bytes for every push being received at once, across all
//! listeners, so that many slow senders cannot exhaust memory: without it
//! the worst case is `concurrent_requests × max_push_bytes` per listener
//! (32 GiB with the shipped configs).
//!
//! A connection reserves bytes before it buffers them (a JSON document as
//! it grows, a Cap'n Proto message once its segment table announced its
//! size) and gives them back when the push was applied or refused. A
//! reservation over the budget waits, within the connection's read
//! deadline, for others to finish; then the push is refused with the
//! reason.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes are counted in units of this size (a tokio semaphore takes at
/// most `u32::MAX` permits at once; 1 KiB units cover 4 TiB).
const UNIT: usize = 1024;

/// The shared budget.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    sem: Arc<Semaphore>,
    units: usize,
}

/// Bytes held by one connection; returned to the budget on drop.
#[derive(Debug, Default)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
}

impl Held {
    /// Bytes held (rounded up to the unit).
    pub fn bytes(&self) -> usize {
        self.units * UNIT
    }

    /// Returns everything to the budget.
    pub fn release(&mut self) {
        self.permit = None;
        self.units = 0;
    }
}

/// Why bytes could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetError {
    /// Other pushes held the budget until the deadline.
    Exhausted {
        /// The budget, in bytes.
        budget: usize,
    },
}

impl std::fmt::Display for BudgetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetError::Exhausted { budget } => write!(
                f,
                "the proxy is receiving too many pushes at once (limits.max_inflight_push_bytes = {budget} bytes in use); retry later"
            ),
        }
    }
}

impl ByteBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        ByteBudget {
            sem: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// The budget in bytes.
    pub fn total(&self) -> usize {
        self.units * UNIT
    }

    /// Bytes currently reserved by all connections.
    pub fn in_use(&self) -> usize {
        (self.units - self.sem.available_permits()) * UNIT
    }

    /// Grows `held` so that it covers `bytes` in total if the budget has
    /// the bytes now (for readers that cannot wait).
    pub fn try_hold(&self, held: &mut Held, bytes: usize) -> Result<(), BudgetError> {
        let want = bytes.div_ceil(UNIT);
        if want <= held.units {
            return Ok(());
        }
        let exhausted = BudgetError::Exhausted {
            budget: self.total(),
        };
        let n = u32::try_from(want - held.units).map_err(|_| exhausted)?;
        let permit = self
            .sem
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| exhausted)?;
        match &mut held.permit {
            Some(p) => p.merge(permit),
            None => held.permit = Some(permit),
        }
        held.units = want;
        Ok(())
    }

    /// Grows `held` so that it covers `bytes` in total, waiting until
    /// `deadline` for other connections to give bytes back.
    pub async fn hold(
        &self,
        held: &mut Held,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), BudgetError> {
        let want = bytes.div_ceil(UNIT);
        if want <= held.units {
            return Ok(());
        }
        let more = want - held.units;
        let exhausted = BudgetError::Exhausted {
            budget: self.total(),
        };
        if want > self.units {
            return Err(exhausted);
        }
        let n = u32::try_from(more).map_err(|_| exhausted)?;
        let permit = match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                match tokio::time::timeout_at(deadline, self.sem.clone().acquire_many_owned(n))
                    .await
                {
                    Ok(Ok(p)) => p,
                    _ => return Err(exhausted),
                }
            }
        };
        match &mut held.permit {
            Some(p) => p.merge(permit),
            None => held.permit = Some(permit),
        }
        held.units = want;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn reservations_wait_for_the_budget_then_fail() {
        let budget = ByteBudget::new(10 * UNIT);
        let soon = || Instant::now() + Duration::from_secs(1);
        let mut a = Held::default();
        budget.hold(&mut a, 6 * UNIT, soon()).await.unwrap();
        budget.hold(&mut a, 7 * UNIT - 5, soon()).await.unwrap();
        assert_eq!((a.bytes(), budget.in_use()), (7 * UNIT, 7 * UNIT));
        let mut b = Held::default();
        let e = budget.hold(&mut b, 4 * UNIT, soon()).await.unwrap_err();
        assert!(e.to_string().contains("max_inflight_push_bytes"), "{e}");
        assert_eq!(b.bytes(), 0);
        // Over the whole budget: refused without waiting.
        assert!(budget.hold(&mut b, 11 * UNIT, soon()).await.is_err());
        // A waiter gets the bytes once the holder lets go.
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut b = Held::default();
                budget
                    .hold(&mut b, 8 * UNIT, soon())
                    .await
                    .map(|_| b.bytes())
            })
        };
        tokio::task::yield_now().await;
        drop(a);
        assert_eq!(waiter.await.unwrap(), Ok(8 * UNIT));
        assert_eq!(budget.in_use(), 0);
    }
}
