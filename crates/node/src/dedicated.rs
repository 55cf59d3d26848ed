//! The node's threads of their own for work in pods' namespaces: one makes sandboxes (with a
//! `SandboxFactory`), one starts containers (with a `Launcher`). Each runs its jobs one at a
//! time, in the order they were asked for, with state that only it touches.
//!
//! Making a sandbox is almost all kernel work under the kernel's network configuration lock, so
//! two at once only spin on it; starting a process is a clone and an exec. A thread of their own
//! goes straight from one to the next, where tasks taking turns on a busy runtime would wait to
//! be polled in between (and a thread made per job costs more than the job's own system calls).
//! In a burst the first pods run while the last wait, rather than all of them finishing
//! together at the end.

use std::sync::mpsc;

use tokio::sync::oneshot;

/// A job, given the thread's state (or why there is none).
type Job<S> = Box<dyn FnOnce(&mut Result<S, String>) + Send>;

/// A thread that runs jobs on a state `S` it made itself (which need not be `Send`).
#[derive(Debug)]
pub struct Dedicated<S> {
    name: &'static str,
    jobs: mpsc::Sender<Job<S>>,
}

impl<S: 'static> Dedicated<S> {
    /// Starts the thread `name`, which makes its state with `make` and then runs jobs within
    /// the calling tokio runtime (processes it starts are reaped there). If `make` fails, or a
    /// job panics (it may have stopped anywhere, even inside a pod's namespaces), every later
    /// job is refused with the reason. The thread ends when the `Dedicated` is dropped.
    pub fn start(
        name: &'static str,
        make: impl FnOnce() -> Result<S, String> + Send + 'static,
    ) -> std::io::Result<Dedicated<S>> {
        let (jobs, pending) = mpsc::channel::<Job<S>>();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new().name(name.into()).spawn(move || {
            let _runtime = runtime.enter();
            let mut state = make().map_err(|error| format!("the {name} thread could not start: {error}"));
            for job in pending {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut state))).is_err() {
                    state = Err(format!("a job on the {name} thread panicked, so it takes no more"));
                }
            }
        })?;
        Ok(Dedicated { name, jobs })
    }

    /// Runs `job` after those asked for earlier.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce(&mut S) -> T + Send + 'static) -> Result<T, String> {
        let (reply, done) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            let _ = reply.send(state.as_mut().map(job).map_err(|reason| reason.clone()));
        });
        let stopped = || format!("the {} thread has stopped", self.name);
        self.jobs.send(job).map_err(|_| stopped())?;
        // A job that panicked drops its reply unsent.
        done.await.unwrap_or_else(|_| Err(format!("a job on the {} thread panicked", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_in_order_on_its_own_thread() {
        let counter = Dedicated::start("test-counter", || Ok(Vec::<u32>::new())).unwrap();
        let caller = std::thread::current().id();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..5 {
            a.push(counter.run(move |seen| {
                seen.push(i);
                (seen.clone(), std::thread::current().id())
            }));
        }
        for job in a.drain(..) {
            b.push(job.await.unwrap());
        }
        assert_eq!(b.last().unwrap().0, vec![0, 1, 2, 3, 4]);
        assert!(b.iter().all(|(_, thread)| *thread != caller && *thread == b[0].1));
    }

    #[tokio::test]
    async fn refuses_work_after_a_failed_start_or_a_panic() {
        let broken = Dedicated::<()>::start("test-broken", || Err("no netlink".into())).unwrap();
        let refused = broken.run(|_| ()).await.unwrap_err();
        assert!(refused.contains("test-broken thread could not start: no netlink"), "{refused}");

        let fragile = Dedicated::start("test-fragile", || Ok(0u32)).unwrap();
        assert_eq!(fragile.run(|n| *n + 1).await, Ok(1));
        let panicked = fragile.run(|_| -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(panicked.contains("panicked"), "{panicked}");
        let after = fragile.run(|n| *n).await.unwrap_err();
        assert!(after.contains("takes no more"), "{after}");
    }
}
