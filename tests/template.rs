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

fn render_default(tmpl: &str) -> Result<String, TemplateError> {
    render(tmpl, &flux_source_test_changes(), &BTreeMap::new())
}

fn parse_error(tmpl: &str) -> (usize, usize, String) {
    match template::parse(tmpl) {
        Err(TemplateError::Parse { line, col, message }) => (line, col, message),
        other => panic!("expected a parse error for {tmpl:?}, got {other:?}"),
    }
}

fn execute_error(tmpl: &str) -> (usize, usize, String, String) {
    match render_default(tmpl) {
        Err(TemplateError::Execute {
            line,
            col,
            context,
            message,
        }) => (line, col, context, message),
        other => panic!("expected an execute error for {tmpl:?}, got {other:?}"),
    }
}

#[test]
fn default_message_is_fluxs() {
    assert_eq!(
        template::DEFAULT_MESSAGE,
        "Update from image update automation"
    );
    assert_eq!(
        render_default(template::DEFAULT_MESSAGE).unwrap(),
        template::DEFAULT_MESSAGE
    );
}

#[test]
fn a_template_parsed_once_renders_each_change_set() {
    let t = template::parse("{{ range .Changed.Changes }}{{ .NewValue }} {{ end }}").unwrap();
    let mut other = ChangeSet::new();
    other
        .entry("a.yaml".into())
        .or_default()
        .insert(obj("v1", "Pod", "ns", "p"), vec![ch("a:1", "a:2", "ns:a")]);
    let values = BTreeMap::new();
    let data = |cs| TemplateData {
        automation_namespace: "ns",
        automation_name: "auto",
        changes: cs,
        values: &values,
    };
    let first = flux_source_test_changes();
    assert_eq!(t.render(&data(&first)).unwrap(), "helloworld:1.0.1 ");
    assert_eq!(t.render(&data(&other)).unwrap(), "a:2 ");
    assert_eq!(
        t.source(),
        "{{ range .Changed.Changes }}{{ .NewValue }} {{ end }}"
    );
}

/// Objects are visited in Go's order for struct map keys (APIVersion, Kind, Name, Namespace),
/// which is what Flux's `range` and `%v` use, not `ObjectId`'s field order.
#[test]
fn objects_and_changes_follow_gos_order_and_merge_across_files() {
    let mut cs = ChangeSet::new();
    cs.entry("b.yaml".into()).or_default().insert(
        obj("apps/v1", "Deployment", "a-ns", "zeta"),
        vec![ch("z:1", "z:2", "s:z"), ch("x:1", "x:2", "s:x")],
    );
    cs.entry("b.yaml".into()).or_default().insert(
        obj("apps/v1", "Deployment", "b-ns", "alpha"),
        vec![ch("a:1", "a:2", "s:a")],
    );
    cs.entry("a.yaml".into()).or_default().insert(
        obj("apps/v1", "Deployment", "a-ns", "zeta"),
        vec![ch("x:1", "x:2", "s:x")],
    );
    let tmpl = "{{ range $o, $c := .Changed.Objects }}{{ $o.Name }}:{{ len $c }} {{ end }}|\
                {{ range .Changed.Changes }}{{ .Setter }} {{ end }}";
    let got = render(tmpl, &cs, &BTreeMap::new()).unwrap();
    // zeta's changes from a.yaml then b.yaml (3 in all); Changes de-duplicated, a.yaml first.
    assert_eq!(got, "alpha:1 zeta:3 |s:x s:a s:z ");
}

#[test]
fn changed_image_result_is_a_removed_field_error() {
    let err = render_default("x\n  {{ range .Changed.ImageResult.Files }}{{ end }}").unwrap_err();
    assert_eq!(
        err,
        TemplateError::RemovedField {
            line: 2,
            col: 12,
            field: ".Changed.ImageResult".into()
        }
    );
    assert!(err
        .to_string()
        .contains("Please use '.Changed.FileChanges' or '.Changed.Objects'"));
}

