//! Tests for the exposition parser and encoder.
//!
//! Most tests go through [`check`]: parse the input, encode it, compare bytes with the
//! expected golden text, and make sure the golden text is itself a fixed point. Error
//! cases are table-driven through [`check_err`].

use super::*;

/// Holds [`parse_encoded`] (without options) to [`parse`] followed by [`encode_sample`]
/// and [`series_key`]: the same families, bytes and keys, or the same error. It may
/// leave input to the full parser only for an escape sequence in a label value, a line
/// with more than 16 labels, a repeated series, or a sample the full parser drops or
/// renames.
#[track_caller]
fn check_encoded(input: &str, limits: &ParseLimits) {
    let may_fall_back = |full: &Result<Exposition, ParseError>| {
        input.contains('\\')
            || input.lines().any(|l| l.matches('=').count() > 16)
            || matches!(full, Err(e) if e.message.starts_with("duplicate series"))
            || matches!(full, Ok(e) if !e.dropped.is_empty())
            // A histogram sample named like its family, written as a bucket.
            || matches!(full, Ok(e) if e.families.iter().any(|f| {
                f.typ == MetricType::Histogram
                    && input.lines().any(|l| l.starts_with(&format!("{}{{", f.name)))
            }))
    };
    let full = parse(input, limits);
    match (
        parse_encoded(input, limits, &EncodeOptions::default()),
        &full,
    ) {
        (Ok(Some(got)), Ok(exp)) => {
            assert_eq!(got.len(), exp.families.len(), "input:\n{input}");
            for (g, f) in got.iter().zip(&exp.families) {
                assert_eq!((&g.name, &g.help, g.typ), (&f.name, &f.help, f.typ));
                let mut body = Vec::new();
                for s in &f.samples {
                    encode_sample(&mut body, s, &[]);
                }
                assert_eq!(
                    String::from_utf8_lossy(&g.body.text()),
                    String::from_utf8_lossy(&body),
                    "input:\n{input}"
                );
                let keys: Vec<u64> = f.samples.iter().map(|s| series_key(s, &[])).collect();
                assert_eq!(g.keys, keys, "input:\n{input}");
            }
        }
        (Err(got), Err(want)) => assert_eq!(got, *want, "input:\n{input}"),
        (Ok(None), full) if may_fall_back(full) => {}
        (got, full) => panic!("parse_encoded gave {got:?}, parse gave {full:?}; input:\n{input}"),
    }
}

/// Parses `input`, encodes the result and compares it with `expected`; then checks that
/// `expected` parses back to the same exposition and encodes to itself.
#[track_caller]
fn check(input: &str, expected: &str) {
    check_encoded(input, &ParseLimits::default());
    check_encoded(expected, &ParseLimits::default());
    let exp = parse(input, &ParseLimits::default())
        .unwrap_or_else(|e| panic!("parse failed: {e}\ninput:\n{input}"));
    let got = encode(&exp);
    assert_eq!(got, expected, "input:\n{input}");
    let again = parse(&got, &ParseLimits::default())
        .unwrap_or_else(|e| panic!("re-parse of our output failed: {e}\noutput:\n{got}"));
    assert_eq!(
        again.families, exp.families,
        "re-parse of our output differs"
    );
    assert!(again.dropped.is_empty(), "our output has samples to drop");
    assert_eq!(encode(&again), got, "encoding is not a fixed point");
}

/// Parses `input` and expects exactly the error `expected` (as displayed).
#[track_caller]
fn check_err(input: &str, expected: &str) {
    check_err_with(input, &ParseLimits::default(), expected);
}

#[track_caller]
fn check_err_with(input: &str, limits: &ParseLimits, expected: &str) {
    check_encoded(input, limits);
    match parse(input, limits) {
        Ok(exp) => panic!("expected error {expected:?}, parsed:\n{}", encode(&exp)),
        Err(e) => assert_eq!(e.to_string(), expected, "input:\n{input}"),
    }
}

