//! Preparing a push: parsing, validation and encoding, outside any lock.
//! The one-pass encoder (`exposition::parse_encoded`) is the usual path;
//! the full parser handles what it leaves, and is the reference the tests
//! hold it to.

use super::*;

impl Store {
    /// Parses, validates and encodes a push for `app`. Pure CPU work, no lock.
    pub fn prepare(&self, app: &str, text: &str) -> Result<Prepared, PushError> {
        self.prepare_with(app, text, &PrepareOptions::default())
    }

    /// [`Store::prepare`] with the options of a push or a polled body:
    /// OpenMetrics conversion and labels set on every series.
    pub fn prepare_with(
        &self,
        app: &str,
        text: &str,
        opts: &PrepareOptions<'_>,
    ) -> Result<Prepared, PushError> {
        self.prepare_inner(app, text, opts, true)
    }

    /// [`Store::prepare_with`] without the encoding parser: everything goes
    /// through [`exposition::parse`] and is encoded afterwards. The two must
    /// agree; this is the reference the tests and the fuzzer hold the fast
    /// path to.
    #[doc(hidden)]
    pub fn prepare_reference(
        &self,
        app: &str,
        text: &str,
        opts: &PrepareOptions<'_>,
    ) -> Result<Prepared, PushError> {
        self.prepare_inner(app, text, opts, false)
    }

    fn prepare_inner(
        &self,
        app: &str,
        text: &str,
        opts: &PrepareOptions<'_>,
        fast: bool,
    ) -> Result<Prepared, PushError> {
        validate_app_name(app)?;
        let converted;
        let text = if opts.openmetrics {
            converted = exposition::openmetrics_to_text(text).map_err(|e| {
                PushError::new(RejectReason::ParseError, app, format!("openmetrics {e}"))
            })?;
            converted.as_str()
        } else {
            text
        };
        if text.starts_with('\u{feff}') {
            return Err(PushError::new(
                RejectReason::ParseError,
                app,
                "line 1: unexpected byte order mark; send plain UTF-8",
            ));
        }
        let limits = ParseLimits {
            max_series: self.options.max_series_per_app,
            ..ParseLimits::default()
        };
        let parse_error = |e: exposition::ParseError| {
            let reason = match e.kind {
                exposition::ParseErrorKind::TooManySeries => RejectReason::TooManySeries,
                exposition::ParseErrorKind::Invalid => RejectReason::ParseError,
            };
            PushError::new(reason, app, e.to_string())
        };
        let extra = self.extra_labels(app, opts);
        let extra = extra.as_slice();

        // The push path: one pass from text to encoded blocks. Target labels
        // (which rename clashing sample labels) and the rare input it leaves
        // to the full parser take the way below.
        if fast && opts.labels.is_empty() {
            let encode = exposition::EncodeOptions {
                extra,
                default: opts.default,
                go_float_bounds: true,
            };
            let result = match exposition::parse_encoded(text, &limits, &encode) {
                Ok(Some(families)) => Some(
                    families
                        .iter()
                        .try_for_each(|f| check_prefix(app, &f.name))
                        .map(|()| finish_prepare(app, families, self.packs())),
                ),
                Ok(None) => None,
                Err(e) => Some(Err(parse_error(e))),
            };
            if let Some(result) = result {
                // Under test, every push is also prepared the reference way,
                // so all store tests hold the two paths to the same result.
                #[cfg(test)]
                assert_eq!(
                    result,
                    self.prepare_inner(app, text, opts, false),
                    "the encoding path and the reference differ on app {app:?}, text:\n{text}"
                );
                return result;
            }
        }

        let mut exp = exposition::parse(text, &limits).map_err(parse_error)?;
        if fast {
            for (reason, n) in &exp.dropped {
                tracing::warn!(
                    app,
                    reason = reason.as_str(),
                    n,
                    "samples dropped from a push"
                );
                self.metrics.count_dropped(reason.as_str(), *n);
            }
        }
        let normalised = normalise_bounds(&mut exp);
        if !opts.default.is_empty() {
            for s in exp.families.iter_mut().flat_map(|f| f.samples.iter_mut()) {
                for (k, v) in opts.default {
                    if !s.labels.iter().any(|(n, _)| n == k) {
                        s.labels.push(((*k).to_owned(), (*v).to_owned()));
                    }
                }
            }
        }
        if !opts.labels.is_empty() {
            rename_clashing_labels(app, &mut exp, opts.labels)?;
        }
        let mut series = 0;
        let mut families = Vec::with_capacity(exp.families.len());
        for fam in exp.families {
            check_prefix(app, &fam.name)?;
            let block = encode_block(fam.name, fam.typ, fam.help, &fam.samples, extra);
            series += block.keys.len();
            families.push(block);
        }
        if normalised || !extra.is_empty() || !opts.default.is_empty() {
            // The parser saw unique series; rewriting bounds or setting
            // labels can make two equal (`le="1"` and `le="1.0"`).
            check_unique(app, &families, series, normalised, extra, opts.default)?;
        }
        Ok(finish_prepare(app, families, self.packs()))
    }