#[test]
fn removed_field_is_found_through_variables_and_only_when_evaluated() {
    assert!(matches!(
        render_default("{{ with $d := . }}{{ $d.Updated }}{{ end }}"),
        Err(TemplateError::RemovedField { .. })
    ));
    // Flux detects the removed field from the execution error, so an unevaluated branch passes.
    assert_eq!(
        render_default("{{ if false }}{{ .Updated }}{{ end }}ok").unwrap(),
        "ok"
    );
}

#[test]
fn non_hermetic_and_unknown_functions_are_parse_errors() {
    for f in [
        "now",
        "env",
        "randAlpha",
        "uuidv4",
        "date",
        "expandenv",
        "getHostByName",
    ] {
        let (line, _, message) = parse_error(&format!("a\n{{{{ {f} }}}}"));
        assert_eq!(line, 2);
        assert_eq!(message, format!("function \"{f}\" not defined"));
    }
    let (_, _, message) = parse_error("{{ semverCompare \">1\" \"2\" }}");
    assert!(message.contains("not supported by tagline"), "{message}");
    let (_, _, message) = parse_error("{{ nope 1 }}");
    assert_eq!(message, "function \"nope\" not defined");
}

#[test]
fn parse_errors_say_where_and_what() {
    assert_eq!(parse_error("ab\ncd {{ .X ").0, 2);
    let (line, col, message) = parse_error("{{ if true }}x");
    assert_eq!((line, col, message.as_str()), (1, 4, "unexpected EOF"));
    assert!(parse_error("{{ end }}").2.contains("unexpected {{end}}"));
    assert!(parse_error("{{ break }}")
        .2
        .contains("{{break}} outside {{range}}"));
    assert!(parse_error("{{ continue }}")
        .2
        .contains("{{continue}} outside {{range}}"));
    assert_eq!(parse_error("{{ $x }}").2, "undefined variable \"$x\"");
    assert!(parse_error("{{ \"abc }}")
        .2
        .contains("unterminated quoted string"));
    assert!(parse_error("{{/* x }}").2.contains("unclosed comment"));
    assert!(parse_error("{{/* x */ y }}")
        .2
        .contains("comment ends before closing delimiter"));
    assert!(parse_error("{{ 1 | 2 }}")
        .2
        .contains("non executable command in pipeline stage 2"));
    assert!(parse_error("{{ 3k }}").2.contains("bad number syntax"));
    assert!(parse_error("{{ .A.B. }}").0 == 1);
    let e = template::parse("x\n\n  {{ lower }").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("commit message template: parse error at 3:"),
        "{e}"
    );
}

#[test]
fn execute_errors_say_where_what_and_in_which_expression() {
    let (line, col, context, message) = execute_error("line one\n  {{ .Changed.Nope }}");
    assert_eq!((line, col), (2, 6));
    assert_eq!(context, ".Changed.Nope");
    assert_eq!(message, "can't evaluate field Nope in type update.Result");
    let (_, _, context, message) = execute_error("{{ lower 5 }}");
    assert_eq!(
        (context.as_str(), message.as_str()),
        ("5", "expected string; found 5")
    );
    let (_, _, _, message) = execute_error("{{ lower .Changed.Changes }}");
    assert_eq!(
        message,
        "wrong type for value; expected string; got []update.Change"
    );
    let (_, _, _, message) = execute_error("{{ index .Changed.Changes 3 }}");
    assert_eq!(message, "error calling index: index out of range: 3");
    let (_, _, _, message) = execute_error("{{ fail \"stop here\" }}");
    assert_eq!(message, "error calling fail: stop here");
    let (_, _, _, message) = execute_error("{{ .Values 1 }}");
    assert_eq!(
        message,
        "Values has arguments but cannot be invoked as function"
    );
    let (_, _, _, message) = execute_error("{{ . 1 }}");
    assert_eq!(message, "can't give argument to non-function .");
    let (_, _, _, message) = execute_error("{{ regexFind \"[\" \"x\" }}");
    assert!(
        message.starts_with("error calling regexFind: error parsing regexp"),
        "{message}"
    );
    let e = render_default("{{ .Nope }}").unwrap_err();
    assert_eq!(e.reason(), "GitOperationFailed");
    assert_eq!(
        e.to_string(),
        "commit message template: execute error at 1:4: executing at <.Nope>: \
         can't evaluate field Nope in type source.TemplateData"
    );
}

