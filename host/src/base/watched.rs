//! A value that changes now and then, and tasks that wait for it to: what
//! the process model needs of tokio's `watch` channel (a process's stop
//! request, its end), without its cost. A `watch` channel spreads its
//! waiters over eight `Notify`s and signals all eight at every change and
//! when it is dropped; with two per process that was about a tenth of a
//! minimal module's start+join (measured: 361 ns to make, change once and
//! drop a `watch` channel, 32 ns for a mutex and one `Notify`).

use std::pin::pin;
use std::sync::Mutex;

use tokio::sync::Notify;

/// A value, the number of times it changed, and its waiters.
pub(crate) struct Watched<T> {
    state: Mutex<Versioned<T>>,
    changed: Notify,
}

struct Versioned<T> {
    value: T,
    /// Changes so far (0 for the value it was made with).
    version: u64,
}

impl<T: Clone> Watched<T> {
    pub(crate) fn new(value: T) -> Self {
        Watched { state: Mutex::new(Versioned { value, version: 0 }), changed: Notify::new() }
    }

    pub(crate) fn get(&self) -> T {
        self.state.lock().unwrap().value.clone()
    }

    /// What `read` makes of the value, without cloning it.
    pub(crate) fn with<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&self.state.lock().unwrap().value)
    }

    /// Lets `change` modify the value; if it says it did (true), the
    /// waiters are woken. Whether it did.
    pub(crate) fn modify(&self, change: impl FnOnce(&mut T) -> bool) -> bool {
        let mut state = self.state.lock().unwrap();
        if !change(&mut state.value) {
            return false;
        }
        state.version += 1;
        drop(state);
        self.changed.notify_waiters();
        true
    }

    /// The value, once `ready` holds for it.
    pub(crate) async fn wait_for(&self, ready: impl Fn(&T) -> bool) -> T {
        self.wait_until(|state| ready(&state.value)).await.value
    }

    /// The version and the value once it has changed more than `seen`
    /// times: the next change after what a watcher saw (0 is the value it
    /// was made with, so a watcher starting at 0 sees any change made
    /// before it came).
    pub(crate) async fn changed_since(&self, seen: u64) -> (u64, T) {
        let state = self.wait_until(|state| state.version > seen).await;
        (state.version, state.value)
    }

    async fn wait_until(&self, done: impl Fn(&Versioned<T>) -> bool) -> Versioned<T> {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            {
                let state = self.state.lock().unwrap();
                if done(&state) {
                    return Versioned { value: state.value.clone(), version: state.version };
                }
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_see_the_change_they_wait_for_and_a_watcher_each_change_past_what_it_saw() {
        let watched = Arc::new(Watched::new(None::<u32>));
        let waiter = tokio::spawn({
            let watched = watched.clone();
            async move { watched.wait_for(Option::is_some).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!watched.modify(|_| false), "no change, no wake-up");
        assert!(!waiter.is_finished());
        assert!(watched.modify(|value| value.replace(7).is_none()));
        assert_eq!(waiter.await.unwrap(), Some(7));
        assert_eq!(watched.get(), Some(7));
        assert!(watched.with(Option::is_some));

        // A change made before the watcher came is seen from version 0.
        assert_eq!(watched.changed_since(0).await, (1, Some(7)));
        let watcher = tokio::spawn({
            let watched = watched.clone();
            async move { watched.changed_since(1).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!watcher.is_finished(), "nothing past version 1 yet");
        watched.modify(|value| value.replace(8).is_some());
        assert_eq!(watcher.await.unwrap(), (2, Some(8)));
    }
}
