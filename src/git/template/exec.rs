//! The executor: walks a parsed template over the data as Go's `text/template` does (variables,
//! pipelines, field chains, `if`/`with`/`range`, `break`/`continue`, `template`).

use super::funcs;
use super::gofmt;
use super::parse::{Arg, Branch, Command, Node, Pipe, Pos, Tree};
use super::value::Value;

/// Output larger than this is an error, so a runaway template cannot exhaust memory.
pub(crate) const MAX_OUTPUT: usize = 4 << 20;
/// Nested `template` calls deeper than this are an error (Go allows 100000; Rust's stack not).
const MAX_DEPTH: usize = 200;
/// Items a list or map made by a function may hold.
const MAX_ITEMS: usize = 1 << 20;
/// Evaluation steps allowed, so `range` over a huge integer cannot spin for ever.
const MAX_STEPS: u64 = 1_000_000;

/// Why execution stopped.
#[derive(Debug, Clone)]
pub(crate) enum ExecError {
    /// A Go execute error: where, the node being evaluated, and what went wrong.
    Failed {
        pos: Pos,
        context: String,
        message: String,
    },
    /// A field that Flux removed (`.Updated`, `.Changed.ImageResult`).
    Removed { pos: Pos, field: &'static str },
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec<'t> {
    tree: &'t Tree,
    pub out: String,
    vars: Vec<Var>,
    /// Dot is an element of an `[]interface {}` or `map[string]interface {}` being ranged
    /// over: Go names its type `interface {}` in errors.
    dot_iface: bool,
    depth: usize,
    steps: u64,
    /// The node being evaluated, for error messages.
    at: At<'t>,
}

type R<T> = Result<T, ExecError>;

impl<'t> Exec<'t> {
    pub fn new(tree: &'t Tree, data: Value) -> Self {
        Exec {
            tree,
            out: String::new(),
            vars: vec![Var::new("$", data, false)],
            dot_iface: false,
            depth: 0,
            steps: 0,
            at: At::Start,
        }
    }

    pub fn run(&mut self) -> R<()> {
        let dot = self.vars[0].value.clone();
        let tree: &'t Tree = self.tree;
        self.walk_list(&dot, &tree.root)?;
        if self.out.len() > MAX_OUTPUT {
            return self.fail(format!("output exceeds {MAX_OUTPUT} bytes"));
        }
        Ok(())
    }

