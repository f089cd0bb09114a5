//! One budget of bytes for every push being received at once, across all
//! listeners, so that many slow senders cannot exhaust memory: without it
//! the worst case is `concurrent_requests × max_push_bytes` per listener
//! (32 GiB with the shipped configs).
//!
//! A connection reserves bytes before it buffers them and gives them back
//! when the push was applied or refused. Two ways, so that an overload
//! admits pushes whole, a few at a time, instead of everybody holding a
//! part and waiting for more (which nobody gets):
//!
//! * A push whose size is known up front (a Cap'n Proto message once its
//!   segment table is read) reserves its whole size at once
//!   ([`ByteBudget::hold_whole`]), in arrival order.
//! * A push whose size is not known (a JSON document read to EOF) grows its
//!   reservation in steps ([`ByteBudget::grow`]) from a share of the budget
//!   capped for such partial holders. When a step finds no room, the push
//!   waits in the same arrival order for the rest of `max_push_bytes`,
//!   becomes whole and gives its share back. As partial holders can never
//!   hold more than the budget minus one maximum push, the first in line
//!   always gets its bytes once the whole holders (which wait for nothing
//!   but their senders) finish: there is no deadlock, only waiting.
//!
//! Every wait is bounded by a deadline (the connection's), after which the
//! push is refused with a message naming `limits.max_inflight_push_bytes`.
//! Each reservation is O(1): one or two semaphore operations, no
//! allocation.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes are counted in units of this size (a tokio semaphore takes at
/// most `u32::MAX` permits at once; 1 KiB units cover 4 TiB).
const UNIT: usize = 1024;

/// Partial holders (pushes of unknown size growing in steps) may hold at
/// most this fraction of the budget: the rest admits whole pushes. A
/// quarter of the default 256 MiB lets a thousand 64 KiB documents grow
/// at once, and leaves twelve full-size pushes' worth for whole ones.
const PARTIAL_SHARE_DIVISOR: usize = 4;

/// The shared budget.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    /// Every unit of the budget; waiters are served in arrival order.
    sem: Arc<Semaphore>,
    /// The cap on units held by partial holders (taken on top of `sem`).
    partial: Arc<Semaphore>,
    units: usize,
    /// `max_push_bytes` in units: what a push of unknown size becomes
    /// whole at.
    max_units: usize,
}

/// Bytes held by one connection; returned to the budget on drop.
#[derive(Debug, Default)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
    /// This connection's part of the partial holders' cap, while it grows
    /// in steps.
    partial: Option<OwnedSemaphorePermit>,
    units: usize,
    /// Reserved whole: no more steps, no more waiting.
    whole: bool,
}

impl Held {
    /// Bytes held (rounded up to the unit).
    pub fn bytes(&self) -> usize {
        self.units * UNIT
    }

    /// Returns everything to the budget.
    pub fn release(&mut self) {
        *self = Held::default();
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
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
    /// A budget of `bytes` (at least one unit) for pushes of at most
    /// `max_push_bytes` each.
    pub fn new(bytes: usize, max_push_bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        let max_units = max_push_bytes.div_ceil(UNIT).clamp(1, units);
        // At least one maximum push always fits beside the partial holders.
        let partial = (units / PARTIAL_SHARE_DIVISOR).min(units - max_units);
        ByteBudget {
            sem: Arc::new(Semaphore::new(units)),
            partial: Arc::new(Semaphore::new(partial)),
            units,
            max_units,
        }
    }

    /// The budget in bytes.
    pub fn total(&self) -> usize {
        self.units * UNIT
    }

    /// Bytes currently reserved by all connections (waiters in line may
    /// already hold part of what they wait for).
    pub fn in_use(&self) -> usize {
        (self.units - self.sem.available_permits()) * UNIT
    }

    fn exhausted(&self) -> BudgetError {
        BudgetError::Exhausted {
            budget: self.total(),
        }
    }

    /// Reserves `bytes` more for a push whose size is known, without
    /// waiting: an error when the budget does not have them now.
    pub fn try_hold_whole(&self, held: &mut Held, bytes: usize) -> Result<(), BudgetError> {
        let n = u32::try_from(bytes.div_ceil(UNIT)).map_err(|_| self.exhausted())?;
        if n == 0 {
            return Ok(());
        }
        let permit = self
            .sem
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| self.exhausted())?;
        held.add(permit);
        held.units += n as usize;
        held.whole = true;
        Ok(())
    }

