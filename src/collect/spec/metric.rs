//! One `[[collectors.metrics]]` table: name, type, source (`path`, `var`
//! or `expr`), labels, number format, and the keys that give summaries,
//! histograms and missing values their meaning.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    string, Cx, Expr, Kind, LabelFrom, MetricSpec, Missing, NumberFormat, Obj, Observe, Path,
    Source, Step, DEFAULT_BUCKETS,
};

/// Parses and checks one metric; every problem goes to `cx`.
pub(super) fn metric(
    o: &mut Obj<'_>,
    steps: &[Step],
    vars: &BTreeSet<String>,
    cx: &mut Cx,
) -> Option<MetricSpec> {
    let name = o.required("name", cx, |v| {
        let s = string(v)?;
        if !crate::exposition::is_valid_metric_name(&s) {
            return Err(format!("{s:?} is not a valid metric name"));
        }
        if s.starts_with("exporter_proxy_") {
            return Err("names starting with exporter_proxy_ are reserved".to_owned());
        }
        Ok(s)
    });
    let help = o.string("help", cx);
    let kind = kind(o, cx);
    let source = source(o, steps, vars, cx);
    let labels = labels(o, &source, cx);
    let static_labels = o.string_map("static_labels", cx);
    check_label_names(o, &labels, &static_labels, kind.as_ref(), cx);
    let format = format(o, cx);
    let delta = o
        .get("delta", cx, |v| {
            v.as_bool().ok_or_else(|| "expected a boolean".to_owned())
        })
        .unwrap_or(false);
    if delta && !matches!(kind, Some(Kind::Counter) | None) {
        cx.err(&o.key("delta"), "only for a counter");
    }
    let observe = observe(o, kind.as_ref(), source.as_ref(), cx);
    let id = o.get("id", cx, |v| Path::parse(&string(v)?));
    if id.is_some()
        && !(matches!(kind, Some(Kind::Summary | Kind::Histogram(_)) | None)
            && observe != Some(Observe::PerPoll))
    {
        cx.err(
            &o.key("id"),
            "only for a summary or a histogram observing per element",
        );
    }
    let missing = missing(o, cx);
    if let (Some(k), Some(n)) = (&kind, &name) {
        if matches!(k, Kind::Summary | Kind::Histogram(_)) {
            for suffix in ["_count", "_sum", "_bucket"] {
                if n.ends_with(suffix) {
                    cx.err(
                        &o.key("name"),
                        format!("a {} name may not end with {suffix}", k.as_str()),
                    );
                }
            }
        }
    }
    Some(MetricSpec {
        name: name?,
        help: help.unwrap_or_default(),
        kind: kind?,
        source: source?,
        labels,
        static_labels,
        format,
        delta,
        id,
        observe: observe.unwrap_or(Observe::PerElement),
        missing,
    })
}

fn kind(o: &mut Obj<'_>, cx: &mut Cx) -> Option<Kind> {
    let type_key = o.key("type");
    let typ = o.required("type", cx, string);
    let buckets = o.get("buckets", cx, |v| {
        let a = v.as_array().ok_or("expected a list of numbers")?;
        let b: Vec<f64> = a
            .iter()
            .map(|x| x.as_f64().ok_or("expected a list of numbers"))
            .collect::<Result<_, _>>()?;
        if b.is_empty() || b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|x| !x.is_finite()) {
            return Err("expected a non-empty list of increasing finite numbers".to_owned());
        }
        Ok(b)
    });
    let kind = match typ.as_deref() {
        None => None,
        Some("gauge") => Some(Kind::Gauge),
        Some("counter") => Some(Kind::Counter),
        Some("summary") => Some(Kind::Summary),
        Some("histogram") => match buckets.clone() {
            Some(b) => Some(Kind::Histogram(b)),
            // A bad `buckets` was reported already.
            None if o.map.contains_key("buckets") => None,
            None => Some(Kind::Histogram(DEFAULT_BUCKETS.to_vec())),
        },
        Some(other) => {
            cx.err(
                &type_key,
                format!("unknown type {other:?}: expected gauge, counter, summary or histogram"),
            );
            None
        }
    };
    if buckets.is_some() && !matches!(kind, Some(Kind::Histogram(_)) | None) {
        cx.err(&o.key("buckets"), "only for a histogram");
    }
    kind
}

fn source(o: &mut Obj<'_>, steps: &[Step], vars: &BTreeSet<String>, cx: &mut Cx) -> Option<Source> {
    let step_key = o.key("step");
    let step = o.get("step", cx, string);
    let step_index = match &step {
        None => steps.len().checked_sub(1),
        Some(s) => {
            let i = steps.iter().position(|st| st.name == *s);
            if i.is_none() {
                cx.err(&step_key, format!("no step is named {s:?}"));
            }
            i
        }
    };
    let path = o.get("path", cx, |v| Path::parse(&string(v)?));
    let var = o.get("var", cx, string);
    let expr = o.get("expr", cx, |v| Expr::parse(&string(v)?));
    let given = ["path", "var", "expr"]
        .iter()
        .filter(|k| o.map.contains_key(**k))
        .count();
    if given != 1 {
        cx.err(&o.path, "expected exactly one of `path`, `var` or `expr`");
        return None;
    }
    match (path, var, expr) {
        (Some(p), _, _) => step_index.map(|step| Source::Path { step, path: p }),
        (_, _, Some(e)) => step_index.map(|step| Source::Expr { step, expr: e }),
        (_, Some(v), _) => {
            if !vars.contains(&v) {
                cx.err(&o.key("var"), format!("no step extracts a variable {v:?}"));
            }
            if step.is_some() {
                cx.err(&step_key, "only with `path` or `expr`");
            }
            Some(Source::Var(v))
        }
        // Invalid, and reported.
        _ => None,
    }
}

