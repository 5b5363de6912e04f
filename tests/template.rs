//! Commit-message templates: Flux's documented templates render to the text Flux renders, and
//! each language feature and error behaves as Go's `text/template` with Sprig.

use std::collections::BTreeMap;

use tagline::git::template::{self, TemplateData, TemplateError};
use tagline::writer::{Change, ChangeSet, ObjectId};

fn obj(api: &str, kind: &str, ns: &str, name: &str) -> ObjectId {
    ObjectId {
        api_version: api.into(),
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

fn ch(old: &str, new: &str, setter: &str) -> Change {
    Change {
        old_value: old.into(),
        new_value: new.into(),
        setter: setter.into(),
    }
}

/// Flux's source_test: one Deployment `test` (no namespace) in deploy.yaml.
fn flux_source_test_changes() -> ChangeSet {
    let mut cs = ChangeSet::new();
    cs.entry("deploy.yaml".into()).or_default().insert(
        obj("apps/v1", "Deployment", "", "test"),
        vec![ch("helloworld:1.0.0", "helloworld:1.0.1", "test-ns:policy")],
    );
    cs
}

fn render(
    tmpl: &str,
    cs: &ChangeSet,
    values: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let data = TemplateData {
        automation_namespace: "test-ns",
        automation_name: "test-update",
        changes: cs,
        values,
    };
    template::render(tmpl, &data)
}

#[test]
fn flux_result_v2_template_renders_as_flux_expects() {
    let tmpl = r#"Commit summary with ResultV2

Automation: {{ .AutomationObject }}

{{ range $filename, $objchange := .Changed.FileChanges -}}
- File: {{ $filename }}
{{- range $obj, $changes := $objchange }}
  - Object: {{ $obj.Kind }}/{{ $obj.Namespace }}/{{ $obj.Name }}
    Changes:
{{- range $_ , $change := $changes }}
    - {{ $change.OldValue }} -> {{ $change.NewValue }}
{{ end -}}
{{ end -}}
{{ end -}}
"#;
    let got = render(tmpl, &flux_source_test_changes(), &BTreeMap::new()).unwrap();
    assert_eq!(
        got,
        "Commit summary with ResultV2

Automation: test-ns/test-update

- File: deploy.yaml
  - Object: Deployment//test
    Changes:
    - helloworld:1.0.0 -> helloworld:1.0.1
"
    );
}

#[test]
fn flux_values_template_renders_as_flux_expects() {
    let tmpl = r#"Commit summary

Automation: {{ .AutomationObject }}

Cluster: {{ index .Values "cluster" }}
Testing: {{ .Values.testing }}
"#;
    let values: BTreeMap<String, String> = [("cluster", "prod"), ("testing", "value")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let got = render(tmpl, &flux_source_test_changes(), &values).unwrap();
    assert_eq!(
        got,
        "Commit summary

Automation: test-ns/test-update

Cluster: prod
Testing: value
"
    );
}

#[test]
fn updated_field_is_a_removed_field_error() {
    let tmpl =
        "Automation: {{ .AutomationObject }}\n{{ range .Updated.Images -}}\n- {{.}}\n{{ end -}}\n";
    let err = render(tmpl, &flux_source_test_changes(), &BTreeMap::new()).unwrap_err();
    match &err {
        TemplateError::RemovedField { field, line, .. } => {
            assert_eq!(field, ".Updated");
            assert_eq!(*line, 2);
        }
        other => panic!("expected RemovedField, got {other:?}"),
    }
    assert_eq!(err.reason(), "RemovedTemplateField");
    assert!(
        err.to_string().contains("Please use '.Changed' instead"),
        "{err}"
    );
}
