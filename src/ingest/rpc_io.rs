//! The read half of an RPC connection, bounded in time and bytes the same
//! way as a stream connection: capnp-rpc reads its messages itself, so this
//! wrapper follows the standard framing as the bytes pass to know whether
//! the connection is between two messages or inside one.
//!
//! * Between two messages the silence is bounded by
//!   `limits.stream_idle_timeout` (or not at all with `never`).
//! * Inside a message, every read by `limits.idle_timeout`, and the whole
//!   message by `limits.read_timeout` from its first byte.
//! * A message's bytes are reserved whole from the shared [`ByteBudget`]
//!   when its segment table is complete (in arrival order with the stream
//!   listeners' pushes) and given back at its end. Over the budget the
//!   connection stops reading until the bytes are free, for at most
//!   `limits.idle_timeout` within the message's read time; then the
//!   connection ends with an error naming `limits.max_inflight_push_bytes`
//!   (RPC has no reply outside a call: capnp-rpc sends it as the abort
//!   reason, and the caller's pending calls fail with it).
//!
//! A timeout is an `io::Error` of kind `TimedOut`: capnp-rpc ends the
//! connection with it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::AsyncRead;
use tokio::time::{Instant, Sleep};

use super::budget::{BudgetError, ByteBudget, Held};
use super::config::Limits;

/// Where the reader is in the framing.
#[derive(Debug)]
enum Phase {
    /// Collecting a segment table (empty: between two messages).
    Table(Vec<u8>),
    /// Inside the segments, with this many bytes to go.
    Body(u64),
    /// A table capnp will refuse (too many segments): bound by the message
    /// deadline until the connection ends.
    Broken,
}

/// A whole message's reservation being waited for.
type Reservation = Pin<Box<dyn Future<Output = Result<Held, BudgetError>>>>;

/// Largest segment count we follow; capnp refuses more than 512.
const MAX_TRACKED_SEGMENTS: usize = 512;

/// An `AsyncRead` that enforces the stream bounds on capnp framing.
pub struct BoundedRead<R> {
    inner: R,
    phase: Phase,
    limits: Limits,
    budget: ByteBudget,
    held: Held,
    /// End of the current message's read time (set at its first byte).
    message_deadline: Instant,
    /// The timer for the current wait; `None` when waiting is unbounded.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Bytes seen, for error messages.
    offset: u64,
    /// The current message's reservation, while it waits for room; no
    /// more is read meanwhile. Allocated only when the budget is full.
    waiting: Option<Reservation>,
    /// Where the waiting message starts, for the error.
    waiting_at: u64,
}

impl<R> BoundedRead<R> {
    /// Wraps the read half of a new connection.
    pub fn new(inner: R, limits: Limits, budget: ByteBudget) -> Self {
        let mut r = BoundedRead {
            inner,
            phase: Phase::Table(Vec::new()),
            message_deadline: Instant::now() + limits.read_timeout,
            limits,
            budget,
            held: Held::default(),
            sleep: None,
            offset: 0,
            waiting: None,
            waiting_at: 0,
        };
        r.arm();
        r
    }

    fn between_messages(&self) -> bool {
        matches!(&self.phase, Phase::Table(t) if t.is_empty())
    }

    /// Sets the timer for the next wait from the current phase.
    fn arm(&mut self) {
        let deadline = if self.between_messages() {
            self.limits.stream_idle_timeout.map(|d| Instant::now() + d)
        } else {
            Some((Instant::now() + self.limits.idle_timeout).min(self.message_deadline))
        };
        self.sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
    }