/// `labels`: a path string, or `{ expr = "..." }`.
fn labels(o: &mut Obj<'_>, source: &Option<Source>, cx: &mut Cx) -> Vec<(String, LabelFrom)> {
    let label_key = o.key("labels");
    let Some(v) = o.raw("labels") else {
        return Vec::new();
    };
    let Some(m) = v.as_object() else {
        cx.err(
            &label_key,
            format!("expected a table, found {}", super::type_name(v)),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in m {
        let key = format!("{label_key}.{k}");
        let from = match v {
            Value::String(p) => Path::parse(p).map(LabelFrom::Path),
            Value::Object(t) if t.len() == 1 && t.contains_key("expr") => match &t["expr"] {
                Value::String(e) => Expr::parse(e).map(LabelFrom::Expr),
                other => Err(format!(
                    "`expr`: expected a string, found {}",
                    super::type_name(other)
                )),
            },
            _ => Err("expected a path string or { expr = \"...\" }".to_owned()),
        };
        match from {
            Ok(f) => out.push((k.clone(), f)),
            Err(e) => cx.err(&key, e),
        }
    }
    if matches!(source, Some(Source::Var(_))) && !out.is_empty() {
        cx.err(&label_key, "labels need `path` or `expr`, not `var`");
    }
    out
}

fn check_label_names(
    o: &Obj<'_>,
    labels: &[(String, LabelFrom)],
    static_labels: &[(String, String)],
    kind: Option<&Kind>,
    cx: &mut Cx,
) {
    let label_key = o.key("labels");
    let mut label_names = BTreeSet::new();
    for n in labels
        .iter()
        .map(|(n, _)| n)
        .chain(static_labels.iter().map(|(n, _)| n))
    {
        if !crate::exposition::is_valid_label_name(n) || n.starts_with("__") {
            cx.err(&label_key, format!("{n:?} is not a valid label name"));
        } else if (n == "le" && matches!(kind, Some(Kind::Histogram(_))))
            || (n == "quantile" && matches!(kind, Some(Kind::Summary)))
        {
            cx.err(&label_key, format!("{n:?} is reserved for this type"));
        }
        if !label_names.insert(n.clone()) {
            cx.err(&label_key, format!("label {n:?} is set twice"));
        }
    }
}

fn format(o: &mut Obj<'_>, cx: &mut Cx) -> NumberFormat {
    let decimal_comma = o
        .get("decimal", cx, |v| match v.as_str() {
            Some(".") => Ok(false),
            Some(",") => Ok(true),
            _ => Err("expected \".\" or \",\"".to_owned()),
        })
        .unwrap_or(false);
    let map = o
        .get("map", cx, |v| {
            let m = v.as_object().ok_or("expected a table of numbers")?;
            m.iter()
                .map(|(k, v)| {
                    v.as_f64()
                        .map(|n| (k.clone(), n))
                        .ok_or_else(|| format!("`{k}`: expected a number"))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .unwrap_or_default();
    let scale = o
        .get("scale", cx, |v| {
            v.as_f64()
                .filter(|f| f.is_finite() && *f != 0.0)
                .ok_or_else(|| "expected a non-zero number".to_owned())
        })
        .unwrap_or(1.0);
    NumberFormat {
        decimal_comma,
        map,
        scale,
    }
}

/// `observe`: `per_element` or `per_poll`, for summaries and histograms.
/// Without it: per element for a wildcard path, per poll for a single path
/// or a variable; an expression must say.
fn observe(
    o: &mut Obj<'_>,
    kind: Option<&Kind>,
    source: Option<&Source>,
    cx: &mut Cx,
) -> Option<Observe> {
    let key = o.key("observe");
    let given = o.get("observe", cx, |v| match v.as_str() {
        Some("per_element") => Ok(Observe::PerElement),
        Some("per_poll") => Ok(Observe::PerPoll),
        _ => Err("expected \"per_element\" or \"per_poll\"".to_owned()),
    });
    let observing = matches!(kind, Some(Kind::Summary | Kind::Histogram(_)));
    if !observing {
        if given.is_some() && kind.is_some() {
            cx.err(&key, "only for a summary or a histogram");
        }
        return given;
    }
    match (given, source) {
        (Some(Observe::PerElement), Some(Source::Path { path, .. })) if !path.has_wildcard() => {
            cx.err(
                &key,
                "per_element needs a path with a wildcard ([*]) selecting the observations; for one value per poll, set observe = \"per_poll\"",
            );
            None
        }
        (Some(Observe::PerElement), Some(Source::Var(_))) => {
            cx.err(&key, "a variable is one value: set observe = \"per_poll\"");
            None
        }
        (Some(g), _) => Some(g),
        (None, Some(Source::Path { path, .. })) if path.has_wildcard() => Some(Observe::PerElement),
        (None, Some(Source::Path { .. } | Source::Var(_))) => Some(Observe::PerPoll),
        (None, Some(Source::Expr { .. })) => {
            cx.err(
                &key,
                "required with `expr`: \"per_element\" (each output observed once) or \"per_poll\" (every output, every poll)",
            );
            None
        }
        (None, None) => None,
    }
}

/// `missing`: `"fail"` (the default), `"skip"` or a number.
fn missing(o: &mut Obj<'_>, cx: &mut Cx) -> Missing {
    o.get("missing", cx, |v| match v {
        Value::String(s) if s == "fail" => Ok(Missing::Fail),
        Value::String(s) if s == "skip" => Ok(Missing::Skip),
        Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {
            Ok(Missing::Default(n.as_f64().unwrap_or_default()))
        }
        _ => Err("expected \"fail\", \"skip\" or a number (the default value)".to_owned()),
    })
    .unwrap_or(Missing::Fail)
}
