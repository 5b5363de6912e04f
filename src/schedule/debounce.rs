//! Debounce: gathers the policy changes of a burst into one commit.

use chrono::{DateTime, TimeDelta, Utc};

/// How many windows a continuous stream of changes may hold a commit back.
pub const MAX_WINDOWS: i32 = 10;

/// A pure state machine: feed it the instants at which an automation's policies changed
/// (`change`), ask it when to fire (`fire_at`), and tell it when the commit ran (`fired`).
///
/// It fires once the changes have been quiet for `window` after the last one, or at the
/// latest `MAX_WINDOWS` windows after the first change of the burst, so a steady trickle
/// cannot hold a commit back forever. A zero window fires at the change itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    window: TimeDelta,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Debounce {
    pub fn new(window: std::time::Duration) -> Debounce {
        Debounce {
            window: TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX),
            first: None,
            last: None,
        }
    }

    /// Records a change seen at `at`. Changes may arrive out of order.
    pub fn change(&mut self, at: DateTime<Utc>) {
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }

    /// Whether changes are waiting for a commit.
    pub fn pending(&self) -> bool {
        self.first.is_some()
    }

    /// When to fire: `None` when nothing is pending.
    pub fn fire_at(&self) -> Option<DateTime<Utc>> {
        let (first, last) = (self.first?, self.last?);
        let quiet = last
            .checked_add_signed(self.window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let cap = self
            .window
            .checked_mul(MAX_WINDOWS)
            .and_then(|w| first.checked_add_signed(w))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Some(quiet.min(cap))
    }

    /// Whether it is time to fire at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.fire_at().is_some_and(|t| t <= now)
    }

    /// The commit ran at `now`: changes seen up to `now` are in it; later ones (possible
    /// when events are fed late) start the next burst.
    pub fn fired(&mut self, now: DateTime<Utc>) {
        if self.last.is_some_and(|l| l > now) {
            // A change after the commit's start is not in it: it starts a new burst.
            self.first = self.last;
        } else {
            self.first = None;
            self.last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(1_800_000_000 + secs)
    }

    /// Replays changes at the given seconds, ticking every second, and returns the seconds
    /// at which it fired.
    fn replay(window: u64, changes: &[i64], until: i64) -> Vec<i64> {
        let mut d = Debounce::new(Duration::from_secs(window));
        let mut fired = Vec::new();
        for s in 0..=until {
            for _ in changes.iter().filter(|c| **c == s) {
                d.change(t(s));
            }
            if d.due(t(s)) {
                fired.push(s);
                d.fired(t(s));
            }
        }
        fired
    }

    #[test]
    fn nothing_pending_never_fires() {
        let d = Debounce::new(Duration::from_secs(120));
        assert!(!d.pending());
        assert_eq!(d.fire_at(), None);
        assert!(!d.due(t(1_000_000)));
        assert!(replay(120, &[], 1000).is_empty());
    }

    #[test]
    fn a_burst_becomes_one_commit_after_the_quiet_window() {
        // Five changes within 40 s, window 2 min: one commit, 2 min after the last.
        assert_eq!(replay(120, &[10, 20, 25, 40, 50], 1000), vec![170]);
    }

    #[test]
    fn two_bursts_far_apart_are_two_commits() {
        assert_eq!(replay(60, &[0, 5, 500, 530], 1000), vec![65, 590]);
    }

    #[test]
    fn a_steady_trickle_is_capped() {
        // A change every 50 s with a 60 s window never goes quiet; the cap fires it at
        // first + 10 windows, and the rest of the trickle starts the next burst.
        let changes: Vec<i64> = (0..40).map(|n| n * 50).collect();
        let fired = replay(60, &changes, 3000);
        assert_eq!(fired[0], 600);
        assert_eq!(fired[1], 1250); // first change after 600 is 650; 650 + 600
        assert_eq!(*fired.last().unwrap(), 1950 + 60);
    }

    #[test]
    fn a_zero_window_fires_at_the_change() {
        assert_eq!(replay(0, &[3, 3, 9], 20), vec![3, 9]);
    }

    #[test]
    fn out_of_order_and_late_changes() {
        let mut d = Debounce::new(Duration::from_secs(30));
        d.change(t(100));
        d.change(t(90));
        assert_eq!(d.fire_at(), Some(t(130)));
        // A change stamped after the firing instant starts the next burst.
        d.change(t(140));
        d.fired(t(135));
        assert!(d.pending());
        assert_eq!(d.fire_at(), Some(t(170)));
        d.fired(t(170));
        assert!(!d.pending());
    }
}