    /// The labels set on every series of a push: the app label, then the
    /// push's own, then the target's (first of a name wins).
    fn extra_labels<'a>(
        &'a self,
        app: &'a str,
        opts: &'a PrepareOptions<'a>,
    ) -> Vec<(&'a str, &'a str)> {
        let mut extra: Vec<(&str, &str)> =
            Vec::with_capacity(1 + opts.set.len() + opts.labels.len());
        if let Some(l) = self.options.app_label.as_deref() {
            extra.push((l, app));
        }
        for (k, v) in opts.set.iter().copied() {
            if !extra.iter().any(|(n, _)| *n == k) {
                extra.push((k, v));
            }
        }
        for (k, v) in opts.labels {
            if !extra.iter().any(|(n, _)| n == k) {
                extra.push((k.as_str(), v.as_str()));
            }
        }
        extra
    }
}

/// After bounds were rewritten or labels set, every series must still be
/// unique; the error says which rewrite made two equal.
pub(super) fn check_unique(
    app: &str,
    families: &[FamilyBlock],
    series: usize,
    normalised: bool,
    extra: &[(&str, &str)],
    default: &[(&str, &str)],
) -> Result<(), PushError> {
    let mut seen = std::collections::HashSet::with_capacity(series);
    for b in families {
        for (i, k) in b.keys.iter().enumerate() {
            if !seen.insert(*k) {
                let labels = if extra.is_empty() { default } else { extra };
                let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
                let series = nth_series(&b.body.text(), i);
                let bounds = "le and quantile values are written as Go floats \
                              (le=\"1.0\" is le=\"1\")";
                let message = match (normalised, names.is_empty()) {
                    (false, false) => format!(
                        "series {series} appears twice once the label(s) {} are set: the push has series that differ only in them",
                        names.join(", ")
                    ),
                    (true, true) | (false, true) => format!(
                        "series {series} appears twice once {bounds}: \
                         expected each bucket bound and quantile once"
                    ),
                    (true, false) => format!(
                        "series {series} appears twice once {bounds} and the label(s) {} \
                         are set: expected each series once",
                        names.join(", ")
                    ),
                };
                return Err(PushError::new(RejectReason::Conflict, app, message));
            }
        }
    }
    Ok(())
}

/// Renames sample labels that clash with `labels` to `exported_<name>`.
pub(super) fn rename_clashing_labels(
    app: &str,
    exp: &mut exposition::Exposition,
    labels: &[(String, String)],
) -> Result<(), PushError> {
    for fam in &mut exp.families {
        for s in &mut fam.samples {
            for i in 0..s.labels.len() {
                if !labels.iter().any(|(k, _)| *k == s.labels[i].0) {
                    continue;
                }
                let renamed = format!("exported_{}", s.labels[i].0);
                if s.labels.iter().any(|(k, _)| *k == renamed) {
                    return Err(PushError::new(
                        RejectReason::ParseError,
                        app,
                        format!(
                            "sample {} has labels {} and {renamed}: the target label {} cannot be added",
                            s.name, s.labels[i].0, s.labels[i].0
                        ),
                    ));
                }
                s.labels[i].0 = renamed;
            }
        }
    }
    Ok(())
}

