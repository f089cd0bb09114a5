//! jq expressions (the `jaq` crates) that compute values and labels from a
//! response: filters, arithmetic, dates (`fromdateiso8601`), `length`,
//! `add / length`, `group_by`, ...
//!
//! An expression is checked and compiled when the configuration is loaded;
//! a syntax error or an unknown filter names the byte offset.
//!
//! Evaluation is bounded, because a jq filter can run forever
//! (`repeat(.)`, `last(range(1e18))`) or produce without end:
//!
//! * every loop of the language goes through a counted step: the
//!   generators `range`, `repeat`, `recurse(f)`, `while` and `until` are
//!   defined here, each iteration calling a native `__tick`, and user
//!   function definitions (`def`, the only other way to recurse) are
//!   refused at load time; a run stops with an error after [`MAX_STEPS`]
//!   steps or [`MAX_TIME`];
//! * at most [`MAX_OUTPUTS`] outputs of at most [`MAX_NODES`] JSON nodes
//!   in all are kept;
//! * filters that reach outside the response are not available: `env`
//!   (secrets live in the environment), `halt` (it would end the process),
//!   `input`/`inputs`, `debug` and `stderr`, module `import`/`include`.
//!
//! Not bounded: a single operation that allocates by itself, such as a
//! string repeated by an integer (`"x" * 1000000000`) or an assignment at
//! a huge index (`.[1000000000] = 1`). Expressions are the operator's
//! configuration; do not feed them numbers from a response that can reach
//! such operations.
//!
//! Evaluation is synchronous: callers run it on the blocking pool.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jaq_core::box_iter::box_once;
use jaq_core::load::lex::{StrPart, Tok, Token};
use jaq_core::load::{Arena, File, Lexer, Loader};
use jaq_core::{data::JustLut, Bind, Ctx, Cv, Error, Exn, Native, ValXs, Vars};
use jaq_json::Val;
use serde::Deserialize as _;
use serde_json::Value;

/// Most steps (loop iterations) one evaluation may take.
pub const MAX_STEPS: u64 = 1_000_000;
/// Longest one evaluation may take; a response is evaluated by every
/// expression of its collector within one cycle, so keep it well under a
/// cycle's timeout.
pub const MAX_TIME: Duration = Duration::from_secs(1);
/// Most outputs kept from one evaluation (a metric has at most as many series).
pub const MAX_OUTPUTS: usize = 10_000;
/// Most JSON nodes (values, keys) in all outputs of one evaluation.
pub const MAX_NODES: usize = 1_000_000;

/// Filters not offered to expressions (see the module doc).
const DENIED: [&str; 6] = [
    "env",
    "halt",
    "stderr_empty",
    "debug_empty",
    "input",
    "inputs",
];

/// The loop-forming generators, each iteration counted by `__tick`. They
/// replace the standard definitions of the same name and arity, in place,
/// so that every definition built on them (`range/1`, `recurse/0`,
/// `flatten`, ...) is counted too. (`..` is a native walk of the finite
/// input and needs no counting.)
const COUNTED: &str = r#"
def range($from; $upto; $by):
  def up: if . < $upto then ., (. + $by | __tick | up) else empty end;
  def down: if . > $upto then ., (. + $by | __tick | down) else empty end;
  if $by > 0 then $from | up elif $by < 0 then $from | down else empty end;
def repeat(f): def rec: ., (f | __tick | rec); rec;
def recurse(f): def rec: ., (f | __tick | rec); rec;
def while(cond; update): def rec: if cond then ., (update | __tick | rec) else empty end; rec;
def until(cond; update): def rec: if cond then . else (update | __tick | rec) end; rec;
"#;

/// Standard definitions built on denied filters, left out with them.
const DENIED_DEFS: [&str; 4] = ["stderr", "debug", "halt", "halt_error"];

type D = JustLut<Val>;

