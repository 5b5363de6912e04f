//! Kubernetes label selectors (`matchLabels`, `matchExpressions`), checked once and matched
//! against an object's labels.

use std::collections::{BTreeMap, BTreeSet};

use super::types::LabelSelector;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A checked label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Checks a selector; the error names the offending expression.
    pub fn new(spec: &LabelSelector) -> Result<Selector, String> {
        let mut requirements: Vec<Requirement> = spec
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::In(k.clone(), BTreeSet::from([v.clone()])))
            .collect();
        for (i, e) in spec.match_expressions.iter().enumerate() {
            let values: BTreeSet<String> = e.values.iter().cloned().collect();
            let r = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {} needs values",
                        e.operator
                    ))
                }
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {} takes no values",
                        e.operator
                    ))
                }
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err(format!(
                        "matchExpressions[{i}]: unknown operator '{other}' (In, NotIn, Exists, DoesNotExist)"
                    ))
                }
            };
            requirements.push(r);
        }
        Ok(Selector { requirements })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::LabelSelectorRequirement;
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let spec = LabelSelector {
            match_labels: labels(&[("team", "a")]),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "NotIn".into(),
                    values: vec!["prod".into()],
                },
                LabelSelectorRequirement {
                    key: "auto".into(),
                    operator: "Exists".into(),
                    values: vec![],
                },
            ],
        };
        let s = Selector::new(&spec).unwrap();
        assert!(s.matches(&labels(&[("team", "a"), ("auto", "")])));
        assert!(s.matches(&labels(&[("team", "a"), ("auto", "1"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("team", "a"), ("auto", "1"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("team", "b"), ("auto", "1")])));
        assert!(!s.matches(&labels(&[("team", "a")])));
        assert!(Selector::default().matches(&labels(&[])));
    }

    #[test]
    fn bad_operator_is_named() {
        let spec = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Equals".into(),
                values: vec![],
            }],
        };
        let err = Selector::new(&spec).unwrap_err();
        assert!(
            err.contains("matchExpressions[0]") && err.contains("Equals"),
            "{err}"
        );
    }
}
