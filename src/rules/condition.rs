//! CEL conditions: compiled once when rules.toml is loaded, checked against
//! the documented context (so a misspelt field is a load error with a line,
//! not a rule that silently never matches), and evaluated per message.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelBool, CelString};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// What a condition may read, and which fields each map has. `None`: any
/// key (headers) or not a map at all.
type Schema = &'static [(&'static str, Option<&'static [&'static str]>)];

const ADDRESS: &[&str] = &["address", "name", "local", "domain"];
const TICKET: &[&str] = &[
    "number",
    "queue",
    "priority",
    "status",
    "tags",
    "customer",
    "owner",
    "age",
    "messages",
    "new",
    "satisfaction",
    "suggested_articles",
];
/// `message.text` and `message.subject`: the body and subject under the
/// names the knowledge base's rules read (issue 19).
const MESSAGE: &[&str] = &["text", "subject"];
const CLOCK: &[&str] = &["due", "remaining", "breached", "running", "paused"];

/// The context of a rule at ingest (documented in examples/rules.toml).
pub const MESSAGE_SCHEMA: Schema = &[
    ("from", Some(ADDRESS)),
    ("to", Some(ADDRESS)),
    ("cc", None),
    ("recipients", None),
    ("subject", None),
    ("body", None),
    ("headers", None),
    ("attachments", None),
    ("auth", Some(&["spf", "dkim", "dmarc"])),
    ("message", Some(MESSAGE)),
    ("ticket", Some(TICKET)),
    ("now", None),
];

/// The context of an escalation: the ticket, its clocks, and the time.
pub const ESCALATION_SCHEMA: Schema = &[
    ("ticket", Some(TICKET)),
    ("first_response", Some(CLOCK)),
    ("next_response", Some(CLOCK)),
    ("resolution", Some(CLOCK)),
    ("now", None),
];

/// The name `matches` is rewritten to: the standard `matches` compiles its
/// regular expression on every call, which alone would cost more than the
/// whole budget of a message (tens of µs per rule).
const CACHED_MATCHES: &str = "postdeskMatches";

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    let registered = cel::add_member_overload!(env, fn cached_matches: (CelString, CelString) -> Result<CelBool>, name = "postdeskMatches")
        .and_then(|()| cel::add_overload!(env, fn cached_matches: (CelString, CelString) -> Result<CelBool>, name = "postdeskMatches", id = "postdeskMatches_global"));
    if let Err(err) = registered {
        // Only a name clash inside this crate can cause it; the rewritten
        // calls then fail at run time and are logged like any rule error.
        tracing::error!(%err, "cannot register the cached regex function");
    }
    Arc::new(env)
});

thread_local! {
    static REGEXES: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
}

/// Patterns kept per thread; rules have a handful, and a pattern built
/// from message data cannot grow the cache without bound.
const REGEX_CACHE_SIZE: usize = 512;

fn cached_matches(
    text: &CelString<'_>,
    pattern: &CelString<'_>,
) -> Result<CelBool, ExecutionError> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(re) = cache.get(pattern.inner()) {
            return Ok(CelBool::from(re.is_match(text.inner())));
        }
        let re = regex::Regex::new(pattern.inner())
            .map_err(|err| ExecutionError::function_error("matches", err.to_string()))?;
        let found = re.is_match(text.inner());
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.inner().to_string(), re);
        Ok(CelBool::from(found))
    })
}

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    expr: IdedExpr,
    /// The top-level names it reads (to build only those).
    pub reads: Vec<&'static str>,
    /// Those of them it reads whole, not only as `name.field`.
    pub whole: Vec<&'static str>,
    /// Every `duration('…')` literal in it: an escalation that compares a
    /// clock's `remaining` with one wants to be looked at that long before
    /// the due time.
    pub durations: Vec<chrono::Duration>,
}