/// Features of Go releases newer than the oracle's Go 1.19 that Flux (built with a current Go)
/// has: `{{else with}}` (1.23), `range` over an integer (1.22), JSON `\b` and `\f` (1.22).
#[test]
fn newer_go_template_features() {
    let values: BTreeMap<String, String> = [("cluster".to_string(), "prod".to_string())].into();
    let cs = flux_source_test_changes();
    let r = |t: &str| render(t, &cs, &values).unwrap();
    assert_eq!(
        r("{{ with .Values.nope }}a{{ else with .Values.cluster }}b={{ . }}{{ else }}c{{ end }}"),
        "b=prod"
    );
    assert_eq!(
        r("{{ with .Values.nope }}a{{ else with .Values.no }}b{{ else }}c{{ end }}"),
        "c"
    );
    assert_eq!(r("{{ range 3 }}{{ . }}{{ end }}|{{ range $i := 2 }}{{ $i }}{{ end }}|{{ range 0 }}x{{ else }}none{{ end }}"), "012|01|none");
    assert!(render("{{ range $i, $j := 3 }}{{ end }}", &cs, &values).is_err());
    assert_eq!(r(r#"{{ toJson "\b\f\u0001" }}"#), r#""\b\f\u0001""#);
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(render_default("a  \n {{- \"b\" -}} \n\t c").unwrap(), "abc");
    assert_eq!(render_default("a {{-3}} b").unwrap(), "a -3 b");
    assert_eq!(
        render_default("a {{- /* gone */ -}} b{{/* also */}}").unwrap(),
        "ab"
    );
    assert_eq!(
        render_default("{{- \"x\" }}\n\n{{- \"y\" }}").unwrap(),
        "xy"
    );
    assert_eq!(
        render_default("{{ printf \"%s\"\n  .AutomationObject }}").unwrap(),
        "test-ns/test-update"
    );
}

#[test]
fn runaway_templates_stop_with_an_error() {
    let (_, _, _, message) =
        execute_error("{{ range until 900000 }}{{ repeat 100 \"x\" }}{{ end }}");
    assert!(message.contains("output exceeds"), "{message}");
    let (_, _, _, message) =
        execute_error("{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}");
    assert!(
        message.contains("exceeded maximum template depth"),
        "{message}"
    );
    let (_, _, _, message) = execute_error("{{ range 100000000 }}{{ end }}");
    assert!(message.contains("steps"), "{message}");
    let (_, _, _, message) =
        execute_error("{{ repeat 1500000 \"xy\" }}{{ repeat 1500000 \"xy\" }}");
    assert!(message.contains("output exceeds"), "{message}");
    let (_, _, _, message) = execute_error("{{ repeat 100000000 \"xy\" }}");
    assert!(message.contains("too large"), "{message}");
    let (_, _, _, message) = execute_error(
        "{{ $x := \"ab\" }}{{ range until 64 }}{{ $x = printf \"%s%s\" $x $x }}{{ end }}",
    );
    assert!(message.contains("result larger than"), "{message}");
    let (_, _, _, message) =
        execute_error("{{ $l := list 1 }}{{ range until 64 }}{{ $l = concat $l $l }}{{ end }}");
    assert!(message.contains("result larger than"), "{message}");
    assert_eq!(
        render_default("{{ printf \"%20000000d\" 1 }}").unwrap(),
        "%!(NOVERB)%!(EXTRA int=1)"
    );
}

#[test]
fn templates_are_shareable_comparable_values() {
    fn shareable<T: Send + Sync + Clone + PartialEq + std::fmt::Debug>() {}
    shareable::<template::Template>();
    let a = template::parse("{{ .AutomationObject }}").unwrap();
    assert_eq!(a, template::parse("{{ .AutomationObject }}").unwrap());
    assert_ne!(a, template::parse("{{ .Values }}").unwrap());
    assert_eq!(format!("{a:?}"), "Template(\"{{ .AutomationObject }}\")");
}

#[test]
fn only_execute_errors_are_worth_retrying() {
    let parse = template::parse("{{ if }}").unwrap_err();
    let removed = render_default("{{ .Updated }}").unwrap_err();
    let execute = render_default("{{ index .Changed.Changes 5 }}").unwrap_err();
    assert!(!parse.is_retryable() && !removed.is_retryable() && execute.is_retryable());
    assert_eq!(removed.reason(), "RemovedTemplateField");
    assert_eq!(parse.reason(), "GitOperationFailed");
}

#[test]
fn raw_strings_drop_carriage_returns_as_go_unquote_does() {
    assert_eq!(render_default("{{ `a\r\nb` }}").unwrap(), "a\nb");
    assert_eq!(render_default("{{ \"a\\r\\nb\" }}").unwrap(), "a\r\nb");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(800))]

    /// Any text, however broken, parses or fails with an error; rendering never panics.
    #[test]
    fn arbitrary_templates_never_panic(
        tmpl in r#"([{}()|$.,:= \-"'`/*\\\n\tä😀a-z0-9_]|\{\{|\}\}|\{\{- | -\}\}|range |if |else|end|with |define |template |block |break|continue|nil|true|\.Changed|\.Values|\.AutomationObject|printf "%v"|len|index ){0,40}"#
    ) {
        if let Ok(t) = template::parse(&tmpl) {
            let cs = flux_source_test_changes();
            let values = BTreeMap::new();
            let _ = t.render(&TemplateData {
                automation_namespace: "ns",
                automation_name: "n",
                changes: &cs,
                values: &values,
            });
        }
    }
}

