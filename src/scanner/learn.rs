//! Facts about a registry origin that the scanner learns once per process (its auth
//! challenge, whether it honours `last=`): the first session to need one learns it, and the
//! sessions that need it meanwhile wait for that answer instead of each paying a request to
//! learn it too.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

/// More origins than this and what was learnt starts over.
const MAX_ORIGINS: usize = 256;

/// What is known of each origin, per process.
pub(super) struct Lessons<T: 'static> {
    map: Mutex<BTreeMap<String, Entry<T>>>,
}

enum Entry<T> {
    /// A session is learning it; the receiver closes when that session is done.
    Learning(watch::Receiver<()>),
    Known(T),
}

/// What [`Lessons::ask`] found.
pub(super) enum Answer<T: 'static> {
    Known(T),
    /// Nobody knows and nobody is learning it: the caller learns it, and holds the
    /// [`Pupil`] until it has the answer (or gives up by dropping it).
    Learn(Pupil<T>),
    /// The session that was learning it gave up without an answer: go on without it.
    Unknown,
}

/// Held by the session learning a fact; dropping it, taught or not, wakes the waiters.
pub(super) struct Pupil<T: 'static> {
    lessons: &'static Lessons<T>,
    origin: String,
    _done: watch::Sender<()>,
}

impl<T: Clone> Lessons<T> {
    pub const fn new() -> Lessons<T> {
        Lessons {
            map: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry<T>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(map: &mut BTreeMap<String, Entry<T>>, origin: &str, entry: Entry<T>) {
        if map.len() >= MAX_ORIGINS && !map.contains_key(origin) {
            map.clear();
        }
        map.insert(origin.to_string(), entry);
    }

    /// What is known of `origin`, without waiting.
    pub fn get(&self, origin: &str) -> Option<T> {
        match self.lock().get(origin) {
            Some(Entry::Known(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// Records what a session found, whoever was learning it.
    pub fn set(&self, origin: &str, fact: T) {
        Self::insert(&mut self.lock(), origin, Entry::Known(fact));
    }

    /// What is known of `origin`; if another session is learning it, after waiting for that
    /// session to be done; if nobody is, the caller is to learn it.
    pub async fn ask(&'static self, origin: &str) -> Answer<T> {
        let mut done = {
            let mut map = self.lock();
            match map.get(origin) {
                Some(Entry::Known(t)) => return Answer::Known(t.clone()),
                Some(Entry::Learning(rx)) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(());
                    Self::insert(&mut map, origin, Entry::Learning(rx));
                    return Answer::Learn(Pupil {
                        lessons: self,
                        origin: origin.to_string(),
                        _done: tx,
                    });
                }
            }
        };
        // Nothing is ever sent: this returns when the pupil is dropped.
        let _ = done.changed().await;
        self.get(origin).map_or(Answer::Unknown, Answer::Known)
    }
}

impl<T: Clone> Pupil<T> {
    /// Records the answer and wakes the waiters.
    pub fn learnt(self, fact: T) {
        self.lessons.set(&self.origin, fact);
    }
}

impl<T> Drop for Pupil<T> {
    fn drop(&mut self) {
        // Not learnt (a failed request, a cancelled scan): the next session to ask learns it.
        // The waiters wake when `_done` drops, after this.
        let mut map = self.lessons.map.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(map.get(&self.origin), Some(Entry::Learning(_))) {
            map.remove(&self.origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_asker_learns_and_the_others_wait_for_its_answer() {
        static L: Lessons<u32> = Lessons::new();
        let Answer::Learn(pupil) = L.ask("o").await else {
            panic!("the first asker learns")
        };
        let waiter = tokio::spawn(async {
            match L.ask("o").await {
                Answer::Known(n) => n,
                _ => panic!("waited for the answer"),
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        pupil.learnt(7);
        assert_eq!(waiter.await.unwrap(), 7);
        assert!(matches!(L.ask("o").await, Answer::Known(7)));
        assert_eq!(L.get("other"), None);
    }

    #[tokio::test]
    async fn a_pupil_that_gives_up_releases_the_waiters_and_the_next_asker_learns() {
        static L: Lessons<u32> = Lessons::new();
        let Answer::Learn(pupil) = L.ask("o").await else {
            panic!("the first asker learns")
        };
        let waiter = tokio::spawn(async { matches!(L.ask("o").await, Answer::Unknown) });
        tokio::task::yield_now().await;
        drop(pupil);
        assert!(
            waiter.await.unwrap(),
            "the waiter goes on without an answer"
        );
        assert!(matches!(L.ask("o").await, Answer::Learn(_)));
    }

    #[tokio::test]
    async fn a_fact_set_by_another_session_outlives_the_pupil() {
        static L: Lessons<u32> = Lessons::new();
        let Answer::Learn(pupil) = L.ask("o").await else {
            panic!("the first asker learns")
        };
        L.set("o", 3);
        drop(pupil);
        assert_eq!(L.get("o"), Some(3));
    }
}