/// A problem in a condition, with its position inside the expression
/// (line and column from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Condition {
    pub fn compile(source: &str, schema: Schema) -> Result<Condition, ConditionError> {
        let mut expr = ENV.parser().parse(source).map_err(|errors| {
            let first = errors.errors.first();
            ConditionError {
                line: first.map_or(1, |e| e.pos.0.max(1) as usize),
                column: first.map_or(1, |e| e.pos.1.max(0) as usize + 1),
                message: first.map_or_else(|| "syntax error".into(), |e| e.msg.clone()),
            }
        })?;
        let mut check = Check {
            schema,
            bound: Vec::new(),
            reads: Vec::new(),
            whole: Vec::new(),
            durations: Vec::new(),
            problem: None,
            position: None,
        };
        check.walk(&mut expr);
        if let Some(message) = check.problem {
            // The AST keeps no positions; the name is found in the source.
            let (line, column) = check
                .position
                .map_or((1, 1), |needle| locate(source, &needle));
            return Err(ConditionError {
                line,
                column,
                message,
            });
        }
        let Check {
            reads,
            whole,
            durations,
            ..
        } = check;
        Ok(Condition {
            expr,
            reads,
            whole,
            durations,
        })
    }

    /// Evaluates to a boolean; anything else is an error (a rule that is
    /// neither true nor false matches nothing).
    pub fn evaluate(&self, variables: &Variables) -> Result<bool, String> {
        let mut needs = Needs::default();
        needs.add(self);
        self.evaluate_in(&variables.context(&needs))
    }

    /// Evaluates in a context built once for many conditions (a message's
    /// rules share one: building it costs more than most conditions).
    pub fn evaluate_in(&self, context: &Context<'_, '_>) -> Result<bool, String> {
        match context.resolve(&self.expr) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition gave {other:?}, not true or false")),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// What a set of conditions reads, so that a context binds only that: a
/// message's 64 KB body or its headers cost nothing when no rule reads
/// them.
#[derive(Debug, Default, Clone)]
pub struct Needs {
    roots: Vec<&'static str>,
    whole: Vec<&'static str>,
}

impl Needs {
    pub fn add(&mut self, condition: &Condition) {
        for (list, names) in [
            (&mut self.roots, &condition.reads),
            (&mut self.whole, &condition.whole),
        ] {
            for name in names {
                if !list.contains(name) {
                    list.push(name);
                }
            }
        }
    }
}

/// The values of a context, by top-level name.
#[derive(Debug, Default, Clone)]
pub struct Variables(pub Vec<(&'static str, Value)>);

impl Variables {
    /// A CEL context holding what `needs` says is read.
    pub fn context(&self, needs: &Needs) -> Context<'static, 'static> {
        let mut context = Context::with_env(ENV.clone());
        for (name, value) in &self.0 {
            if !needs.roots.contains(name) {
                continue;
            }
            // `from.domain` is first looked up as a variable of that whole
            // name: binding the fields of the documented maps that way
            // spares the map select in every rule.
            if let Value::Map(map) = value
                && *name != "headers"
            {
                for (key, field) in map.map.iter() {
                    if let Key::String(key) = key {
                        context.add_variable_from_value(format!("{name}.{key}"), field.clone());
                    }
                }
                if !needs.whole.contains(name) {
                    continue;
                }
            }
            context.add_variable_from_value(*name, value.clone());
        }
        context
    }

    pub fn set(&mut self, name: &'static str, value: Value) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value));
    }
}

pub fn map(fields: Vec<(&str, Value)>) -> Value {
    let map: HashMap<Key, Value> = fields
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k.to_string())), v))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

pub fn string(text: &str) -> Value {
    Value::String(Arc::new(text.to_string()))
}

pub fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::List(Arc::new(items.into_iter().map(|s| string(s)).collect()))
}

pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> Value {
    Value::Timestamp(at.fixed_offset())
}

struct Check {
    schema: Schema,
    /// Names bound by comprehensions (`exists(x, …)`) around this point.
    bound: Vec<String>,
    reads: Vec<&'static str>,
    whole: Vec<&'static str>,
    durations: Vec<chrono::Duration>,
    problem: Option<String>,
    position: Option<String>,
}

impl Check {
    fn fail(&mut self, message: String, needle: &str) {
        if self.problem.is_none() {
            self.problem = Some(message);
            self.position = Some(needle.to_string());
        }
    }

    /// Marks `name` as read whole (not as `name.field`).
    fn read_whole(&mut self, name: &str) {
        if let Some((n, _)) = self.schema.iter().find(|(n, _)| *n == name)
            && !self.whole.contains(n)
            && !self.bound.iter().any(|b| b == name)
        {
            self.whole.push(n);
        }
    }

