//! Per-automation timing in the service: holds an ImageUpdateAutomation out of a pass while
//! its commit window (`tagline.dev/schedule`) is closed or its debounce window
//! (`tagline.dev/debounce`) is still gathering a burst of policy changes.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::api::{Config, Kind, NamespacedName};
use crate::automation::{Outcome, Status};
use crate::image::ImageRef;
use crate::schedule::{AutomationSchedule, Debounce};
use crate::store::Store;

/// Each automation's schedule, from its annotations (absent: no restriction).
pub type Schedules = BTreeMap<NamespacedName, AutomationSchedule>;

/// Timing state kept across passes.
#[derive(Debug, Default)]
pub struct Gate {
    schedules: Schedules,
    debounces: BTreeMap<NamespacedName, Debounce>,
}

/// The policies an automation reads: those in its namespace its selector matches.
fn policies_of<'a>(
    config: &'a Config,
    automation: &'a NamespacedName,
) -> impl Iterator<Item = &'a NamespacedName> + 'a {
    let selector = config.automations.get(automation).map(|a| &a.selector);
    config
        .policies
        .values()
        .filter(move |p| {
            p.id.namespace == automation.namespace && selector.is_some_and(|s| s.matches(&p.labels))
        })
        .map(|p| &p.id)
}

/// Every policy's latest reference in the store.
pub fn latest_refs(config: &Config, store: &Store) -> BTreeMap<NamespacedName, Option<ImageRef>> {
    config
        .policies
        .keys()
        .map(|id| (id.clone(), store.latest(&id.to_string()).cloned()))
        .collect()
}

impl Gate {
    /// Sets the schedules (after a load); debounce state of automations that keep a
    /// debounce window is kept.
    pub fn set_schedules(&mut self, schedules: Schedules) {
        self.debounces
            .retain(|id, _| schedules.get(id).is_some_and(|s| s.debounce.is_some()));
        for (id, s) in &schedules {
            if s.debounce.is_some() {
                self.debounces
                    .entry(id.clone())
                    .or_insert_with(|| s.debouncer());
            }
        }
        self.schedules = schedules;
    }

    /// The config for a pass at `now`: automations that must wait are removed, each with a
    /// `Skipped` outcome saying until when.
    pub fn admit(&self, config: &Config, now: DateTime<Utc>) -> (Config, Vec<Outcome>) {
        let mut admitted = config.clone();
        let mut held = Vec::new();
        for id in config.automations.keys() {
            let Some(schedule) = self.schedules.get(id) else {
                continue;
            };
            let reason = if !schedule.allows(now) {
                Some(match schedule.commit_at(now) {
                    Some(t) => format!(
                        "outside its commit window; next opens at {}",
                        t.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ),
                    None => "outside its commit window, which never opens again".to_string(),
                })
            } else {
                match self.debounces.get(id) {
                    Some(d) if !d.due(now) => Some(match d.fire_at() {
                        Some(t) => format!(
                            "gathering policy changes until {}",
                            t.to_rfc3339_opts(SecondsFormat::Secs, true)
                        ),
                        None => "no policy change to commit".to_string(),
                    }),
                    _ => None,
                }
            };
            if let Some(reason) = reason {
                admitted.automations.remove(id);
                held.push(Outcome::new(
                    Kind::ImageUpdateAutomation,
                    id,
                    Status::Skipped(reason),
                ));
            }
        }
        (admitted, held)
    }

    /// After a pass at `now`: `before` and `after` are the policies' latest references
    /// around it, `ran` the automations it included. Debounced automations whose policies
    /// changed start (or extend) a burst; those that ran have fired.
    pub fn record(
        &mut self,
        config: &Config,
        before: &BTreeMap<NamespacedName, Option<ImageRef>>,
        after: &BTreeMap<NamespacedName, Option<ImageRef>>,
        ran: &[NamespacedName],
        now: DateTime<Utc>,
    ) {
        for (id, debounce) in self.debounces.iter_mut() {
            if ran.contains(id) && debounce.due(now) {
                debounce.fired(now);
            }
            let changed = policies_of(config, id).any(|p| before.get(p) != after.get(p));
            if changed {
                debounce.change(now);
            }
        }
    }

    /// When the commit window of an automation that is outside it at `now` opens next
    /// (None: it has no window, is inside it, or the window never opens again).
    pub fn opens_at(&self, id: &NamespacedName, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let schedule = self.schedules.get(id)?;
        if schedule.allows(now) {
            return None;
        }
        schedule.commit_at(now)
    }

