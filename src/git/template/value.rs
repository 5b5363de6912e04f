//! Template values: a small model of the Go values a Flux commit template sees (strings, ints,
//! maps, slices, structs), with Go's truthiness, ordering and type names.

use std::cmp::Ordering;
use std::rc::Rc;

/// A Go value as `text/template` handles it through reflection.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// Go's invalid `reflect.Value` (a missing map key, an unset variable): prints `<no value>`.
    Invalid,
    /// A nil interface or nil pointer: prints `<nil>`.
    Nil,
    Bool(bool),
    Int(i64),
    /// An `int64`, as Sprig's math functions return.
    Int64(i64),
    /// An `uint8`, from indexing a string.
    Byte(u8),
    Float(f64),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
    Struct(Rc<Struct>),
}

/// A Go slice.
#[derive(Debug)]
pub(crate) struct List {
    /// Go type name, e.g. `[]string`, `[]interface {}`, `[]update.Change`.
    pub type_name: &'static str,
    pub items: Vec<Value>,
}

/// A Go map; entries are kept in Go's `fmtsort` order (which `range` and `fmt` both use).
#[derive(Debug)]
pub(crate) struct Map {
    pub type_name: &'static str,
    pub entries: Vec<(Value, Value)>,
    /// The zero value of the element type (`index` of a missing key returns it).
    pub zero: Value,
}

impl Map {
    /// Keys are strings, so `.key` looks an entry up.
    pub fn has_string_keys(&self) -> bool {
        self.type_name.starts_with("map[string]")
    }

    /// The Go type of the keys.
    pub fn key_type(&self) -> &'static str {
        if self.has_string_keys() {
            "string"
        } else {
            "update.ObjectIdentifier"
        }
    }
}

/// A field of a Go struct.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub value: Value,
    /// An embedded struct: its fields are promoted.
    pub embedded: bool,
    /// A method without arguments (e.g. `Result.Changes`): reachable, never printed.
    pub method: bool,
}

/// A Go struct value.
#[derive(Debug)]
pub(crate) struct Struct {
    pub type_name: &'static str,
    pub fields: Vec<Field>,
    /// What `String()` returns, when the type is a `fmt.Stringer`.
    pub stringer: Option<String>,
}

impl Value {
    pub fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn list(type_name: &'static str, items: Vec<Value>) -> Value {
        Value::List(Rc::new(List { type_name, items }))
    }

    /// A map; sorts the entries in Go's `fmtsort` order.
    pub fn map(type_name: &'static str, mut entries: Vec<(Value, Value)>, zero: Value) -> Value {
        entries.sort_by(|a, b| compare(&a.0, &b.0));
        Value::Map(Rc::new(Map {
            type_name,
            entries,
            zero,
        }))
    }

    /// Go's type name of the value, as `%T` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid => "<invalid reflect.Value>",
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Byte(_) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(l) => l.type_name,
            Value::Map(m) => m.type_name,
            Value::Struct(s) => s.type_name,
        }
    }

    /// Go's `isTrue`: the truth of a value in `if`, `with`, `and`, `or`, `not`.
    pub fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Byte(b) => *b != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Struct(_) => true,
        }
    }

    /// The value of any integer kind.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Int64(i) => Some(*i),
            Value::Byte(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A field or method of a struct, following embedded structs.
    pub fn struct_field(&self, name: &str) -> Option<Value> {
        let Value::Struct(s) = self else { return None };
        find_field(s, name)
    }

    /// A map's entry for a key.
    pub fn map_get(&self, key: &Value) -> Option<Value> {
        let Value::Map(m) = self else { return None };
        m.entries
            .iter()
            .find(|(k, _)| compare(k, key) == Ordering::Equal && same_kind(k, key))
            .map(|(_, v)| v.clone())
    }
}

fn find_field(s: &Struct, name: &str) -> Option<Value> {
    if let Some(f) = s.fields.iter().find(|f| f.name == name) {
        return Some(f.value.clone());
    }
    s.fields
        .iter()
        .filter(|f| f.embedded)
        .find_map(|f| match &f.value {
            Value::Struct(inner) => find_field(inner, name),
            _ => None,
        })
}

fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Invalid => 0,
        Value::Nil => 1,
        Value::Bool(_) => 2,
        Value::Int(_) | Value::Int64(_) | Value::Byte(_) => 3,
        Value::Float(_) => 4,
        Value::Str(_) => 5,
        Value::List(_) => 6,
        Value::Map(_) => 7,
        Value::Struct(_) => 8,
    }
}

/// Go's `fmtsort` comparison: numbers by value, strings by bytes, false < true, structs field
/// by field in declaration order.
pub(crate) fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Byte(x), Value::Byte(y)) => x.cmp(y),
        (
            a @ (Value::Int(_) | Value::Int64(_) | Value::Byte(_)),
            b @ (Value::Int(_) | Value::Int64(_) | Value::Byte(_)),
        ) => a.as_i64().cmp(&b.as_i64()),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Str(x), Value::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Struct(x), Value::Struct(y)) => {
            for (fx, fy) in x.fields.iter().zip(y.fields.iter()) {
                if fx.method || fy.method {
                    continue;
                }
                let c = compare(&fx.value, &fy.value);
                if c != Ordering::Equal {
                    return c;
                }
            }
            Ordering::Equal
        }
        (Value::List(x), Value::List(y)) => {
            for (ix, iy) in x.items.iter().zip(y.items.iter()) {
                let c = compare(ix, iy);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.items.len().cmp(&y.items.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Go's `==` for comparable values (structs compare field by field).
pub(crate) fn go_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Struct(x), Value::Struct(y)) => {
            x.type_name == y.type_name && compare(a, b) == Ordering::Equal
        }
        (Value::Nil, Value::Nil) | (Value::Invalid, Value::Invalid) => true,
        _ => same_kind(a, b) && compare(a, b) == Ordering::Equal,
    }
}