    /// Reserves `bytes` more for a push whose size is known, in arrival
    /// order, waiting until `deadline` for other pushes to give bytes back.
    pub async fn hold_whole(
        &self,
        held: &mut Held,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), BudgetError> {
        let units = bytes.div_ceil(UNIT);
        if held.units + units > self.units {
            return Err(self.exhausted());
        }
        let n = u32::try_from(units).map_err(|_| self.exhausted())?;
        if n == 0 {
            return Ok(());
        }
        let acquire = self.sem.clone().acquire_many_owned(n);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(p)) => {
                held.add(p);
                held.units += units;
                held.whole = true;
                Ok(())
            }
            _ => Err(self.exhausted()),
        }
    }

    /// A reservation of `bytes` for a push whose size is known, in arrival
    /// order, as a future that owns what it needs (for readers that poll,
    /// such as the RPC connection's); the caller bounds the wait.
    pub fn reserve_whole(
        &self,
        bytes: usize,
    ) -> impl std::future::Future<Output = Result<Held, BudgetError>> + Send + 'static {
        let units = bytes.div_ceil(UNIT);
        let exhausted = self.exhausted();
        let n = u32::try_from(units).ok().filter(|_| units <= self.units);
        let sem = self.sem.clone();
        async move {
            let n = n.ok_or(exhausted)?;
            let permit = sem.acquire_many_owned(n).await.map_err(|_| exhausted)?;
            Ok(Held {
                permit: Some(permit),
                partial: None,
                units,
                whole: true,
            })
        }
    }

    /// Grows `held` so that it covers `bytes` in total, for a push whose
    /// size is not known up front: a step from the partial holders' share
    /// when there is room, otherwise (in arrival order, until `deadline`)
    /// the rest of a maximum push at once.
    pub async fn grow(
        &self,
        held: &mut Held,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), BudgetError> {
        let want = bytes.div_ceil(UNIT);
        if want <= held.units {
            return Ok(());
        }
        if held.whole || want > self.max_units {
            return Err(self.exhausted());
        }
        let more = u32::try_from(want - held.units).map_err(|_| self.exhausted())?;
        if let Ok(share) = self.partial.clone().try_acquire_many_owned(more) {
            if let Ok(p) = self.sem.clone().try_acquire_many_owned(more) {
                held.add(p);
                match &mut held.partial {
                    Some(s) => s.merge(share),
                    None => held.partial = Some(share),
                }
                held.units = want;
                return Ok(());
            }
        }
        let rest = self.max_units - held.units;
        self.hold_whole(held, rest * UNIT, deadline).await?;
        // Whole now: the share goes back for other partial holders.
        held.partial = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(1)
    }

    #[tokio::test(start_paused = true)]
    async fn whole_reservations_wait_in_arrival_order_then_fail() {
        let budget = ByteBudget::new(10 * UNIT, 10 * UNIT);
        let mut a = Held::default();
        budget.hold_whole(&mut a, 6 * UNIT, soon()).await.unwrap();
        assert_eq!((a.bytes(), budget.in_use()), (6 * UNIT, 6 * UNIT));
        let mut b = Held::default();
        let e = budget
            .hold_whole(&mut b, 5 * UNIT, soon())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("max_inflight_push_bytes"), "{e}");
        assert_eq!(b.bytes(), 0);
        // Over the whole budget: refused without waiting.
        assert!(budget.hold_whole(&mut b, 11 * UNIT, soon()).await.is_err());
        // A large waiter is not overtaken by a small one that would fit.
        let later = Instant::now() + Duration::from_secs(60);
        let large = tokio::spawn(budget.reserve_whole(8 * UNIT));
        tokio::task::yield_now().await;
        let small = tokio::spawn(budget.reserve_whole(3 * UNIT));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!large.is_finished() && !small.is_finished());
        drop(a);
        let large = large.await.unwrap().unwrap();
        assert_eq!(large.bytes(), 8 * UNIT);
        tokio::time::sleep_until(later).await;
        assert!(!small.is_finished(), "3 units do not fit beside 8");
        drop(large);
        assert_eq!(small.await.unwrap().unwrap().bytes(), 3 * UNIT);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn pushes_of_unknown_size_become_whole_instead_of_deadlocking() {
        // 16 units, pushes of at most 8: partial holders share 4 units.
        let budget = ByteBudget::new(16 * UNIT, 8 * UNIT);
        let far = || Instant::now() + Duration::from_secs(3600);
        let mut growers: Vec<Held> = (0..4).map(|_| Held::default()).collect();
        for g in &mut growers {
            budget.grow(g, UNIT, far()).await.unwrap();
            assert!(!g.whole);
        }
        // The share is used up: the next one reserves a whole push at once.
        let mut fifth = Held::default();
        budget.grow(&mut fifth, UNIT, far()).await.unwrap();
        assert_eq!((fifth.bytes(), fifth.whole), (8 * UNIT, true));
        // Growing further within its reservation costs nothing.
        budget.grow(&mut fifth, 8 * UNIT, far()).await.unwrap();
        assert_eq!(budget.in_use(), 12 * UNIT);
        // Two partial holders need more: they wait, in order, for the rest
        // of a maximum push; nobody else holds a part they wait for.
        let [mut g1, mut g2, g3, g4] = <[Held; 4]>::try_from(growers).unwrap();
        let b = budget.clone();
        let first = tokio::spawn(async move { b.grow(&mut g1, 2 * UNIT, far()).await.map(|_| g1) });
        tokio::task::yield_now().await;
        let b = budget.clone();
        let second =
            tokio::spawn(async move { b.grow(&mut g2, 2 * UNIT, far()).await.map(|_| g2) });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!first.is_finished());
        drop(fifth);
        let g1 = first.await.unwrap().unwrap();
        assert_eq!(
            (g1.bytes(), g1.whole, g1.partial.is_none()),
            (8 * UNIT, true, true)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !second.is_finished(),
            "7 more units do not fit beside 8 + 3"
        );
        drop(g1);
        let g2 = second.await.unwrap().unwrap();
        assert_eq!(g2.bytes(), 8 * UNIT);
        // Over the maximum push: refused.
        let mut big = Held::default();
        assert!(budget.grow(&mut big, 9 * UNIT, far()).await.is_err());
        drop((g2, g3, g4));
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_refused_and_holds_nothing_new() {
        let budget = ByteBudget::new(4 * UNIT, 4 * UNIT);
        let mut a = Held::default();
        budget.hold_whole(&mut a, 4 * UNIT, soon()).await.unwrap();
        let mut b = Held::default();
        let e = budget.grow(&mut b, UNIT, soon()).await.unwrap_err();
        assert!(e.to_string().contains("max_inflight_push_bytes"), "{e}");
        assert_eq!(b.bytes(), 0);
        assert!(budget.try_hold_whole(&mut b, UNIT).is_err());
        drop(a);
        budget.try_hold_whole(&mut b, UNIT).unwrap();
        assert_eq!(budget.in_use(), UNIT);
    }
}