/// A compiled expression, compared and shown by its text.
#[derive(Clone)]
pub struct Expr {
    text: String,
    filter: Arc<jaq_core::Filter<D>>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.text)
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

thread_local! {
    /// The running evaluation's budget: steps left and deadline.
    static BUDGET: Cell<(u64, Option<Instant>)> = const { Cell::new((0, None)) };
}

/// Charges one step; errors once the budget is spent.
fn charge() -> Result<(), String> {
    BUDGET.with(|b| {
        let (left, deadline) = b.get();
        if left == 0 {
            return Err(format!("stopped after {MAX_STEPS} steps (a runaway loop?)"));
        }
        b.set((left - 1, deadline));
        // Reading the clock costs more than a step: every 1024 steps.
        if left % 1024 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            b.set((0, deadline));
            return Err(format!(
                "stopped after {} (a runaway loop?)",
                humantime::format_duration(MAX_TIME)
            ));
        }
        Ok(())
    })
}

fn tick(cv: Cv<'_, D>) -> ValXs<'_, Val> {
    match charge() {
        Ok(()) => box_once(Ok(cv.1)),
        Err(e) => box_once(Err(Exn::from(Error::str(e)))),
    }
}

impl Expr {
    /// Checks and compiles an expression.
    pub fn parse(text: &str) -> Result<Expr, String> {
        if text.trim().is_empty() {
            return Err("empty expression".to_owned());
        }
        let tokens = Lexer::new(text).lex().map_err(|e| lex_error(text, &e))?;
        if let Some(at) = forbidden_word(text, &tokens) {
            return Err(at);
        }
        let counted: Vec<_> =
            jaq_core::load::parse(COUNTED, |p| p.defs()).expect("the counted generators parse");
        type Def = jaq_core::load::parse::Def<&'static str>;
        let ours = |name: &str, arity: usize| {
            counted
                .iter()
                .find(|c| c.name == name && c.args.len() == arity)
                .cloned()
        };
        // In place, so that later definitions use ours. `range/3` is
        // native in jaq-core: ours goes right before `range/2`, its first user.
        let replace = |d: Def| -> Vec<Def> {
            match (d.name, d.args.len()) {
                ("range", 2) => ours("range", 3).into_iter().chain([d]).collect(),
                (n, a) => vec![ours(n, a).unwrap_or(d)],
            }
        };
        let defs = jaq_core::defs()
            .flat_map(replace)
            .chain(jaq_std::defs().filter(|d| !DENIED_DEFS.contains(&d.name)))
            .chain(jaq_json::defs());
        let allowed = |f: &jaq_core::native::Fun<D>| {
            let native_range = f.0 == "range" && f.1.len() == 3;
            !(DENIED.contains(&f.0) || native_range)
        };
        let tick_fun: jaq_core::native::Fun<D> = (
            "__tick",
            Box::new([]) as Box<[Bind]>,
            Native::<D>::new(tick),
        );
        let funs = jaq_core::funs::<D>()
            .chain(jaq_std::funs::<D>())
            .chain(jaq_json::funs::<D>())
            .filter(allowed)
            .chain(std::iter::once(tick_fun));
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(
                &arena,
                File {
                    code: text,
                    path: (),
                },
            )
            .map_err(|errs| {
                let mut out = Vec::new();
                for (_, e) in errs {
                    match e {
                        jaq_core::load::Error::Io(v) => {
                            out.extend(v.into_iter().map(|(_, m)| m));
                        }
                        jaq_core::load::Error::Lex(v) => out.push(lex_error(text, &v)),
                        jaq_core::load::Error::Parse(v) => {
                            out.extend(v.into_iter().map(|(exp, found)| {
                                format!("expected {} at byte {}", exp.as_str(), offset(text, found))
                            }));
                        }
                    }
                }
                out.join("; ")
            })?;
        let filter = jaq_core::Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                errs.into_iter()
                    .flat_map(|(_, v)| v)
                    .map(|(name, undef)| {
                        format!(
                            "undefined {} {name:?} at byte {}",
                            undef.as_str(),
                            offset(text, name)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
        Ok(Expr {
            text: text.to_owned(),
            filter: Arc::new(filter),
        })
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Runs the expression on `input`: every output, in order. Errors name
    /// the expression.
    pub fn eval(&self, input: &Value) -> Result<Vec<Value>, String> {
        let at = |e: String| format!("expression `{}`: {e}", self.text);
        let v = Val::deserialize(input).map_err(|e| at(e.to_string()))?;
        BUDGET.with(|b| b.set((MAX_STEPS, Some(Instant::now() + MAX_TIME))));
        let result = self.run(v);
        BUDGET.with(|b| b.set((0, None)));
        result.map_err(at)
    }

    fn run(&self, v: Val) -> Result<Vec<Value>, String> {
        let ctx = Ctx::<D>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        let mut nodes = 0usize;
        for r in self.filter.id.run((ctx, v)) {
            let x = match r {
                Ok(x) => x,
                Err(e) => {
                    return Err(match e.get_err() {
                        // `error("text")` (and our budget) shows as a JSON
                        // string: unquoted, it reads better.
                        Ok(err) => {
                            let s = err.to_string();
                            serde_json::from_str::<String>(&s).unwrap_or(s)
                        }
                        Err(_) => "the expression stopped without a value".to_owned(),
                    });
                }
            };
            if out.len() == MAX_OUTPUTS {
                return Err(format!("more than {MAX_OUTPUTS} outputs"));
            }
            out.push(to_json(&x, &mut nodes)?);
            // Between outputs too: a generator that yields forever without
            // looping in jq (a native one) still meets the clock.
            charge()?;
        }
        Ok(out)
    }
}

/// A jq value as JSON. NaN and infinities (jq prints NaN as `null`) become
/// `null`: a missing value.
fn to_json(v: &Val, nodes: &mut usize) -> Result<Value, String> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(format!("the outputs hold more than {MAX_NODES} values"));
    }
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => {
            let text = n.to_string();
            match serde_json::from_str::<serde_json::Number>(&text) {
                Ok(num) => Value::Number(num),
                Err(_) => match text.parse::<f64>() {
                    Ok(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
                    Err(_) => Value::Null,
                },
            }
        }
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(
            a.iter()
                .map(|x| to_json(x, nodes))
                .collect::<Result<_, _>>()?,
        ),
        Val::Obj(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, x) in m.iter() {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => other.to_string(),
                };
                out.insert(key, to_json(x, nodes)?);
            }
            Value::Object(out)
        }
    })
}

/// Byte offset of `part` (a slice of `whole`) in `whole`.
fn offset(whole: &str, part: &str) -> usize {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= start && p <= start + whole.len() {
        p - start
    } else {
        0
    }
}

fn lex_error(text: &str, errs: &[jaq_core::load::lex::Error<&str>]) -> String {
    errs.iter()
        .map(|(exp, at)| format!("expected {} at byte {}", exp.as_str(), offset(text, at)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `def`, `import` and `include` anywhere (also inside string
/// interpolations).
fn forbidden_word(text: &str, tokens: &[Token<&str>]) -> Option<String> {
    for Token(s, tok) in tokens {
        match tok {
            Tok::Word if matches!(*s, "def" | "import" | "include") => {
                return Some(format!(
                    "`{s}` at byte {} is not allowed: expressions may not define functions or load modules (evaluation must stay bounded)",
                    offset(text, s)
                ));
            }
            Tok::Block(inner) => {
                if let Some(e) = forbidden_word(text, inner) {
                    return Some(e);
                }
            }
            Tok::Str(parts) => {
                for p in parts {
                    if let StrPart::Term(t) = p {
                        if let Some(e) = forbidden_word(text, std::slice::from_ref(t)) {
                            return Some(e);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
