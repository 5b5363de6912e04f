//! Small YAML writers for config folders: Secrets whose values (PEM blocks, JSON, keys) would
//! be fiddly to quote by hand.

/// A `v1` Secret named `name` (no namespace, so `default`) of type `kind` (e.g. `Opaque`,
/// `kubernetes.io/dockerconfigjson`), with `entries` as `stringData`. Values are written as
/// JSON strings, which YAML reads as double-quoted scalars, so any content is safe.
pub fn secret(name: &str, kind: &str, entries: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\ntype: {}\nstringData:\n",
        quote(name),
        quote(kind)
    );
    for (key, value) in entries {
        yaml += &format!("  {}: {}\n", quote(key), quote(value));
    }
    yaml
}

/// `value` as a YAML double-quoted scalar (a JSON string).
pub fn quote(value: &str) -> String {
    serde_json::to_string(value).expect("a string serialises")
}