    fn fail<T>(&self, message: impl Into<String>) -> R<T> {
        let (pos, context) = self.at.describe();
        Err(ExecError::Failed {
            pos,
            context,
            message: message.into(),
        })
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return self.fail(format!("template took more than {MAX_STEPS} steps"));
        }
        if self.out.len() > MAX_OUTPUT {
            return self.fail(format!("output exceeds {MAX_OUTPUT} bytes"));
        }
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &'t [Node]) -> R<Flow> {
        for node in list {
            match self.walk(dot, node)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &'t Node) -> R<Flow> {
        self.step()?;
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print(&v);
                }
            }
            Node::If(b) | Node::With(b) => {
                let is_with = matches!(node, Node::With(_));
                let mark = self.vars.len();
                let v = self.eval_pipeline(dot, &b.pipe)?;
                let flow = if v.truth() {
                    if is_with {
                        let saved_iface = std::mem::replace(&mut self.dot_iface, false);
                        let flow = self.walk_list(&v, &b.list);
                        self.dot_iface = saved_iface;
                        flow?
                    } else {
                        self.walk_list(dot, &b.list)?
                    }
                } else if let Some(e) = &b.else_list {
                    self.walk_list(dot, e)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(b) => {
                let mark = self.vars.len();
                let r = self.walk_range(dot, b);
                self.vars.truncate(mark);
                r?;
            }
            Node::Template { pos, name, pipe } => {
                self.at = At::Template(*pos, name);
                let Some(body) = self.tree.defines.get(name) else {
                    return self.fail(format!(
                        "template {} not defined",
                        gofmt::go_quote(name, false)
                    ));
                };
                if self.depth >= MAX_DEPTH {
                    return self.fail(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                }
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Invalid,
                };
                let saved =
                    std::mem::replace(&mut self.vars, vec![Var::new("$", new_dot.clone(), false)]);
                let saved_iface = std::mem::replace(&mut self.dot_iface, false);
                self.depth += 1;
                let r = self.walk_list(&new_dot, body);
                self.depth -= 1;
                self.vars = saved;
                self.dot_iface = saved_iface;
                r?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_range(&mut self, dot: &Value, b: &'t Branch) -> R<()> {
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let decl = &b.pipe.decl;
        let len = match &v {
            Value::List(l) => l.items.len() as i64,
            Value::Map(m) => m.entries.len() as i64,
            Value::Int(n) | Value::Int64(n) => {
                // Go 1.22 and later range over integers.
                if decl.len() > 1 {
                    return self.fail(format!(
                        "can't use {n} to iterate over more than one variable"
                    ));
                }
                (*n).max(0)
            }
            Value::Invalid | Value::Nil => 0,
            other => {
                return self.fail(format!(
                    "range can't iterate over {}",
                    gofmt::sprint_value(other)
                ));
            }
        };
        let iface = matches!(v.type_name(), "[]interface {}" | "map[string]interface {}");
        if len == 0 {
            if let Some(e) = &b.else_list {
                self.walk_list(dot, e)?;
            }
            return Ok(());
        }
        for i in 0..len {
            self.step()?;
            let (key, elem) = match &v {
                Value::List(l) => (Value::Int(i), l.items[i as usize].clone()),
                Value::Map(m) => m.entries[i as usize].clone(),
                Value::Int64(_) => (Value::Int64(i), Value::Int64(i)),
                _ => (Value::Int(i), Value::Int(i)),
            };
            match decl.len() {
                0 => {}
                1 => self.set_var(&decl[0], elem.clone(), iface),
                _ => {
                    self.set_var(&decl[0], key, false);
                    self.set_var(&decl[1], elem.clone(), iface);
                }
            }
            let mark = self.vars.len();
            let saved_iface = std::mem::replace(&mut self.dot_iface, iface);
            let flow = self.walk_list(&elem, &b.list);
            self.dot_iface = saved_iface;
            self.vars.truncate(mark);
            match flow? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value, iface: bool) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|var| var.name == name) {
            slot.value = v;
            slot.iface = iface;
        }
    }

    fn var(&self, name: &str) -> R<(Value, bool)> {
        match self.vars.iter().rev().find(|var| var.name == name) {
            Some(var) => Ok((var.value.clone(), var.iface)),
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn print(&mut self, v: &Value) {
        match v {
            Value::Invalid => self.out.push_str("<no value>"),
            Value::Str(s) => self.out.push_str(s),
            other => self.out.push_str(&gofmt::sprint_value(other)),
        }
    }

    pub(crate) fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            // A nil interface result is an invalid value to the next stage, as in Go.
            value = Some(match self.eval_command(dot, cmd, value)? {
                Value::Nil => Value::Invalid,
                v => v,
            });
        }
        let value = value.unwrap_or(Value::Invalid);
        for d in &pipe.decl {
            if pipe.is_assign {
                if !self.vars.iter().any(|var| &var.name == d) {
                    return self.fail(format!("undefined variable: {d}"));
                }
                self.set_var(d, value.clone(), false);
            } else {
                self.vars.push(Var::new(d, value.clone(), false));
            }
        }
        Ok(value)
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, fin: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        self.at = At::Cmd(cmd);
        match first {
            Arg::Field(_, fields) => {
                let iface = self.dot_iface;
                self.eval_chain(dot.clone(), fields, &cmd.args[1..], fin, iface)
            }
            Arg::Variable(_, name, fields) => {
                let (v, iface) = self.var(name)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, &fin)?;
                    return Ok(v);
                }
                self.eval_chain(v, fields, &cmd.args[1..], fin, iface)
            }
            Arg::Pipe(_, pipe, fields) => {
                if fields.is_empty() {
                    self.not_a_function(cmd, &fin)?;
                    return self.eval_pipeline(dot, pipe);
                }
                let v = self.eval_pipeline(dot, pipe)?;
                self.at = At::Cmd(cmd);
                self.eval_chain(v, fields, &cmd.args[1..], fin, false)
            }
            Arg::Chain(_, name, fields) => {
                let v = self.eval_function(dot, name, &[], None)?;
                self.at = At::Cmd(cmd);
                self.eval_chain(v, fields, &cmd.args[1..], fin, false)
            }
            Arg::Ident(_, name) => self.eval_function(dot, name, &cmd.args[1..], fin),
            Arg::Nil(_) => {
                self.not_a_function(cmd, &fin)?;
                self.fail("nil is not a command")
            }
            Arg::Dot(_) => {
                self.not_a_function(cmd, &fin)?;
                Ok(dot.clone())
            }
            Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) => {
                self.not_a_function(cmd, &fin)?;
                self.literal(first)
            }
        }
    }

    fn not_a_function(&self, cmd: &Command, fin: &Option<Value>) -> R<()> {
        if cmd.args.len() > 1 || fin.is_some() {
            return self.fail(format!(
                "can't give argument to non-function {}",
                cmd.args[0]
            ));
        }
        Ok(())
    }

    /// Go's `idealConstant`: a number with `.`, `e` or `p` is a float64, else an int.
    fn literal(&self, arg: &Arg) -> R<Value> {
        Ok(match arg {
            Arg::Bool(_, b) => Value::Bool(*b),
            Arg::Str(_, s, _) => Value::str(s.as_str()),
            Arg::Number(_, n) => {
                let hex = n.text.to_ascii_lowercase().contains("0x");
                let floaty = !n.is_char
                    && if hex {
                        n.text.contains(['p', 'P'])
                    } else {
                        n.text.contains(['.', 'e', 'E'])
                    };
                match (n.int, n.float) {
                    (_, Some(f)) if floaty => Value::Float(f),
                    (Some(i), _) => Value::Int(i),
                    _ => return self.fail(format!("{} overflows int", n.text)),
                }
            }
            Arg::Nil(_) => Value::Nil,
            _ => Value::Invalid,
        })
    }

    /// Evaluates `.A.B.C` starting at `receiver`; the last field gets the arguments.
    /// `iface`: the receiver's static type is `interface {}` (see `dot_iface`).
    fn eval_chain(
        &mut self,
        mut receiver: Value,
        fields: &[String],
        args: &'t [Arg],
        fin: Option<Value>,
        mut iface: bool,
    ) -> R<Value> {
        let n = fields.len();
        for (i, f) in fields.iter().enumerate() {
            let last = i + 1 == n;
            let has_args = last && (!args.is_empty() || fin.is_some());
            let next_iface =
                matches!(&receiver, Value::Map(m) if m.type_name == "map[string]interface {}");
            receiver = self.eval_field(&receiver, f, has_args, iface)?;
            iface = next_iface;
        }
        Ok(receiver)
    }

    fn eval_field(
        &mut self,
        receiver: &Value,
        name: &str,
        has_args: bool,
        iface: bool,
    ) -> R<Value> {
        let type_name = if iface {
            "interface {}"
        } else {
            receiver.type_name()
        };
        match receiver {
            Value::Invalid => Ok(Value::Invalid),
            Value::Nil => self.fail(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::Struct(s) => {
                if !iface && s.type_name == "source.TemplateData" && name == "Updated" {
                    return Err(ExecError::Removed {
                        pos: self.at.describe().0,
                        field: ".Updated",
                    });
                }
                if !iface && s.type_name == "update.Result" && name == "ImageResult" {
                    return Err(ExecError::Removed {
                        pos: self.at.describe().0,
                        field: ".Changed.ImageResult",
                    });
                }
                let is_method = s.fields.iter().any(|f| f.name == name && f.method);
                match receiver.struct_field(name) {
                    Some(v) => {
                        if has_args {
                            if is_method {
                                return self.fail(format!(
                                    "wrong number of args for {name}: want 0 got 1"
                                ));
                            }
                            return self.fail(format!(
                                "{name} has arguments but cannot be invoked as function"
                            ));
                        }
                        Ok(v)
                    }
                    None => self.fail(format!("can't evaluate field {name} in type {type_name}")),
                }
            }
            Value::Map(m) if m.has_string_keys() => {
                if has_args {
                    return self.fail(format!("{name} is not a method but has arguments"));
                }
                Ok(receiver
                    .map_get(&Value::str(name))
                    .unwrap_or(Value::Invalid))
            }
            _ => self.fail(format!("can't evaluate field {name} in type {type_name}")),
        }
    }

    /// Evaluates one argument of a function call.
    fn eval_arg(&mut self, dot: &Value, arg: &'t Arg) -> R<Value> {
        self.at = At::Arg(arg);
        match arg {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Nil),
            Arg::Field(_, fields) => {
                let iface = self.dot_iface;
                self.eval_chain(dot.clone(), fields, &[], None, iface)
            }
            Arg::Variable(_, name, fields) => {
                let (v, iface) = self.var(name)?;
                self.eval_chain(v, fields, &[], None, iface)
            }
            Arg::Pipe(_, pipe, fields) => {
                let v = self.eval_pipeline(dot, pipe)?;
                self.eval_chain(v, fields, &[], None, false)
            }
            Arg::Ident(_, name) => self.eval_function(dot, name, &[], None),
            Arg::Chain(_, name, fields) => {
                let v = self.eval_function(dot, name, &[], None)?;
                self.eval_chain(v, fields, &[], None, false)
            }
            Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) => self.literal(arg),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let here = self.at;
        // `and` and `or` evaluate their arguments lazily.
        if name == "and" || name == "or" {
            let total = args.len() + usize::from(fin.is_some());
            if total == 0 {
                self.at = here;
                return self.fail(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut last = Value::Invalid;
            for a in args {
                last = self.eval_arg(dot, a)?;
                if last.truth() == (name == "or") {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let total = args.len() + usize::from(fin.is_some());
        let (fixed, variadic) = funcs::signature(name);
        if variadic && total < fixed {
            return self.fail(format!(
                "wrong number of args for {name}: want at least {fixed} got {total}"
            ));
        }
        if !variadic && total != fixed {
            return self.fail(format!(
                "wrong number of args for {name}: want {fixed} got {total}"
            ));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.eval_arg(dot, a)?);
        }
        if let Some(f) = fin {
            values.push(f);
        }
        self.at = here;
        loop {
            match funcs::call(name, &values) {
                Ok(v) => {
                    // Values that double on each loop pass would exhaust memory long before
                    // the output limit: bound what a function may return.
                    let too_big = match &v {
                        Value::Str(s) => s.len() > MAX_OUTPUT,
                        Value::List(l) => l.items.len() > MAX_ITEMS,
                        Value::Map(m) => m.entries.len() > MAX_ITEMS,
                        _ => false,
                    };
                    if too_big {
                        return self.fail(format!(
                            "error calling {name}: result larger than {MAX_OUTPUT} bytes or {MAX_ITEMS} items"
                        ));
                    }
                    return Ok(v);
                }
                Err(funcs::CallError::Message(m)) => return self.fail(m),
                Err(funcs::CallError::Calling(m)) => {
                    return self.fail(format!("error calling {name}: {m}"))
                }
                Err(funcs::CallError::ArgType { index, want }) => {
                    // An integral float constant (`2.0`, `1e3`) converts to an int parameter.
                    if let (Some(Arg::Number(_, n)), Value::Float(_), "int") =
                        (args.get(index), &values[index], want)
                    {
                        if let Some(i) = n.int {
                            values[index] = Value::Int(i);
                            continue;
                        }
                    }
                    return self.arg_type_error(args.get(index), &values[index], want);
                }
            }
        }
    }

    /// Go's messages for an argument of the wrong type: literals are checked against the
    /// parameter type ("expected integer; found \"5\""), computed values after evaluation.
    fn arg_type_error(&mut self, node: Option<&'t Arg>, value: &Value, want: &str) -> R<Value> {
        if let Some(node) = node {
            let literal_want = match want {
                "int" => "integer",
                other => other,
            };
            match node {
                Arg::Nil(_) => {
                    self.at = At::Arg(node);
                    return self.fail(format!("cannot assign nil to {want}"));
                }
                Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) if want.starts_with("map[") => {
                    self.at = At::Arg(node);
                    return self.fail(format!("can't handle {node} for arg of type {want}"));
                }
                Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) => {
                    self.at = At::Arg(node);
                    return self.fail(format!("expected {literal_want}; found {node}"));
                }
                _ => {}
            }
        }
        match value {
            Value::Invalid | Value::Nil => self.fail(format!("invalid value; expected {want}")),
            other => self.fail(format!(
                "wrong type for value; expected {want}; got {}",
                other.type_name()
            )),
        }
    }
}

/// A template variable; `iface` as for `Exec::dot_iface`.
struct Var {
    name: String,
    value: Value,
    iface: bool,
}

impl Var {
    fn new(name: &str, value: Value, iface: bool) -> Self {
        Var {
            name: name.to_string(),
            value,
            iface,
        }
    }
}

/// The node being evaluated, described only when an error needs it.
#[derive(Clone, Copy)]
enum At<'t> {
    Start,
    Cmd(&'t Command),
    Arg(&'t Arg),
    Template(Pos, &'t str),
}

impl At<'_> {
    /// The offset and Go's text of the node.
    fn describe(&self) -> (Pos, String) {
        match self {
            At::Start => (0, String::new()),
            At::Cmd(cmd) => (cmd.args[0].pos(), cmd.to_string()),
            At::Arg(arg) => (arg.pos(), arg.to_string()),
            At::Template(pos, name) => (
                *pos,
                format!("{{{{template {}}}}}", gofmt::go_quote(name, false)),
            ),
        }
    }
}
