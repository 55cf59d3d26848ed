//! How often a component that rebuilds its whole picture from the caches may do so: at most
//! once per period, as kube-proxy's `--min-sync-period` (client-go's `BoundedFrequencyRunner`).
//! The first change after a quiet spell is acted on at once; changes that arrive during a
//! rebuild, or within the period after one began, wait for the period's end and are taken
//! together. A trailing delay after every change would put the whole period on the latency of
//! every change instead.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct MinInterval {
    period: Duration,
    last: Option<Instant>,
}

impl MinInterval {
    pub fn new(period: Duration) -> MinInterval {
        MinInterval { period, last: None }
    }

    /// Waits until a run may begin (at once if none began within the period) and records
    /// that one begins now.
    pub async fn ready(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.period).await;
        }
        self.last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(5);

    /// When each of `runs` (offsets from the start at which a run is asked for) begins.
    async fn begins(asked: &[u64]) -> Vec<u64> {
        let start = Instant::now();
        let mut pace = MinInterval::new(PERIOD);
        let mut began = Vec::new();
        for &at in asked {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            pace.ready().await;
            began.push((Instant::now() - start).as_millis() as u64);
        }
        began
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_once_after_a_quiet_spell_and_at_most_once_a_period() {
        let cases: &[(&[u64], &[u64])] = &[
            // The first run never waits.
            (&[0], &[0]),
            (&[7], &[7]),
            // Asked again at once: the period's end.
            (&[0, 0, 0], &[0, 5, 10]),
            // Asked within the period: its end; after it: at once.
            (&[0, 3, 20, 21, 40], &[0, 5, 20, 25, 40]),
            // Exactly at the period's end: no wait.
            (&[0, 5], &[0, 5]),
        ];
        for (asked, expected) in cases {
            assert_eq!(begins(asked).await, *expected, "asked at {asked:?}");
        }
    }
}
