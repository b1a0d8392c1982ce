//! Busy polling of the runtime's sockets for a short while after activity (`pvd target
//! --poll-us`, `pvd tapdisk --poll-us`).
//!
//! A thread that sleeps in `epoll_wait` and is woken by a packet costs 20-25 us per wake-up
//! on a virtual machine whose idle vCPU halted (the wake-up is an inter-processor interrupt
//! and a VM entry). At queue depth 1 a tapdisk sleeps twice per request (waiting for the
//! server's answer and for the client's next request) and a target once (for the next
//! command). While a daemon polls, its thread does not sleep, so these arrive without a
//! wake-up, at the price of the CPU time spent polling (bounded by the budget after the last
//! activity).
//!
//! How it polls: a task that yields in a loop. On a current-thread runtime a yielded task
//! makes the scheduler check the I/O driver without blocking (`epoll_wait` with a zero
//! timeout) before running it again, so every socket's readiness is seen as soon as it
//! happens. Once the budget has passed with no [`BusyPoll::mark`], the task waits for the
//! next mark and the thread sleeps as usual.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Largest `--poll-us`: polling longer than this after the last activity only burns CPU
/// (a disk answers sooner, or a sleep is cheap next to the wait).
pub const MAX_POLL_BUDGET: Duration = Duration::from_millis(10);

/// Largest request always worth polling for: a sleep and wake-up (20-50 us) is a large part
/// of a 4 KiB request's time but a small part of a 128 KiB one's, while with many requests
/// in flight the polling thread's CPU competes with the copies of large payloads (fio over
/// NBD at queue depth 32, alternated with qemu-storage-daemon: polling for every size took
/// 128 KiB writes from 1.39-1.90x down to 1.15-1.20x of it while 4 KiB writes rose from
/// 1.36x to 1.74-2.07x).
pub const MAX_POLLED_REQUEST: u32 = 64 * 1024;

/// Requests in flight (the one at hand included) at or below which a tapdisk polls for a
/// request of any size ([`BusyPoll::mark_request`]): it would otherwise sleep between them,
/// and none of its own requests competes for the CPU (`pvd demo`, 512 KiB writes at queue
/// depth 1 on two servers, three alternated runs: 1.81-1.84x of the physical disk polled,
/// 1.75-1.79x not).
pub const MAX_IN_FLIGHT_POLLED_AT_ANY_SIZE: usize = 2;

/// `last_mark_ns` before any mark: nothing happened yet, nothing to poll for.
const NEVER: u64 = u64::MAX;

/// The activity clock and the polling task's parking place, shared by the connections that
/// mark activity.
#[derive(Debug)]
pub struct BusyPoll {
    budget: Duration,
    epoch: Instant,
    /// Nanoseconds since `epoch` at the last mark ([`NEVER`] before the first).
    last_mark_ns: AtomicU64,
    /// The polling task is waiting for a mark (so a mark must wake it).
    parked: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    /// A poller that keeps polling `budget` after each mark; `budget` is clamped to
    /// [`MAX_POLL_BUDGET`].
    pub fn new(budget: Duration) -> Arc<BusyPoll> {
        Self::unclamped(budget.min(MAX_POLL_BUDGET))
    }