    fn root(&mut self, name: &str) -> Option<Option<&'static [&'static str]>> {
        if self.bound.iter().any(|b| b == name) {
            return None;
        }
        match self.schema.iter().find(|(n, _)| *n == name) {
            Some((n, fields)) => {
                if !self.reads.contains(n) {
                    self.reads.push(n);
                }
                Some(*fields)
            }
            None => {
                let known: Vec<&str> = self.schema.iter().map(|(n, _)| *n).collect();
                self.fail(
                    format!("unknown field '{name}' (known: {})", known.join(", ")),
                    name,
                );
                None
            }
        }
    }

    fn walk(&mut self, expr: &mut IdedExpr) {
        match &mut expr.expr {
            Expr::Ident(name) => {
                let name = name.clone();
                self.root(&name);
                self.read_whole(&name);
            }
            Expr::Select(select) => {
                let mut flat = None;
                if let Expr::Ident(root) = &select.operand.expr {
                    let root = root.clone();
                    let field = select.field.clone();
                    if let Some(Some(fields)) = self.root(&root) {
                        if !fields.contains(&field.as_str()) {
                            self.fail(
                                format!(
                                    "unknown field '{root}.{field}' (known: {})",
                                    fields.join(", ")
                                ),
                                &format!("{root}.{field}"),
                            );
                        } else if !select.test {
                            flat = Some(format!("{root}.{field}"));
                        }
                    }
                    if flat.is_none() {
                        self.read_whole(&root);
                    }
                } else {
                    self.walk(&mut select.operand);
                }
                // `from.domain` becomes the variable "from.domain" that
                // [`Variables::context`] binds: a name lookup, where the
                // interpreter would join the qualified name anew and select
                // from the map on every evaluation.
                if let Some(name) = flat {
                    expr.expr = Expr::Ident(name);
                }
            }
            Expr::Call(call) => {
                if call.func_name == "matches"
                    && call.args.len() + usize::from(call.target.is_some()) == 2
                {
                    if let Some(IdedExpr {
                        expr: Expr::Literal(LiteralValue::String(pattern)),
                        ..
                    }) = call.args.last()
                        && let Err(err) = regex::Regex::new(pattern.inner())
                    {
                        let pattern = pattern.inner().to_string();
                        self.fail(format!("bad regular expression: {err}"), &pattern);
                    }
                    call.func_name = CACHED_MATCHES.to_string();
                }
                if call.func_name == "duration"
                    && let [
                        IdedExpr {
                            expr: Expr::Literal(LiteralValue::String(text)),
                            ..
                        },
                    ] = call.args.as_slice()
                {
                    match parse_cel_duration(text.inner()) {
                        Some(d) => self.durations.push(d),
                        None => {
                            let text = text.inner().to_string();
                            self.fail(
                                format!("bad duration '{text}' (write e.g. '30m', '1h30m', '90s')"),
                                &text,
                            );
                        }
                    }
                }
                if let Some(target) = &mut call.target {
                    self.walk(target);
                }
                for arg in &mut call.args {
                    self.walk(arg);
                }
            }
            Expr::Comprehension(comprehension) => {
                self.walk(&mut comprehension.iter_range);
                self.walk(&mut comprehension.accu_init);
                let depth = self.bound.len();
                self.bound.push(comprehension.iter_var.clone());
                self.bound.extend(comprehension.iter_var2.clone());
                self.bound.push(comprehension.accu_var.clone());
                self.walk(&mut comprehension.loop_cond);
                self.walk(&mut comprehension.loop_step);
                self.walk(&mut comprehension.result);
                self.bound.truncate(depth);
            }
            Expr::List(list) => {
                for element in &mut list.elements {
                    self.walk(element);
                }
            }
            Expr::Map(map) => {
                for entry in &mut map.entries {
                    if let EntryExpr::MapEntry(entry) = &mut entry.expr {
                        self.walk(&mut entry.key);
                        self.walk(&mut entry.value);
                    }
                }
            }
            Expr::Struct(structure) => {
                for entry in &mut structure.entries {
                    match &mut entry.expr {
                        EntryExpr::StructField(field) => self.walk(&mut field.value),
                        EntryExpr::MapEntry(entry) => {
                            self.walk(&mut entry.key);
                            self.walk(&mut entry.value);
                        }
                    }
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
}

/// CEL's duration syntax (Go's): a sequence of decimal numbers with units
/// h, m, s, ms, us, ns.
fn parse_cel_duration(text: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = chrono::Duration::zero();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "h" => 3_600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += chrono::Duration::nanoseconds((number * nanos_per) as i64);
    }
    Some(if negative { -total } else { total })
}

/// Line and column (from 1) of the first occurrence of `needle`.
fn locate(source: &str, needle: &str) -> (usize, usize) {
    let offset = source.find(needle).unwrap_or(0);
    crate::config::line_column(source, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut v = Variables::default();
        v.set(
            "from",
            map(vec![
                ("address", string("ann@bigcustomer.example")),
                ("name", string("Ann")),
                ("local", string("ann")),
                ("domain", string("bigcustomer.example")),
            ]),
        );
        v.set("subject", string("Our VPN is DOWN since 9"));
        v.set("body", string("Please send the invoice again"));
        v
    }

    #[test]
    fn conditions_read_the_context() {
        let c = Condition::compile(
            r#"subject.matches("(?i)\\b(outage|down)\\b") && from.domain in ["bigcustomer.example"]"#,
            MESSAGE_SCHEMA,
        )
        .unwrap();
        assert_eq!(c.evaluate(&vars()), Ok(true));
        assert_eq!(c.reads, vec!["subject", "from"]);
        let c = Condition::compile("body.contains('refund')", MESSAGE_SCHEMA).unwrap();
        assert_eq!(c.evaluate(&vars()), Ok(false));
        let c = Condition::compile(
            "[1, 2].exists(x, x > 1) && subject.size() > 3",
            MESSAGE_SCHEMA,
        )
        .unwrap();
        assert_eq!(c.evaluate(&vars()), Ok(true));
    }

    #[test]
    fn mistakes_are_found_when_compiling() {
        let err = Condition::compile("subject.contains('x') &&", MESSAGE_SCHEMA).unwrap_err();
        assert_eq!(err.line, 1);
        let err = Condition::compile("from.domian == 'x'", MESSAGE_SCHEMA).unwrap_err();
        assert!(
            err.message.contains("unknown field 'from.domian'"),
            "{err:?}"
        );
        assert_eq!((err.line, err.column), (1, 1));
        let err =
            Condition::compile("subject == 'a' ||\n  sender == 'x'", MESSAGE_SCHEMA).unwrap_err();
        assert!(err.message.contains("unknown field 'sender'"), "{err:?}");
        assert_eq!((err.line, err.column), (2, 3));
        let err = Condition::compile("subject.matches('(unclosed')", MESSAGE_SCHEMA).unwrap_err();
        assert!(err.message.contains("regular expression"), "{err:?}");
        let err = Condition::compile(
            "first_response.remaining < duration('30 minutes')",
            ESCALATION_SCHEMA,
        )
        .unwrap_err();
        assert!(err.message.contains("bad duration"), "{err:?}");
        // Clocks exist for escalations only.
        assert!(Condition::compile("first_response.breached", MESSAGE_SCHEMA).is_err());
    }

    #[test]
    fn runtime_errors_are_reported_not_raised() {
        let c = Condition::compile("subject", MESSAGE_SCHEMA).unwrap();
        assert!(c.evaluate(&vars()).is_err());
        let c = Condition::compile("subject.matches(body)", MESSAGE_SCHEMA).unwrap();
        assert_eq!(c.evaluate(&vars()), Ok(false));
        let mut v = vars();
        v.set("body", string("("));
        assert!(c.evaluate(&v).is_err());
    }

    #[test]
    fn escalation_durations_are_collected() {
        let c = Condition::compile(
            "first_response.remaining < duration('30m') || resolution.remaining < duration('1h30m')",
            ESCALATION_SCHEMA,
        )
        .unwrap();
        assert_eq!(
            c.durations,
            vec![chrono::Duration::minutes(30), chrono::Duration::minutes(90)]
        );
    }
}