/// Refuses families under the prefix of the proxy's own metrics.
pub(super) fn check_prefix(app: &str, family: &str) -> Result<(), PushError> {
    if family.starts_with(crate::telemetry::PREFIX) {
        return Err(PushError::new(
            RejectReason::Conflict,
            app,
            format!(
                "family {family} uses the prefix {} reserved for the proxy's own metrics",
                crate::telemetry::PREFIX
            ),
        ));
    }
    Ok(())
}

/// The prepared push of `families` (checked, in order of first appearance),
/// their text packed if `pack` (see [`Store::packs`]).
pub(super) fn finish_prepare(app: &str, mut families: Vec<FamilyBlock>, pack: bool) -> Prepared {
    let series = families.iter().map(|f| f.keys.len()).sum();
    families.sort_by(|a, b| a.name.cmp(&b.name));
    if pack {
        // Each block packed on its own (a render shares blocks, not
        // pushes); the push's one plain buffer goes with the last slice.
        for f in &mut families {
            f.body = f.body.packed();
        }
    }
    Prepared {
        app: app.to_owned(),
        families: families.into_iter().map(Arc::new).collect(),
        series,
        ttl: None,
        pushed_at: None,
    }
}

/// Rewrites `le` of histogram buckets and `quantile` of summaries in Go's
/// float format (`le="1.0"` → `le="1"`), as the Pushgateway and Prometheus
/// do, so that clients in different languages produce the same series.
/// Returns whether any value changed.
pub(super) fn normalise_bounds(exp: &mut exposition::Exposition) -> bool {
    let mut changed = false;
    for fam in &mut exp.families {
        let (label, suffix) = match fam.typ {
            MetricType::Histogram => ("le", "_bucket"),
            MetricType::Summary => ("quantile", ""),
            _ => continue,
        };
        let sample_name = format!("{}{suffix}", fam.name);
        for s in fam.samples.iter_mut().filter(|s| s.name == sample_name) {
            for (k, v) in s.labels.iter_mut().filter(|(k, _)| k == label) {
                debug_assert_eq!(k, label);
                if let Ok(f) = v.parse::<f64>() {
                    let go = exposition::format_go_float(f);
                    if *v != go {
                        *v = go;
                        changed = true;
                    }
                }
            }
        }
    }
    changed
}

pub(super) fn encode_block(
    name: String,
    typ: MetricType,
    help: Option<String>,
    samples: &[exposition::Sample],
    extra: &[(&str, &str)],
) -> FamilyBlock {
    let mut body = Vec::with_capacity(samples.len() * 64);
    let mut keys = Vec::with_capacity(samples.len());
    for s in samples {
        exposition::encode_sample(&mut body, s, extra);
        keys.push(exposition::series_key(s, extra));
    }
    // Blocks live as long as the app's set: keep them at their exact size
    // (a guessed capacity left up to half of each unused).
    body.shrink_to_fit();
    FamilyBlock {
        name,
        typ,
        help,
        body: Bytes::from(body).into(),
        digest: exposition::key_digest(&keys),
        keys,
        rich: None,
        alt: exposition::AltEncodings::default(),
    }
}

/// The series (name and labels) on line `i` of an encoded block.
pub(super) fn nth_series(body: &[u8], i: usize) -> String {
    let line = body
        .split(|b| *b == b'\n')
        .nth(i)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    match line.rsplit_once(' ') {
        Some((series, _)) => series.to_owned(),
        None => line,
    }
}