    /// The earliest instant after `now` at which a held automation may become runnable.
    pub fn next_wake(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.debounces
            .iter()
            .filter_map(|(id, d)| {
                let fire = d.fire_at()?.max(now);
                match self.schedules.get(id) {
                    Some(s) => s.commit_at(fire),
                    None => Some(fire),
                }
            })
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECTS: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  namespace: default
spec:
  image: 127.0.0.1:9/app
  interval: 1m
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
  namespace: default
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: '>=1.0.0'
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: fleet
  namespace: default
spec:
  url: http://127.0.0.1:9/fleet.git
  interval: 1m
  ref:
    branch: main
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: fleet
  namespace: default
spec:
  interval: 1m
  sourceRef:
    kind: GitRepository
    name: fleet
  git:
    commit:
      author:
        name: Bot
        email: bot@example.com
  update:
    path: ./deploy
    strategy: Setters
";

    fn config() -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("o.yaml"), OBJECTS).unwrap();
        crate::api::load_dir(dir.path()).unwrap()
    }

    fn fleet() -> NamespacedName {
        NamespacedName::new("default", "fleet")
    }

    fn gate(pairs: &[(&str, &str)]) -> Gate {
        let ann = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut g = Gate::default();
        g.set_schedules(Schedules::from([(
            fleet(),
            AutomationSchedule::from_annotations(&ann).unwrap(),
        )]));
        g
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn refs(tag: Option<&str>) -> BTreeMap<NamespacedName, Option<ImageRef>> {
        BTreeMap::from([(
            NamespacedName::new("default", "app"),
            tag.map(|t| ImageRef {
                name: "127.0.0.1:9/app".to_string(),
                tag: t.to_string(),
                digest: None,
            }),
        )])
    }

    fn held(g: &Gate, c: &Config, now: DateTime<Utc>) -> Option<String> {
        let (admitted, held) = g.admit(c, now);
        match held.as_slice() {
            [] => {
                assert!(admitted.automations.contains_key(&fleet()));
                None
            }
            [o] => {
                assert!(!admitted.automations.contains_key(&fleet()));
                assert_eq!(admitted.repositories.len(), 1, "only automations are held");
                match &o.status {
                    Status::Skipped(why) => Some(why.clone()),
                    other => panic!("{other:?}"),
                }
            }
            more => panic!("{more:?}"),
        }
    }

    #[test]
    fn without_a_schedule_nothing_is_held() {
        let c = config();
        assert_eq!(held(&Gate::default(), &c, at("2026-01-17T03:00:00Z")), None);
        assert_eq!(Gate::default().next_wake(at("2026-01-17T03:00:00Z")), None);
    }

    #[test]
    fn a_closed_commit_window_holds_the_automation_until_it_opens() {
        let c = config();
        let g = gate(&[
            ("tagline.dev/schedule", "* 9-17 * * 1-5"),
            ("tagline.dev/schedule-timezone", "Europe/Berlin"),
        ]);
        // Saturday.
        let why = held(&g, &c, at("2026-01-17T12:00:00Z")).unwrap();
        assert!(why.contains("2026-01-19T08:00:00Z"), "{why}");
        // Monday 10:00 Berlin.
        assert_eq!(held(&g, &c, at("2026-01-19T09:00:00Z")), None);
    }

    #[test]
    fn a_burst_of_policy_changes_becomes_one_run() {
        let c = config();
        let mut g = gate(&[("tagline.dev/debounce", "2m")]);
        let t0 = at("2026-01-19T09:00:00Z");
        let m = |n: i64| t0 + chrono::TimeDelta::minutes(n);
        // Nothing changed yet: held, nothing to wake for.
        assert!(held(&g, &c, t0).unwrap().contains("no policy change"));
        assert_eq!(g.next_wake(t0), None);
        // The policy changes at t0 and again at t0+1m.
        g.record(&c, &refs(None), &refs(Some("1.0.0")), &[], t0);
        g.record(&c, &refs(Some("1.0.0")), &refs(Some("1.1.0")), &[], m(1));
        let why = held(&g, &c, m(2)).unwrap();
        assert!(why.contains("2026-01-19T09:03:00Z"), "{why}");
        assert_eq!(g.next_wake(m(2)), Some(m(3)));
        // An unchanged pass does not extend the burst.
        g.record(&c, &refs(Some("1.1.0")), &refs(Some("1.1.0")), &[], m(2));
        // Quiet for 2m: it runs once, then is held again.
        assert_eq!(held(&g, &c, m(3)), None);
        g.record(
            &c,
            &refs(Some("1.1.0")),
            &refs(Some("1.1.0")),
            &[fleet()],
            m(3),
        );
        assert!(held(&g, &c, m(4)).unwrap().contains("no policy change"));
        assert_eq!(g.next_wake(m(4)), None);
    }

    #[test]
    fn a_debounced_burst_waits_for_the_window_too() {
        let c = config();
        let mut g = gate(&[
            ("tagline.dev/schedule", "* 9-17 * * 1-5"),
            ("tagline.dev/debounce", "5m"),
        ]);
        // Friday 17:58 UTC: the burst would fire at 18:03, after the window closed.
        let t = at("2026-01-16T17:58:00Z");
        g.record(&c, &refs(None), &refs(Some("2.0.0")), &[], t);
        assert_eq!(g.next_wake(t), Some(at("2026-01-19T09:00:00Z")));
        assert!(held(&g, &c, at("2026-01-16T18:03:00Z")).is_some());
        assert_eq!(held(&g, &c, at("2026-01-19T09:00:00Z")), None);
    }
}