fn parse_ok(input: &str) -> Exposition {
    check_encoded(input, &ParseLimits::default());
    parse(input, &ParseLimits::default()).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

fn sample(name: &str, labels: &[(&str, &str)]) -> Sample {
    Sample {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        value: 1.0,
        value_text: "1".to_owned(),
        timestamp: None,
    }
}

// ---- round trips and golden bytes ----

#[test]
fn simple_untyped_sample_gets_a_type_line() {
    check("foo 1\n", "# TYPE foo untyped\nfoo 1\n");
}

#[test]
fn empty_input_and_blank_lines() {
    check("", "");
    check("\n\n  \n\t\n", "");
    check("\n\nfoo 1\n\n", "# TYPE foo untyped\nfoo 1\n");
}

#[test]
fn label_value_escapes_round_trip() {
    let input = "foo{a=\"back\\\\slash\",b=\"quo\\\"te\",c=\"new\\nline\"} 1\n";
    let exp = parse_ok(input);
    let labels = &exp.families[0].samples[0].labels;
    assert_eq!(labels[0], ("a".into(), "back\\slash".into()));
    assert_eq!(labels[1], ("b".into(), "quo\"te".into()));
    assert_eq!(labels[2], ("c".into(), "new\nline".into()));
    check(input, &format!("# TYPE foo untyped\n{input}"));
}

#[test]
fn label_values_keep_unicode_braces_and_hashes() {
    check(
        "foo{a=\"héllo wörld } # , = {\"} 1\n",
        "# TYPE foo untyped\nfoo{a=\"héllo wörld } # , = {\"} 1\n",
    );
}

#[test]
fn help_escapes_round_trip() {
    let input = "# HELP foo a \\\\ b\\nc \"quoted\" tab\there\n# TYPE foo gauge\nfoo 1\n";
    let exp = parse_ok(input);
    assert_eq!(
        exp.families[0].help.as_deref(),
        Some("a \\ b\nc \"quoted\" tab\there")
    );
    check(input, input);
}

#[test]
fn an_empty_help_is_no_help() {
    // Go's parser sets no HELP for an empty one, so a second HELP line is the first.
    check("# HELP foo\n# TYPE foo gauge\n", "# TYPE foo gauge\n");
    check("# HELP foo \n# TYPE foo gauge\n", "# TYPE foo gauge\n");
    check(
        "# HELP foo\n# HELP foo \t\n# HELP foo real\nfoo 1\n",
        "# HELP foo real\n# TYPE foo untyped\nfoo 1\n",
    );
}

#[test]
fn help_keeps_trailing_blanks_and_drops_leading_ones() {
    let exp = parse_ok("# HELP foo \t  text  \n");
    assert_eq!(exp.families[0].help.as_deref(), Some("text  "));
}

#[test]
fn special_values_are_canonical() {
    check(
        "a +Inf\nb -Inf\nc NaN\nd inf\ne -infinity\nf Infinity\ng nan\nh +INF\ni NAN\n",
        "# TYPE a untyped\na +Inf\n# TYPE b untyped\nb -Inf\n# TYPE c untyped\nc NaN\n\
         # TYPE d untyped\nd +Inf\n# TYPE e untyped\ne -Inf\n# TYPE f untyped\nf +Inf\n\
         # TYPE g untyped\ng NaN\n# TYPE h untyped\nh +Inf\n# TYPE i untyped\ni NaN\n",
    );
    let exp = parse_ok("a -Inf\nb NaN\n");
    assert_eq!(exp.families[0].samples[0].value, f64::NEG_INFINITY);
    assert!(exp.families[1].samples[0].value.is_nan());
}

#[test]
fn finite_values_keep_their_text() {
    let input = "a 123.0\nb 1e3\nc +5\nd .5\ne 5.\nf -0\ng 1.5E-7\nh 0001\ni -12.5e+2\n";
    let exp = parse_ok(input);
    let texts: Vec<_> = exp
        .families
        .iter()
        .map(|f| f.samples[0].value_text.as_str())
        .collect();
    assert_eq!(
        texts,
        ["123.0", "1e3", "+5", ".5", "5.", "-0", "1.5E-7", "0001", "-12.5e+2"]
    );
    let values: Vec<_> = exp.families.iter().map(|f| f.samples[0].value).collect();
    assert_eq!(
        values,
        [123.0, 1000.0, 5.0, 0.5, 5.0, -0.0, 1.5e-7, 1.0, -1250.0]
    );
}

#[test]
fn histogram_with_derived_names() {
    let input = "\
# HELP req_seconds Request latency.
# TYPE req_seconds histogram
req_seconds_bucket{le=\"0.1\"} 1
req_seconds_bucket{le=\"1\"} 2
req_seconds_bucket{le=\"+Inf\"} 3
req_seconds_sum 1.7
req_seconds_count 3
";
    check(input, input);
    let exp = parse_ok(input);
    assert_eq!(exp.families.len(), 1);
    assert_eq!(exp.families[0].typ, MetricType::Histogram);
    assert_eq!(exp.families[0].samples.len(), 5);
}

#[test]
fn histogram_le_accepts_any_float_spelling() {
    let input = "# TYPE h histogram\nh_bucket{le=\"1e-3\"} 0\nh_bucket{le=\"inf\"} 1\n";
    check(input, input);
}

#[test]
fn histogram_sum_and_count_with_labels() {
    let input = "\
# TYPE h histogram
h_bucket{path=\"/a\",le=\"+Inf\"} 1
h_sum{path=\"/a\"} 0.5
h_count{path=\"/a\"} 1
h_bucket{path=\"/b\",le=\"+Inf\"} 2
h_sum{path=\"/b\"} 1
h_count{path=\"/b\"} 2
";
    check(input, input);
}

#[test]
fn summary_with_derived_names() {
    let input = "\
# HELP rpc_seconds RPC latency.
# TYPE rpc_seconds summary
rpc_seconds{quantile=\"0.5\"} 0.2
rpc_seconds{quantile=\"0.99\"} NaN
rpc_seconds_sum 12
rpc_seconds_count 40
";
    check(input, input);
    assert_eq!(parse_ok(input).families.len(), 1);
}

#[test]
fn summary_without_quantiles() {
    // The Python client's Summary exports only _count and _sum.
    let input = "# TYPE s summary\ns_count 3\ns_sum 4.5\n";
    check(input, input);
}

#[test]
fn help_after_type_is_emitted_first() {
    check(
        "# TYPE foo counter\n# HELP foo Some help.\nfoo 1\n",
        "# HELP foo Some help.\n# TYPE foo counter\nfoo 1\n",
    );
}

#[test]
fn help_only_family_is_untyped() {
    check(
        "# HELP foo Only help.\nfoo 2\n",
        "# HELP foo Only help.\n# TYPE foo untyped\nfoo 2\n",
    );
}

#[test]
fn type_only_family() {
    check("# TYPE foo gauge\nfoo 2\n", "# TYPE foo gauge\nfoo 2\n");
}

#[test]
fn help_after_samples_is_fine() {
    check(
        "foo 1\n# HELP foo Late help.\n",
        "# HELP foo Late help.\n# TYPE foo untyped\nfoo 1\n",
    );
}

#[test]
fn explicit_untyped_type() {
    check("# TYPE foo untyped\nfoo 1\n", "# TYPE foo untyped\nfoo 1\n");
}

#[test]
fn empty_families_are_kept() {
    check(
        "# HELP a Nothing yet.\n# TYPE a counter\n# TYPE b histogram\n# HELP c Help only.\nd 1\n",
        "# HELP a Nothing yet.\n# TYPE a counter\n# TYPE b histogram\n\
         # HELP c Help only.\n# TYPE c untyped\n# TYPE d untyped\nd 1\n",
    );
    let exp = parse_ok("# TYPE a counter\n");
    assert!(exp.families[0].samples.is_empty());
}

#[test]
fn families_with_different_label_sets() {
    let input = "# TYPE foo gauge\nfoo 1\nfoo{a=\"1\"} 2\nfoo{b=\"1\",c=\"2\"} 3\n";
    check(input, input);
}

#[test]
fn timestamps_pass_through() {
    check(
        "foo 1 1700000000000\nbar{a=\"b\"} 2 -5\nbaz 3 +7\n",
        "# TYPE foo untyped\nfoo 1 1700000000000\n# TYPE bar untyped\nbar{a=\"b\"} 2 -5\n\
         # TYPE baz untyped\nbaz 3 7\n",
    );
    let exp = parse_ok("foo 1 -1\n");
    assert_eq!(exp.families[0].samples[0].timestamp, Some(-1));
}

#[test]
fn crlf_and_missing_final_newline() {
    check(
        "# HELP foo Help.\r\n# TYPE foo gauge\r\nfoo{a=\"b\"} 1\r\nfoo{a=\"c\"} 2",
        "# HELP foo Help.\n# TYPE foo gauge\nfoo{a=\"b\"} 1\nfoo{a=\"c\"} 2\n",
    );
    check("foo 1", "# TYPE foo untyped\nfoo 1\n");
    check("foo 1\r", "# TYPE foo untyped\nfoo 1\n");
    check("\r\n\r\nfoo 1\r\n", "# TYPE foo untyped\nfoo 1\n");
}

/// Found by the `exposition` fuzz target: a HELP text ending in a carriage return was
/// kept, written out raw, and read back without it (as part of a CRLF line ending).
#[test]
fn carriage_returns_ending_a_help_text_are_dropped() {
    check(
        "# HELP s text\r\r\r\nfoo 1\n",
        "# HELP s text\n# TYPE s untyped\n# TYPE foo untyped\nfoo 1\n",
    );
    check("# HELP s \r\r", "");
    // Inside the text a carriage return is kept: it cannot be mistaken for a line end.
    check("# HELP s a\rb\n", "# HELP s a\rb\n# TYPE s untyped\n");
}

#[test]
fn label_set_spacing_and_trailing_comma() {
    let expected = "# TYPE foo untyped\nfoo{a=\"1\",b=\"2\"} 3\n";
    check("foo{a=\"1\",b=\"2\",} 3\n", expected);
    check("foo { a = \"1\" , b = \"2\" , } 3\n", expected);
    check("foo{a=\"1\",b=\"2\"}3\n", expected);
    check("foo{} 3\n", "# TYPE foo untyped\nfoo 3\n");
    check("foo{ } 3\n", "# TYPE foo untyped\nfoo 3\n");
}

#[test]
fn empty_label_value() {
    check("foo{a=\"\"} 1\n", "# TYPE foo untyped\nfoo{a=\"\"} 1\n");
}

#[test]
fn tabs_and_leading_blanks() {
    check(
        "\t# TYPE foo gauge\n  foo{a=\"x\"}\t1\t\t123\t\n \tbar \t 2  \n",
        "# TYPE foo gauge\nfoo{a=\"x\"} 1 123\n# TYPE bar untyped\nbar 2\n",
    );
    check(
        "#\tHELP\tfoo\tTabbed help.\n#\tTYPE\tfoo\tgauge\t\nfoo 1\n",
        "# HELP foo Tabbed help.\n# TYPE foo gauge\nfoo 1\n",
    );
}

#[test]
fn comments_are_ignored() {
    check(
        "# just a comment\n#\n#HELPX foo bar\n# EOF\n# HELP\n# TYPE   \n# help foo lowercase is a comment\nfoo 1\n# trailing comment",
        "# TYPE foo untyped\nfoo 1\n",
    );
}

#[test]
fn python_prometheus_client_output() {
    // As written by prometheus_client 0.2x `generate_latest()`: `_total` counters,
    // `_created` gauges as separate families, histogram then its `_created` family.
    let input = "\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation=\"0\"} 123.0
python_gc_objects_collected_total{generation=\"1\"} 45.0
python_gc_objects_collected_total{generation=\"2\"} 0.0
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation=\"CPython\",major=\"3\",minor=\"11\",patchlevel=\"2\",version=\"3.11.2\"} 1.0
# HELP jobs_total Jobs processed
# TYPE jobs_total counter
jobs_total{queue=\"default\"} 7.0
# HELP jobs_created Jobs processed
# TYPE jobs_created gauge
jobs_created{queue=\"default\"} 1.7000000001234567e+09
# HELP job_seconds Job duration
# TYPE job_seconds histogram
job_seconds_bucket{le=\"0.005\"} 0.0
job_seconds_bucket{le=\"0.01\"} 1.0
job_seconds_bucket{le=\"+Inf\"} 2.0
job_seconds_count 2.0
job_seconds_sum 0.508
# HELP job_seconds_created Job duration
# TYPE job_seconds_created gauge
job_seconds_created 1.7000000001234567e+09
# HELP no_samples_total A counter with labels and no children yet
# TYPE no_samples_total counter
";
    check(input, input);
    let exp = parse_ok(input);
    let names: Vec<_> = exp.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "python_gc_objects_collected_total",
            "python_info",
            "jobs_total",
            "jobs_created",
            "job_seconds",
            "job_seconds_created",
            "no_samples_total"
        ]
    );
}

#[test]
fn python_prometheus_client_escapes_info_enum_and_summary() {
    // Captured from prometheus_client 0.26 with a HELP and a label value holding a
    // quote, a newline and a backslash, plus Info, Enum, Summary and -Inf / NaN gauges.
    let input = r#"# HELP jobs_total Jobs "processed"\nwith \\ backslash
# TYPE jobs_total counter
jobs_total{queue="def\"ault\n\\"} 3.0
# HELP jobs_created Jobs "processed"\nwith \\ backslash
# TYPE jobs_created gauge
jobs_created{queue="def\"ault\n\\"} 1.795643410369246e+09
# HELP temp Temperature
# TYPE temp gauge
temp NaN
# HELP sz Size
# TYPE sz summary
sz_count 1.0
sz_sum 10.0
# HELP sz_created Size
# TYPE sz_created gauge
sz_created 1.7956434103693721e+09
# HELP build_info Build info
# TYPE build_info gauge
build_info{rev="abc",version="1.2"} 1.0
# HELP state State
# TYPE state gauge
state{state="a"} 0.0
state{state="b"} 1.0
# HELP inf inf
# TYPE inf gauge
inf -Inf
"#;
    check(input, input);
    let exp = parse_ok(input);
    assert_eq!(
        exp.families[0].help.as_deref(),
        Some("Jobs \"processed\"\nwith \\ backslash")
    );
    assert_eq!(exp.families[0].samples[0].labels[0].1, "def\"ault\n\\");
}

#[test]
fn non_contiguous_samples_are_regrouped() {
    check(
        "# TYPE a gauge\n# TYPE b gauge\na{x=\"1\"} 1\nb 2\na{x=\"2\"} 3\nc 4\nb{y=\"z\"} 5\nc{q=\"1\"} 6\n",
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 3\n# TYPE b gauge\nb 2\nb{y=\"z\"} 5\n\
         # TYPE c untyped\nc 4\nc{q=\"1\"} 6\n",
    );
}

#[test]
fn interleaved_histogram_parts_are_regrouped() {
    check(
        "# TYPE h histogram\nh_sum 1\nother 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_sum 1\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n# TYPE other untyped\nother 2\n",
    );
}

#[test]
fn derived_names_of_other_types_are_their_own_families() {
    // A counter `foo` has no `_sum`, and a summary has no `_bucket`.
    check(
        "# TYPE foo counter\nfoo 1\nfoo_sum 2\n# TYPE s summary\ns_bucket 3\n",
        "# TYPE foo counter\nfoo 1\n# TYPE foo_sum untyped\nfoo_sum 2\n# TYPE s summary\n\
         # TYPE s_bucket untyped\ns_bucket 3\n",
    );
}

#[test]
fn derived_names_resolve_only_against_earlier_declarations() {
    // `h` is declared after `x_count`, so `x_count` stays its own family; `h_sum` after
    // the declaration joins `h`.
    check(
        "x_count 1\n# TYPE h histogram\nh_sum 2\n",
        "# TYPE x_count untyped\nx_count 1\n# TYPE h histogram\nh_sum 2\n",
    );
}

#[test]
fn le_and_quantile_allowed_on_other_types() {
    let input = "# TYPE g gauge\ng{le=\"abc\"} 1\n# TYPE u untyped\nu{quantile=\"x\"} 2\n";
    check(input, input);
}

#[test]
fn label_order_is_preserved() {
    check(
        "foo{z=\"1\",a=\"2\",m=\"3\"} 1\n",
        "# TYPE foo untyped\nfoo{z=\"1\",a=\"2\",m=\"3\"} 1\n",
    );
}

#[test]
fn colons_in_metric_names() {
    check(
        "# TYPE job:rate:5m gauge\njob:rate:5m 1\n:x 2\n_y 3\n",
        "# TYPE job:rate:5m gauge\njob:rate:5m 1\n# TYPE :x untyped\n:x 2\n# TYPE _y untyped\n_y 3\n",
    );
}

#[test]
fn series_limit_boundary() {
    let limits = ParseLimits {
        max_series: 3,
        ..ParseLimits::default()
    };
    assert!(parse("a 1\nb 2\n# TYPE c gauge\nc 3\n", &limits).is_ok());
    check_err_with(
        "a 1\nb 2\nc 3\nd 4\n",
        &limits,
        "line 4: too many series: more than 3",
    );
}

#[test]
fn line_limit_boundary() {
    let limits = ParseLimits {
        max_line_bytes: 5,
        ..ParseLimits::default()
    };
    assert!(parse("foo 1\nab 12\n", &limits).is_ok());
    check_err_with(
        "foo 1\nfoo 12\n",
        &limits,
        "line 2: line is 6 bytes long: expected at most 5 bytes",
    );
    let unlimited = ParseLimits {
        max_series: 0,
        max_line_bytes: 0,
    };
    let long = format!("foo{{a=\"{}\"}} 1\n", "x".repeat(100_000));
    assert!(parse(&long, &unlimited).is_ok());
}

#[test]
fn default_limits() {
    let limits = ParseLimits::default();
    assert_eq!(limits.max_series, 0);
    assert_eq!(limits.max_line_bytes, 1024 * 1024);
}

#[test]
fn reparse_equals_original_with_nan() {
    let exp = parse_ok("# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum NaN\ns_count 0\n");
    assert_eq!(parse_ok(&encode(&exp)), exp);
}

// ---- errors ----

#[test]
fn syntax_errors() {
    let cases: &[(&str, &str)] = &[
        // metric names
        ("1foo 1\n", "line 1: invalid metric name '1foo': expected [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("foo-bar 1\n", "line 1: invalid metric name 'foo-bar': expected [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("fö 1\n", "line 1: invalid metric name 'fö': expected [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("{a=\"b\"} 1\n", "line 1: missing metric name: expected [a-zA-Z_:][a-zA-Z0-9_:]*, found '{a=\"b\"} 1'"),
        // values
        ("foo\n", "line 1: missing value for foo: expected a float value, found end of line"),
        ("foo{a=\"b\"}\n", "line 1: missing value for foo: expected a float value, found end of line"),
        ("foo abc\n", "line 1: invalid value for foo: expected a float value, found 'abc'"),
        ("foo 0x1p3\n", "line 1: invalid value for foo: expected a float value, found '0x1p3'"),
        ("foo 1_000\n", "line 1: invalid value for foo: expected a float value, found '1_000'"),
        ("foo 1e\n", "line 1: invalid value for foo: expected a float value, found '1e'"),
        ("foo .\n", "line 1: invalid value for foo: expected a float value, found '.'"),
        ("foo +nan\n", "line 1: invalid value for foo: expected a float value, found '+nan'"),
        ("foo infinit\n", "line 1: invalid value for foo: expected a float value, found 'infinit'"),
        ("foo 1e400\n", "line 1: invalid value for foo: expected a float value, found '1e400' (out of range)"),
        ("foo 1,5\n", "line 1: invalid value for foo: expected a float value, found '1,5'"),
        // timestamps
        ("foo 1 1.5\n", "line 1: invalid timestamp for foo: expected an integer of milliseconds, found '1.5'"),
        ("foo 1 abc\n", "line 1: invalid timestamp for foo: expected an integer of milliseconds, found 'abc'"),
        ("foo 1 99999999999999999999\n", "line 1: invalid timestamp for foo: expected an integer of milliseconds, found '99999999999999999999'"),
        ("foo 1 2 3\n", "line 1: unexpected text after the timestamp of foo: expected end of line, found '3'"),
        ("foo 1 2 # comment\n", "line 1: unexpected text after the timestamp of foo: expected end of line, found '# comment'"),
        // label sets
        ("foo{a=\"b\" 1\n", "line 1: expected ',' or '}' after the value of label a in foo, found '1'"),
        ("foo{a=\"b\"\n", "line 1: expected ',' or '}' after the value of label a in foo, found end of line"),
        ("foo{a=\"b\",\n", "line 1: unterminated label set of foo: expected '}', found end of line"),
        ("foo{\n", "line 1: unterminated label set of foo: expected '}', found end of line"),
        ("foo{a=\"b\n", "line 1: unterminated value of label a in foo: expected a closing '\"'"),
        ("foo{a=\"b\"c=\"d\"} 1\n", "line 1: expected ',' or '}' after the value of label a in foo, found 'c=\"d\"} 1'"),
        ("foo{a=b} 1\n", "line 1: expected '\"' to open the value of label a in foo, found 'b} 1'"),
        ("foo{a} 1\n", "line 1: expected '=' after label name a in foo, found '} 1'"),
        ("foo{,} 1\n", "line 1: invalid label name in foo: expected [a-zA-Z_][a-zA-Z0-9_]*, found ',} 1'"),
        ("foo{a=\"1\",,} 1\n", "line 1: invalid label name in foo: expected [a-zA-Z_][a-zA-Z0-9_]*, found ',} 1'"),
        ("foo{1a=\"b\"} 1\n", "line 1: invalid label name in foo: expected [a-zA-Z_][a-zA-Z0-9_]*, found '1a'"),
        ("foo{a:b=\"c\"} 1\n", "line 1: expected '=' after label name a in foo, found ':b=\"c\"} 1'"),
        ("foo{__name__=\"x\"} 1\n", "line 1: reserved label name __name__ in foo: expected another name"),
        ("foo{a=\"1\",b=\"2\",a=\"3\"} 1\n", "line 1: duplicate label name a in foo: expected each label once"),
        ("foo{a=\"\\t\"} 1\n", "line 1: invalid escape sequence '\\t' in the value of label a in foo: expected \\\\, \\\" or \\n"),
        ("foo{a=\"x\\", "line 1: invalid escape sequence '\\' in the value of label a in foo: expected \\\\, \\\" or \\n"),
        // HELP and TYPE
        ("# HELP foo bad \\t escape\n", "line 1: invalid escape sequence '\\t' in HELP text for foo: expected \\\\ or \\n"),
        ("# HELP foo no quote escape \\\"\n", "line 1: invalid escape sequence '\\\"' in HELP text for foo: expected \\\\ or \\n"),
        ("# HELP foo trailing \\\n", "line 1: invalid escape sequence '\\' in HELP text for foo: expected \\\\ or \\n"),
        ("# HELP 1foo x\n", "line 1: invalid metric name '1foo' in HELP line: expected [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("# TYPE foo-bar gauge\n", "line 1: invalid metric name 'foo-bar' in TYPE line: expected [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("# TYPE foo Countr\n", "line 1: invalid type 'Countr' for family foo: expected counter, gauge, histogram, summary or untyped"),
        ("# TYPE foo gaugehistogram\n", "line 1: invalid type 'gaugehistogram' for family foo: expected counter, gauge, histogram, summary or untyped"),
        ("# TYPE foo counter gauge\n", "line 1: invalid type 'counter gauge' for family foo: expected counter, gauge, histogram, summary or untyped"),
        ("\n\n# TYPE foo gauge\n# HELP foo a\n# TYPE foo gauge\n", "line 5: second TYPE line for family foo"),
        ("# HELP foo a\n# TYPE foo gauge\n# HELP foo b\n", "line 3: second HELP line for family foo"),
        ("foo 1\n# TYPE foo gauge\n", "line 2: TYPE for foo after its samples (first on line 1): expected TYPE before the family's first sample"),
        ("# HELP foo x\nfoo 1\n# TYPE foo gauge\n", "line 3: TYPE for foo after its samples (first on line 1): expected TYPE before the family's first sample"),
        ("# TYPE h histogram\nh_count 1\n# TYPE h histogram\n", "line 3: second TYPE line for family h"),
    ];
    for &(input, expected) in cases {
        check_err(input, expected);
    }
}

#[test]
fn type_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "# TYPE h histogram\nh{le=\"x\"} 1\n",
            "line 2: invalid le label of h: expected a float value, found 'x'",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"big\"} 1\n",
            "line 2: invalid le label of h_bucket: expected a float value, found 'big'",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"\"} 1\n",
            "line 2: invalid le label of h_bucket: expected a float value, found end of line",
        ),
        (
            "# TYPE s summary\ns{quantile=\"p99\"} 1\n",
            "line 2: invalid quantile label of s: expected a float value, found 'p99'",
        ),
    ];
    for &(input, expected) in cases {
        check_err(input, expected);
    }
}

#[test]
fn reserved_name_collisions() {
    let cases: &[(&str, &str)] = &[
        (
            "# TYPE foo histogram\n# TYPE foo_count gauge\n",
            "line 2: second TYPE line for family foo (as foo_count)",
        ),
        (
            "# TYPE foo_sum gauge\nfoo_sum 1\n# TYPE foo summary\nfoo{quantile=\"0.5\"} 1\n",
            "line 3: gauge family foo_sum and summary family foo both use the sample name foo_sum: expected distinct names",
        ),
        (
            // The sample comes before the declaration, so it forms its own family.
            "foo_count 1\n# TYPE foo summary\n",
            "line 2: untyped family foo_count and summary family foo both use the sample name foo_count: expected distinct names",
        ),
        (
            "# HELP foo x\nfoo_bucket{le=\"1\"} 1\n# TYPE foo histogram\n",
            "line 3: histogram family foo and untyped family foo_bucket both use the sample name foo_bucket: expected distinct names",
        ),
        (
            // The statsd_exporter #456 case.
            "# TYPE cache_miss summary\ncache_miss_count 1\n# TYPE cache_miss_count counter\n",
            "line 3: second TYPE line for family cache_miss (as cache_miss_count)",
        ),
        (
            "# TYPE h histogram\n# HELP h_bucket x\n# HELP h y\n",
            "line 3: second HELP line for family h",
        ),
    ];
    for &(input, expected) in cases {
        check_err(input, expected);
    }
}

#[test]
fn duplicate_series() {
    let cases: &[(&str, &str)] = &[
        ("foo 1\nfoo 2\n", "line 2: duplicate series foo (first on line 1): expected each name and label set once"),
        (
            "foo{a=\"1\",b=\"2\"} 1\nbar 1\n\nfoo{b=\"2\",a=\"1\"} 2\n",
            "line 4: duplicate series foo{b=\"2\",a=\"1\"} (first on line 1): expected each name and label set once",
        ),
        (
            "foo{} 1\nfoo 2\n",
            "line 2: duplicate series foo (first on line 1): expected each name and label set once",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"1\"} 1\n",
            "line 5: duplicate series h_bucket{le=\"1\"} (first on line 2): expected each name and label set once",
        ),
        (
            "foo{a=\"x\\ny\"} 1 10\nfoo{a=\"x\\ny\"} 1 20\n",
            "line 2: duplicate series foo{a=\"x\\ny\"} (first on line 1): expected each name and label set once",
        ),
    ];
    for &(input, expected) in cases {
        check_err(input, expected);
    }
    // Different values of one label, or a label only on one side, are different series.
    assert!(parse(
        "foo{a=\"1\"} 1\nfoo{a=\"2\"} 1\nfoo 1\nfoo{a=\"\"} 1\n",
        &ParseLimits::default()
    )
    .is_ok());
}

#[test]
fn long_found_text_is_truncated() {
    let value = "x".repeat(200);
    let err = parse(&format!("foo {value}\n"), &ParseLimits::default()).unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "invalid value for foo: expected a float value, found '{}...'",
            "x".repeat(40)
        )
    );
    let err = parse(
        &format!("foo{{a=\"{}\"}} 1\nfoo{{a=\"{}\"}} 1\n", value, value),
        &ParseLimits::default(),
    )
    .unwrap_err();
    assert!(err.message.len() < 250, "{}", err.message);
    assert!(err.message.starts_with("duplicate series foo{a=\"xxx"));
}

#[test]
fn error_line_numbers_count_blank_and_comment_lines() {
    let err = parse("# c\n\r\n\n  \nfoo 1\nfoo x\n", &ParseLimits::default()).unwrap_err();
    assert_eq!(err.line, 6);
}

#[test]
fn parse_error_display_and_error_trait() {
    let err = ParseError {
        line: 7,
        message: "something wrong".to_owned(),
        kind: ParseErrorKind::Invalid,
    };
    assert_eq!(err.to_string(), "line 7: something wrong");
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert_eq!(boxed.to_string(), "line 7: something wrong");
}

// ---- encoder ----

#[test]
fn escape_functions() {
    let mut out = Vec::new();
    escape_label_value(&mut out, "a\\b\"c\nd\te");
    assert_eq!(out, b"a\\\\b\\\"c\\nd\te");
    out.clear();
    escape_help(&mut out, "a\\b\"c\nd");
    assert_eq!(out, b"a\\\\b\"c\\nd");
    out.clear();
    escape_label_value(&mut out, "plain");
    escape_help(&mut out, "");
    assert_eq!(out, b"plain");
}

#[test]
fn encode_header_variants() {
    let mut out = Vec::new();
    encode_header(
        &mut out,
        "foo",
        Some("line1\nline2 \\ \"q\""),
        MetricType::Counter,
    );
    encode_header(&mut out, "bar", None, MetricType::Untyped);
    encode_header(&mut out, "baz", Some(""), MetricType::Summary);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "# HELP foo line1\\nline2 \\\\ \"q\"\n# TYPE foo counter\n# TYPE bar untyped\n\
         # HELP baz \n# TYPE baz summary\n"
    );
}

#[test]
fn encode_sample_with_extra_labels() {
    let encode_one = |s: &Sample, extra: &[(&str, &str)]| {
        let mut out = Vec::new();
        encode_sample(&mut out, s, extra);
        String::from_utf8(out).unwrap()
    };
    let s = sample("foo", &[("b", "2"), ("app", "inner"), ("c", "q\"")]);
    assert_eq!(
        encode_one(&s, &[]),
        "foo{b=\"2\",app=\"inner\",c=\"q\\\"\"} 1\n"
    );
    // `extra` comes first and replaces the sample's own `app`.
    assert_eq!(
        encode_one(&s, &[("app", "x")]),
        "foo{app=\"x\",b=\"2\",c=\"q\\\"\"} 1\n"
    );
    assert_eq!(
        encode_one(&s, &[("app", "x\ny"), ("zone", "eu")]),
        "foo{app=\"x\\ny\",zone=\"eu\",b=\"2\",c=\"q\\\"\"} 1\n"
    );
    let bare = sample("bar", &[]);
    assert_eq!(encode_one(&bare, &[]), "bar 1\n");
    assert_eq!(encode_one(&bare, &[("app", "x")]), "bar{app=\"x\"} 1\n");
    let mut timed = sample("t", &[]);
    timed.timestamp = Some(-42);
    timed.value_text = "+Inf".to_owned();
    assert_eq!(encode_one(&timed, &[]), "t +Inf -42\n");
}

#[test]
fn encode_sample_formats_value_when_text_is_missing() {
    let mut s = sample("foo", &[]);
    s.value_text.clear();
    for (value, text) in [
        (2.0, "foo 2.0\n"),
        (0.25, "foo 0.25\n"),
        (1e300, "foo 1e300\n"),
        (f64::INFINITY, "foo +Inf\n"),
        (f64::NEG_INFINITY, "foo -Inf\n"),
        (f64::NAN, "foo NaN\n"),
    ] {
        s.value = value;
        let mut out = Vec::new();
        encode_sample(&mut out, &s, &[]);
        assert_eq!(String::from_utf8(out).unwrap(), text);
        // And the formatted text parses back to the same value.
        let back = parse_ok(text).families[0].samples[0].value;
        assert!(back == value || (back.is_nan() && value.is_nan()));
    }
}

#[test]
fn series_key_is_order_independent() {
    let a = sample("foo", &[("a", "1"), ("b", "2")]);
    let b = sample("foo", &[("b", "2"), ("a", "1")]);
    assert_eq!(series_key(&a, &[]), series_key(&b, &[]));
    // Values, timestamps and other non-identity fields do not matter.
    let mut c = b.clone();
    c.value = 99.0;
    c.timestamp = Some(5);
    assert_eq!(series_key(&a, &[]), series_key(&c, &[]));
}

#[test]
fn series_key_distinguishes_series() {
    let keys = [
        series_key(&sample("foo", &[]), &[]),
        series_key(&sample("bar", &[]), &[]),
        series_key(&sample("foo", &[("a", "1")]), &[]),
        series_key(&sample("foo", &[("a", "2")]), &[]),
        series_key(&sample("foo", &[("b", "1")]), &[]),
        series_key(&sample("foo", &[("a", "")]), &[]),
        // Boundaries between name, label names and values must not shift.
        series_key(&sample("foo", &[("a", "1b")]), &[]),
        series_key(&sample("foo", &[("a", "1"), ("b", "")]), &[]),
        series_key(&sample("fooa", &[]), &[]),
    ];
    for i in 0..keys.len() {
        for j in i + 1..keys.len() {
            assert_ne!(keys[i], keys[j], "keys {i} and {j} collide");
        }
    }
}

#[test]
fn series_key_applies_extra_labels_like_encode_sample() {
    let s = sample("foo", &[("app", "inner"), ("b", "2")]);
    let replaced = sample("foo", &[("b", "2"), ("app", "x")]);
    assert_eq!(series_key(&s, &[("app", "x")]), series_key(&replaced, &[]));
    assert_ne!(series_key(&s, &[("app", "x")]), series_key(&s, &[]));
    let added = sample("foo", &[("app", "inner"), ("b", "2"), ("zone", "eu")]);
    assert_eq!(series_key(&s, &[("zone", "eu")]), series_key(&added, &[]));
}

#[test]
fn parser_hash_matches_series_key() {
    // The parser's allocation-free hash must agree with the public key, for sorted and
    // unsorted label sets alike.
    for labels in [
        &[][..],
        &[("a", "1"), ("b", "2")],
        &[("z", "1"), ("a", "2"), ("m", "")],
    ] {
        let s = sample("foo", labels);
        let parsed =
            super::encode::series_hash(&mut Vec::new(), &mut Vec::new(), &s.name, &s.labels);
        assert_eq!(parsed, series_key(&s, &[]));
    }
}

#[test]
fn encode_whole_exposition() {
    let exp = Exposition {
        dropped: Default::default(),
        families: vec![
            Family {
                name: "up".to_owned(),
                help: Some("Whether it is up.".to_owned()),
                typ: MetricType::Gauge,
                samples: vec![sample("up", &[("job", "a")]), sample("up", &[("job", "b")])],
            },
            Family {
                name: "empty".to_owned(),
                help: None,
                typ: MetricType::Counter,
                samples: vec![],
            },
        ],
    };
    assert_eq!(
        encode(&exp),
        "# HELP up Whether it is up.\n# TYPE up gauge\nup{job=\"a\"} 1\nup{job=\"b\"} 1\n\
         # TYPE empty counter\n"
    );
    assert_eq!(encode(&Exposition::default()), "");
}

// ---- small helpers ----

#[test]
fn metric_type_strings_and_reserved_names() {
    let all = [
        (MetricType::Counter, "counter"),
        (MetricType::Gauge, "gauge"),
        (MetricType::Histogram, "histogram"),
        (MetricType::Summary, "summary"),
        (MetricType::Untyped, "untyped"),
    ];
    for (typ, text) in all {
        assert_eq!(typ.as_str(), text);
        assert_eq!(typ.to_string(), text);
    }
    assert_eq!(
        MetricType::Histogram.reserved_names("foo"),
        ["foo_bucket", "foo_sum", "foo_count"]
    );
    assert_eq!(
        MetricType::Summary.reserved_names("foo"),
        ["foo", "foo_sum", "foo_count"]
    );
    assert_eq!(
        MetricType::Counter.reserved_names("foo_total"),
        ["foo_total"]
    );
    assert_eq!(MetricType::Gauge.reserved_names("foo"), ["foo"]);
    assert_eq!(MetricType::Untyped.reserved_names("foo"), ["foo"]);
}

#[test]
fn name_validity() {
    for ok in ["a", "_", ":", "a:b_c9", "A_Z", "__name__", "job:rate5m"] {
        assert!(is_valid_metric_name(ok), "{ok}");
    }
    for bad in ["", "1a", "a-b", "a b", "é", "a.b", "a{"] {
        assert!(!is_valid_metric_name(bad), "{bad}");
    }
    for ok in ["a", "_", "a_b9", "A", "__reserved"] {
        assert!(is_valid_label_name(ok), "{ok}");
    }
    for bad in ["", "1a", "a:b", ":", "a-b", "é", "a b"] {
        assert!(!is_valid_label_name(bad), "{bad}");
    }
}

#[test]
fn format_value_round_trips() {
    for v in [
        0.0,
        -0.0,
        1.0,
        -2.5,
        0.1,
        1e-300,
        1e300,
        f64::MAX,
        f64::MIN_POSITIVE,
    ] {
        let text = format_value(v);
        assert_eq!(
            text.parse::<f64>().unwrap().to_bits(),
            v.to_bits(),
            "{text}"
        );
    }
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(f64::NAN), "NaN");
}

#[test]
fn go_float_format() {
    for (v, want) in [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1e21, "1e+21"),
        (123456789012345678901234.0, "1.2345678901234569e+23"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(crate::exposition::format_go_float(v), want, "{v}");
    }
}

#[test]
fn the_go_float_shortcut_never_disagrees_with_format_go_float() {
    // `is_go_float` lets the encoding path skip formatting a bound; it must
    // only say yes where `format_go_float` would write the same text.
    let mut texts: Vec<String> = ["+Inf", "-Inf", "NaN", "inf", "+inf", "nan", "1e5", "1E5"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let ints = [
        "0", "1", "12", "100", "999999", "123456", "1234567", "01", "00",
    ];
    let fracs = [
        None,
        Some("5"),
        Some("50"),
        Some("0"),
        Some("0001"),
        Some("00001"),
        Some("000123"),
        Some("123456789012345"),
        Some("1234567890123456"),
        Some("99999999999999"),
        Some(""),
    ];
    for sign in ["", "-", "+"] {
        for int in ints {
            for frac in fracs {
                texts.push(match frac {
                    Some(f) => format!("{sign}{int}.{f}"),
                    None => format!("{sign}{int}"),
                });
            }
        }
    }
    let mut yes = 0;
    for t in &texts {
        let Ok(v) = t.parse::<f64>() else { continue };
        if parse::is_go_float(t) {
            yes += 1;
            assert_eq!(format_go_float(v), *t, "the shortcut accepted {t:?}");
        }
    }
    assert!(yes > 40, "only {yes} texts took the shortcut");
    // Go's own spelling of common bounds takes the shortcut.
    for v in [
        0.005, 0.01, 0.25, 1.0, 2.5, 10.0, 100.0, 0.0001, 999_999.0, -3.0,
    ] {
        let go = format_go_float(v);
        assert!(parse::is_go_float(&go), "{go} does not take the shortcut");
    }
}

// ---- what Go's expfmt parser accepts beyond the strict format ----

#[test]
fn label_names_starting_with_two_underscores_are_kept() {
    // Go's parser reserves only `__name__`.
    check(
        "foo{__meta=\"1\",__x__=\"2\"} 3\n",
        "# TYPE foo untyped\nfoo{__meta=\"1\",__x__=\"2\"} 3\n",
    );
}

#[test]
fn type_keywords_in_any_case_and_a_missing_type() {
    check("# TYPE a Counter\na 1\n", "# TYPE a counter\na 1\n");
    check("# TYPE a COUNTER\na 1\n", "# TYPE a counter\na 1\n");
    check("# TYPE a GaUgE \na 1\n", "# TYPE a gauge\na 1\n");
    check(
        "# TYPE h HISTOGRAM\nh_count 1\n",
        "# TYPE h histogram\nh_count 1\n",
    );
    // A TYPE line without a type sets none: the family stays untyped, and may get
    // its type from a later TYPE line.
    check("# TYPE a\na 1\n", "# TYPE a untyped\na 1\n");
    check("# TYPE a \n# TYPE a gauge\na 1\n", "# TYPE a gauge\na 1\n");
}

#[test]
fn help_for_a_derived_name_is_the_family_help() {
    check(
        "# TYPE h histogram\n# HELP h_bucket Latency.\nh_count 1\n",
        "# HELP h Latency.\n# TYPE h histogram\nh_count 1\n",
    );
    check(
        "# TYPE s summary\n# HELP s_sum Sizes.\ns_sum 1\n",
        "# HELP s Sizes.\n# TYPE s summary\ns_sum 1\n",
    );
    // Not a derived name of a summary: a family of its own.
    check(
        "# TYPE s summary\n# HELP s_bucket B.\n",
        "# TYPE s summary\n# HELP s_bucket B.\n# TYPE s_bucket untyped\n",
    );
}

#[track_caller]
fn check_dropped(input: &str, expected: &str, reason: DropReason, n: u64) {
    check(input, expected);
    let exp = parse(input, &ParseLimits::default()).unwrap();
    assert_eq!(exp.dropped.get(&reason), Some(&n), "input:\n{input}");
    assert_eq!(exp.dropped.len(), 1, "input:\n{input}");
    // The encoding path leaves such input to the full parser.
    assert_eq!(
        parse_encoded(input, &ParseLimits::default(), &EncodeOptions::default()),
        Ok(None)
    );
}

#[test]
fn histogram_and_summary_samples_go_drops_are_dropped_and_counted() {
    check_dropped(
        "# TYPE h histogram\nh_bucket 1\nh_bucket{a=\"1\"} 2\nh_count 3\n",
        "# TYPE h histogram\nh_count 3\n",
        DropReason::BucketWithoutLe,
        2,
    );
    check_dropped(
        "# TYPE h histogram\nh{a=\"1\"} 1\nh_sum 2\n",
        "# TYPE h histogram\nh_sum 2\n",
        DropReason::BucketWithoutLe,
        1,
    );
    check_dropped(
        "# TYPE s summary\ns 1\ns{quantile=\"0.5\"} 2\ns_count 3\n",
        "# TYPE s summary\ns{quantile=\"0.5\"} 2\ns_count 3\n",
        DropReason::QuantileWithoutQuantile,
        1,
    );
}

#[test]
fn a_histogram_sample_named_like_its_family_with_le_is_a_bucket() {
    // Go's parser reads it as a bucket; we write it as one.
    check(
        "# TYPE h histogram\nh{le=\"1\"} 1\nh{le=\"+Inf\"} 2\nh_count 2\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
    );
    assert_eq!(
        parse_encoded(
            "# TYPE h histogram\nh{le=\"1\"} 1\n",
            &ParseLimits::default(),
            &EncodeOptions::default()
        ),
        Ok(None)
    );
}

#[test]
fn a_line_of_100_000_labels_is_checked_for_duplicates_in_linear_time() {
    // Comparing each label name with every earlier one would be 5e9
    // comparisons here; past 16 labels the parser uses a hash set.
    let mut line = String::from("wide{");
    for i in 0..100_000 {
        line.push_str(&format!("l{i}=\"\","));
    }
    let limits = ParseLimits {
        max_series: 0,
        max_line_bytes: 0,
    };
    let exp = parse(&format!("{line}}} 1\n"), &limits).unwrap();
    assert_eq!(exp.families[0].samples[0].labels.len(), 100_000);
    let e = parse(&format!("{line}l99999=\"x\"}} 1\n"), &limits).unwrap_err();
    assert!(e.to_string().contains("duplicate label name l99999"), "{e}");
    // The 17th label, the first checked through the set.
    let e = parse(
        &format!("{}l0=\"\"}} 1\n", &line[..line.find("l16=").unwrap()]),
        &limits,
    )
    .unwrap_err();
    assert!(e.to_string().contains("duplicate label name l0"), "{e}");
}