    /// Follows the framing over `data`.
    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.between_messages() {
                self.message_deadline = Instant::now() + self.limits.read_timeout;
            }
            match &mut self.phase {
                Phase::Broken => return,
                Phase::Body(left) => {
                    let take = (*left).min(data.len() as u64);
                    *left -= take;
                    data = &data[take as usize..];
                    if *left == 0 {
                        self.end_message();
                    }
                }
                Phase::Table(table) => {
                    let segments = (table.len() >= 4).then(|| {
                        u32::from_le_bytes(table[..4].try_into().expect("4 bytes")) as usize + 1
                    });
                    let want = match segments {
                        None => 4,
                        Some(n) if n > MAX_TRACKED_SEGMENTS => {
                            self.phase = Phase::Broken;
                            continue;
                        }
                        // Count, one size per segment, padded to a word.
                        Some(n) => (4 + 4 * n).next_multiple_of(8),
                    };
                    let take = (want - table.len()).min(data.len());
                    table.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if let (Some(n), true) = (segments, table.len() == want) {
                        let words: u64 = table[4..4 + 4 * n]
                            .chunks_exact(4)
                            .map(|w| u64::from(u32::from_le_bytes(w.try_into().expect("4 bytes"))))
                            .sum();
                        self.start_body(want as u64 + words * 8);
                        self.phase = Phase::Body(words * 8);
                        if words == 0 {
                            self.end_message();
                        }
                    }
                }
            }
        }
    }

    /// Reserves the message's bytes: at once when the budget has them,
    /// otherwise the next reads wait for them.
    fn start_body(&mut self, total: u64) {
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        if total > self.limits.max_push_bytes {
            // capnp refuses it by its traversal limit; nothing to hold.
            return;
        }
        if self.budget.try_hold_whole(&mut self.held, total).is_err() {
            self.waiting = Some(Box::pin(self.budget.reserve_whole(total)));
            self.waiting_at = self.offset;
        }
    }

    fn end_message(&mut self) {
        // A message read whole in one go is in memory already: no waiting.
        self.waiting = None;
        self.held.release();
        self.phase = Phase::Table(Vec::new());
    }

    /// Whether the armed deadline has passed (registering for a wake-up
    /// at it when not).
    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }

    fn over_budget(&self, e: BudgetError) -> io::Error {
        io::Error::other(format!(
            "message at byte offset {}: no room within {:?} (limits.idle_timeout): {e}",
            self.waiting_at, self.limits.idle_timeout
        ))
    }

    fn timed_out(&self) -> io::Error {
        let what = if self.between_messages() {
            format!(
                "no new message within {:?} (limits.stream_idle_timeout)",
                self.limits.stream_idle_timeout.unwrap_or_default()
            )
        } else if Instant::now() >= self.message_deadline {
            format!(
                "message not complete within {:?} (limits.read_timeout)",
                self.limits.read_timeout
            )
        } else {
            format!(
                "no data within {:?} (limits.idle_timeout)",
                self.limits.idle_timeout
            )
        };
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("after byte offset {}: {what}", self.offset),
        )
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for BoundedRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(waiting) = this.waiting.as_mut() {
            match waiting.as_mut().poll(cx) {
                Poll::Ready(Ok(held)) => {
                    this.held = held;
                    this.waiting = None;
                    this.arm();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(this.over_budget(e))),
                Poll::Pending => {
                    if this.deadline_passed(cx) {
                        // Give the place in line (and any part of the
                        // bytes assigned to it) back.
                        this.waiting = None;
                        let e = BudgetError::Exhausted {
                            budget: this.budget.total(),
                        };
                        return Poll::Ready(Err(this.over_budget(e)));
                    }
                    return Poll::Pending;
                }
            }
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.offset += n as u64;
                this.observe(&buf[..n]);
                this.arm();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.deadline_passed(cx) {
                    Poll::Ready(Err(this.timed_out()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncReadExt;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    fn limits(stream_idle: Option<Duration>) -> Limits {
        Limits {
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(10),
            stream_idle_timeout: stream_idle,
            max_push_bytes: 1 << 20,
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_between_messages_has_its_own_bound() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let budget = ByteBudget::new(1 << 20, 1 << 20);
        let mut r = BoundedRead::new(
            server.compat(),
            limits(Some(Duration::from_secs(600))),
            budget.clone(),
        );
        let msg = crate::ingest::codec::encode_capnp("a", "x 1\n");
        let mut buf = vec![0u8; msg.len()];
        for _ in 0..3 {
            client.write_all(&msg).await.unwrap();
            r.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, msg);
            assert_eq!(budget.in_use(), 0, "given back at the message's end");
            // Far longer than the read and idle timeouts: still open.
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
        // Half a message: the idle timeout applies.
        client.write_all(&msg[..12]).await.unwrap();
        let mut part = [0u8; 12];
        r.read_exact(&mut part).await.unwrap();
        assert!(budget.in_use() > 0, "held while the message is read");
        let e = r.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("limits.idle_timeout"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn stream_idle_timeout_and_never() {
        let (_client, server) = tokio::io::duplex(64);
        let mut r = BoundedRead::new(
            server.compat(),
            limits(Some(Duration::from_secs(600))),
            ByteBudget::new(1 << 20, 1 << 20),
        );
        let mut buf = [0u8; 8];
        let e = r.read(&mut buf).await.unwrap_err();
        assert!(e.to_string().contains("limits.stream_idle_timeout"), "{e}");

        let (_client, server) = tokio::io::duplex(64);
        let mut r = BoundedRead::new(
            server.compat(),
            limits(None),
            ByteBudget::new(1 << 20, 1 << 20),
        );
        let read = tokio::time::timeout(Duration::from_secs(86_400), r.read(&mut buf)).await;
        assert!(read.is_err(), "`never`: still waiting after a day");
    }

    #[tokio::test(start_paused = true)]
    async fn messages_over_the_budget_wait_for_room_then_end_the_connection() {
        let msg = crate::ingest::codec::encode_capnp("a", "x 1\n");
        for frees_in_time in [true, false] {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let budget = ByteBudget::new(4096, 4096);
            let mut other = Held::default();
            budget.try_hold_whole(&mut other, 4096).unwrap();
            let mut r = BoundedRead::new(server.compat(), limits(None), budget.clone());
            // The segment table announces the size; the body comes later.
            client.write_all(&msg[..8]).await.unwrap();
            let mut buf = vec![0u8; msg.len()];
            assert_eq!(r.read(&mut buf).await.unwrap(), 8);
            client.write_all(&msg[8..]).await.unwrap();
            // Nothing more is read while the budget is full...
            let read = tokio::time::timeout(Duration::from_secs(5), r.read(&mut buf[8..])).await;
            assert!(read.is_err(), "waiting for room");
            if frees_in_time {
                // ...and the message goes on once another push is done.
                drop(other);
                r.read_exact(&mut buf[8..]).await.unwrap();
                assert_eq!(buf, msg);
                assert_eq!(budget.in_use(), 0, "given back at the message's end");
            } else {
                // ...or, after the idle timeout, the connection ends with
                // the reason.
                let e = r.read(&mut buf[8..]).await.unwrap_err();
                let e = e.to_string();
                assert!(
                    e.contains("max_inflight_push_bytes") && e.contains("limits.idle_timeout"),
                    "{e}"
                );
                assert_eq!(budget.in_use(), 4096, "the waiter gave its place back");
            }
        }
    }
}