/// Sprig 3.3.0 (Flux's) added `sha512sum`; the oracle's Sprig 3.2.3 lacks it.
#[test]
fn sha512sum_of_sprig_3_3() {
    assert_eq!(
        render_default("{{ sha512sum \"abc\" }}").unwrap(),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
}

/// Deep nesting is refused before it can exhaust a thread's stack: templates render on
/// blocking threads with 2 MiB stacks.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let run = |tmpl: String| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                template::parse(&tmpl)
                    .and_then(|t| {
                        let cs = flux_source_test_changes();
                        let values = BTreeMap::new();
                        t.render(&TemplateData {
                            automation_namespace: "ns",
                            automation_name: "n",
                            changes: &cs,
                            values: &values,
                        })
                    })
                    .map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap()
    };
    let parens = |n: usize| format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    let ifs = |n: usize| format!("{}x{}", "{{ if true }}".repeat(n), "{{ end }}".repeat(n));
    let recursion =
        "{{ define \"r\" }}{{ if gt . 0 }}{{ template \"r\" (sub . 1) }}{{ end }}{{ end }}";
    assert_eq!(run(parens(50)).unwrap(), "1");
    assert_eq!(run(ifs(50)).unwrap(), "x");
    assert_eq!(
        run(format!("{recursion}{{{{ template \"r\" 150 }}}}ok")).unwrap(),
        "ok"
    );
    for deep in [parens(100_000), ifs(100_000)] {
        let e = run(deep).unwrap_err();
        assert!(e.contains("nested too deeply"), "{e}");
    }
    let e = run(format!("{recursion}{{{{ template \"r\" 100000 }}}}")).unwrap_err();
    assert!(e.contains("exceeded maximum template depth"), "{e}");
}