    fn unclamped(budget: Duration) -> Arc<BusyPoll> {
        Arc::new(BusyPoll {
            budget,
            epoch: Instant::now(),
            last_mark_ns: AtomicU64::new(NEVER),
            parked: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Something happened (a request arrived, replies were sent): poll for the budget from now.
    pub fn mark(&self) {
        self.last_mark_ns.store(self.now_ns(), Ordering::SeqCst);
        // The mark's store and the poller's `parked` store are both SeqCst, so either the
        // poller's re-check sees this mark or this load sees it parked (no lost wake-up).
        // A plain load first: while the poller runs (most marks), no read-modify-write.
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// [`BusyPoll::mark`] for a request of `len` bytes arriving or answered while `in_flight`
    /// requests are (it included): if it is at most [`MAX_POLLED_REQUEST`], or if at most
    /// [`MAX_IN_FLIGHT_POLLED_AT_ANY_SIZE`] are in flight.
    pub fn mark_request(&self, len: u32, in_flight: usize) {
        if len <= MAX_POLLED_REQUEST || in_flight <= MAX_IN_FLIGHT_POLLED_AT_ANY_SIZE {
            self.mark();
        }
    }

    /// [`BusyPoll::mark`] for a request of `len` bytes if it is at most [`MAX_POLLED_REQUEST`],
    /// whatever is in flight: what a storage server polls for. Its large commands end in a
    /// disk wait on an I/O thread; polling after them keeps the CPU from the other threads
    /// (another server's I/O thread) whose wake-ups then wait for a scheduler tick.
    pub fn mark_small_request(&self, len: u32) {
        if len <= MAX_POLLED_REQUEST {
            self.mark();
        }
    }

    /// Whether the budget since the last mark has not run out yet.
    fn within_budget(&self) -> bool {
        let last = self.last_mark_ns.load(Ordering::SeqCst);
        last != NEVER && self.now_ns().saturating_sub(last) < self.budget.as_nanos() as u64
    }

    /// Polls while marks keep coming, sleeps otherwise; never returns. Spawn it on the
    /// runtime whose sockets should be polled (one task per runtime).
    pub async fn run(self: Arc<Self>) {
        if self.budget.is_zero() {
            return;
        }
        loop {
            if self.within_budget() {
                // Give the CPU to any other thread that wants it (a server on this machine
                // receiving what was just sent) before checking the sockets again.
                std::thread::yield_now();
                tokio::task::yield_now().await;
                continue;
            }
            self.parked.store(true, Ordering::SeqCst);
            // A mark between the check above and `parked` being set would otherwise be lost.
            if self.within_budget() {
                self.parked.store(false, Ordering::Release);
                continue;
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_clamped() {
        assert_eq!(
            BusyPoll::new(Duration::from_secs(5)).budget(),
            MAX_POLL_BUDGET
        );
        assert_eq!(
            BusyPoll::new(Duration::from_micros(200)).budget(),
            Duration::from_micros(200)
        );
    }

    #[test]
    fn a_server_polls_for_small_commands_only() {
        let p = BusyPoll::new(Duration::from_millis(8));
        p.mark_small_request(MAX_POLLED_REQUEST + 512);
        assert!(
            !p.within_budget(),
            "a large command, even alone, does not poll"
        );
        p.mark_small_request(MAX_POLLED_REQUEST);
        assert!(p.within_budget());
    }

    #[test]
    fn a_mark_opens_the_budget_and_it_runs_out() {
        let p = BusyPoll::new(Duration::from_millis(8));
        assert!(!p.within_budget(), "no mark yet");
        p.mark();
        assert!(p.within_budget());
        std::thread::sleep(Duration::from_millis(20));
        assert!(!p.within_budget());
        p.mark_request(MAX_POLLED_REQUEST + 512, 32);
        assert!(
            !p.within_budget(),
            "a large request among many does not start polling"
        );
        p.mark_request(4096, 32);
        assert!(p.within_budget());
        std::thread::sleep(Duration::from_millis(20));
        p.mark_request(MAX_POLLED_REQUEST + 512, 1);
        assert!(p.within_budget(), "a large request on its own does");
    }

    /// Yields until `cond` holds (at most 2 s).
    async fn until(cond: impl Fn() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "condition never held"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The polling task starts parked, wakes on a mark, polls (other tasks keep running, it
    /// only yields), and parks again once the budget has passed.
    #[tokio::test(flavor = "current_thread")]
    async fn polls_after_a_mark_then_parks() {
        let p = BusyPoll::unclamped(Duration::from_millis(300));
        let task = tokio::spawn(p.clone().run());
        until(|| p.parked.load(Ordering::Acquire)).await;
        p.mark();
        assert!(!p.parked.load(Ordering::Acquire), "a mark unparks it");
        // While it polls, this task still gets to run: the poller only yields.
        let started = Instant::now();
        let mut turns = 0u32;
        while started.elapsed() < Duration::from_millis(20) {
            tokio::task::yield_now().await;
            turns += 1;
        }
        assert!(
            turns > 10,
            "other tasks starved while polling: {turns} turns"
        );
        assert!(
            !p.parked.load(Ordering::Acquire),
            "still polling within the budget"
        );
        until(|| p.parked.load(Ordering::Acquire)).await;
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "parked before the budget ran out"
        );
        task.abort();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn zero_budget_never_polls() {
        let p = BusyPoll::new(Duration::ZERO);
        tokio::time::timeout(Duration::from_secs(1), p.clone().run())
            .await
            .expect("run returns at once with a zero budget");
    }
}
