//! Medium accesses that outlive an aborted command.
//!
//! SAM-5 section 7.2 (ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET) and RFC
//! 7143 section 4.2.3.3: once a task management function reports FUNCTION COMPLETE, the tasks
//! it aborted have no further effect. A command whose `pwrite` already runs on an I/O thread
//! cannot be stopped there, so each task counts its accesses on I/O threads in an [`IoTrack`],
//! and the task-management answer waits until the tracks of the tasks it aborted are idle.
//! Without that wait, an initiator that aborts a slow WRITE and then writes the same blocks
//! again could see the aborted data land last.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

tokio::task_local! {
    /// The track of the command a task runs, for the blocking calls it makes.
    static CURRENT: Arc<IoTrack>;
}

/// The accesses of one command that are running on I/O threads.
#[derive(Debug, Default)]
pub(crate) struct IoTrack {
    running: AtomicUsize,
    idle: Notify,
}

/// One running access; dropping it ends the access.
#[derive(Debug)]
pub(crate) struct IoGuard(Arc<IoTrack>);

impl Drop for IoGuard {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl IoTrack {
    pub(crate) fn new() -> Arc<IoTrack> {
        Arc::new(IoTrack::default())
    }

    /// An access starts (on the thread about to run it, or handed to it).
    pub(crate) fn enter(self: &Arc<Self>) -> IoGuard {
        self.running.fetch_add(1, Ordering::AcqRel);
        IoGuard(self.clone())
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire) > 0
    }

    /// Resolves once no access is running.
    pub(crate) async fn finished(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so an access ending in between still wakes us.
            idle.as_mut().enable();
            if !self.is_running() {
                return;
            }
            idle.await;
        }
    }

    /// Runs `f` with this track as the current one (see [`current_access`]).
    pub(crate) async fn scope<F: Future>(self: Arc<Self>, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// Starts an access of the command the calling task runs, if it runs under
/// [`IoTrack::scope`].
pub(crate) fn current_access() -> Option<IoGuard> {
    CURRENT.try_with(|t| t.enter()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn finished_waits_for_every_access() {
        let t = IoTrack::new();
        t.finished().await;
        let a = t.enter();
        let b = t.enter();
        let waiter = tokio::spawn({
            let t = t.clone();
            async move { t.finished().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one access still runs");
        let thread = std::thread::spawn(move || drop(b));
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("finished after the last access")
            .unwrap();
        thread.join().unwrap();
        assert!(!t.is_running());
    }

    #[tokio::test]
    async fn the_current_track_follows_the_scope() {
        assert!(current_access().is_none(), "no track outside a scope");
        let t = IoTrack::new();
        t.clone()
            .scope(async {
                let g = current_access().expect("inside the scope");
                assert!(t.is_running());
                drop(g);
            })
            .await;
        assert!(!t.is_running());
    }
}
