//! Waiting on several things at once (`multiprocessing.connection.wait`):
//! process sentinels, ready when the process has ended, and connections,
//! ready when there is something (or EOF) to receive.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use crate::ipc::connection::Connection;
use crate::ipc::sentinel::Sentinel;

/// Something [`Runtime::wait_for`](crate::Runtime::wait_for) can wait on.
#[derive(Clone, Copy, Debug)]
pub enum Waitable<'a> {
    Sentinel(&'a Sentinel),
    Connection(&'a Connection),
}

impl<'a> From<&'a Sentinel> for Waitable<'a> {
    fn from(sentinel: &'a Sentinel) -> Self {
        Waitable::Sentinel(sentinel)
    }
}

impl<'a> From<&'a Connection> for Waitable<'a> {
    fn from(connection: &'a Connection) -> Self {
        Waitable::Connection(connection)
    }
}

impl Waitable<'_> {
    pub fn is_ready(&self) -> bool {
        match self {
            Waitable::Sentinel(sentinel) => sentinel.is_ready(),
            Waitable::Connection(connection) => connection.is_ready(),
        }
    }

    async fn ready(self) {
        match self {
            Waitable::Sentinel(sentinel) => sentinel.cell.ended().await,
            Waitable::Connection(connection) => connection.ready().await,
        }
    }
}

/// Waits until at least one of `items` is ready or the timeout passes, and
/// returns the indices of all that are ready; empty on timeout.
pub(crate) async fn wait_ready(
    handle: &tokio::runtime::Handle,
    items: &[Waitable<'_>],
    timeout: Option<Duration>,
) -> Vec<usize> {
    crate::base::run_slot::schedule_waiting();
    let ready = || -> Vec<usize> { items.iter().enumerate().filter(|(_, w)| w.is_ready()).map(|(i, _)| i).collect() };
    let now = ready();
    if !now.is_empty() || timeout == Some(Duration::ZERO) {
        return now;
    }
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> =
        items.iter().map(|w| Box::pin(w.ready()) as Pin<Box<_>>).collect();
    let any_ready = std::future::poll_fn(|cx| {
        if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) { Poll::Ready(()) } else { Poll::Pending }
    });
    within(handle, timeout, any_ready).await;
    ready()
}

/// Runs `future` until it finishes (`Some`) or the timeout passes (`None`).
/// The timer belongs to the wmp runtime, so callers on any executor (or
/// none) can await this.
pub(crate) async fn within<F: Future>(
    handle: &tokio::runtime::Handle,
    timeout: Option<Duration>,
    future: F,
) -> Option<F::Output> {
    match timeout {
        None => Some(future.await),
        Some(limit) => {
            let sleep = {
                let _enter = handle.enter();
                tokio::time::sleep(limit)
            };
            // The future first: what is ready now is ready even with a
            // timeout of zero. An unbiased select picks a branch at random,
            // and a zero sleep is already elapsed when another worker has
            // moved the timer on since it was made (seen under load: a
            // `poll(0)` missed a waiting message).
            tokio::select! {
                biased;
                output = future => Some(output),
                () = sleep => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_ready_now_is_ready_even_with_a_zero_timeout() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let handle = runtime.handle().clone();
        runtime.block_on(async {
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert_eq!(within(&handle, Some(Duration::ZERO), std::future::ready(7)).await, Some(7));
            }
        });
        let pending = runtime.block_on(within(runtime.handle(), Some(Duration::ZERO), std::future::pending::<()>()));
        assert_eq!(pending, None);
    }
}
