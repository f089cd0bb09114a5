//! One test per rule of the OpenMetrics 1.0 specification: valid bodies are
//! converted with their values (and the 0.0.4 result is itself valid), invalid
//! ones are refused with the line and the reason.

use super::*;
use crate::exposition::{parse, ParseLimits};

/// Converts `input` and compares with the 0.0.4 text `expected`, which must
/// parse as a push does.
#[track_caller]
fn check(input: &str, expected: &str) {
    assert!(looks_like_openmetrics(input), "not detected: {input:?}");
    let got = openmetrics_to_text(input).unwrap_or_else(|e| panic!("refused: {e}\n{input}"));
    assert_eq!(got, expected, "input:\n{input}");
    parse(&got, &ParseLimits::default())
        .unwrap_or_else(|e| panic!("the 0.0.4 output is invalid: {e}\n{got}"));
}

/// Expects `input` refused on `line` with a message containing `why`.
#[track_caller]
fn refused(input: &str, line: usize, why: &str) {
    match openmetrics_to_text(input) {
        Ok(out) => panic!("accepted:\n{input}\nas:\n{out}"),
        Err(e) => {
            assert!(e.message.contains(why), "{input:?}: {e}");
            assert_eq!(e.line, line, "{input:?}: {e}");
        }
    }
}

// ---- structure ----

#[test]
fn eof_ends_the_body_with_at_most_a_newline_after_it() {
    check("a 1\n# EOF\n", "# TYPE a untyped\na 1\n");
    check("a 1\n# EOF", "# TYPE a untyped\na 1\n");
    check("# EOF\n", "");
    refused("a 1\n", 1, "missing # EOF");
    refused("", 1, "missing # EOF");
    refused("a 1\n# EOF\nb 1\n", 3, "text after # EOF");
    refused("a 1\n# EOF\n\n", 3, "text after # EOF");
    refused("a 1\n# EOFx", 2, "missing # EOF");
    refused("# EOF\na 1\n# EOF\n", 2, "text after # EOF");
}

#[test]
fn blank_lines_other_comments_and_indented_lines_are_refused() {
    refused("a 1\n\n# EOF\n", 2, "blank line");
    refused("# a comment\n# EOF\n", 1, "invalid comment \"a\"");
    refused("#HELP a x\n# EOF\n", 1, "invalid comment");
    refused(" # HELP a x\n# EOF\n", 1, "invalid metric name");
    refused(" a 1\n# EOF\n", 1, "invalid metric name");
    refused("a 1\r\n# EOF\n", 1, "invalid value");
}

#[test]
fn metadata_lines_have_one_space_between_parts_and_a_value() {
    check(
        "# TYPE a gauge\n# UNIT a \n# HELP a \na 1\n# EOF\n",
        "# TYPE a gauge\na 1\n",
    );
    refused("# HELP a\n# EOF\n", 1, "without a value");
    refused("# HELP\n# EOF\n", 1, "without a value");
    refused("# HELP a\tx\n# EOF\n", 1, "without a value");
    refused("# TYPE a\n# EOF\n", 1, "without a value");
    refused("# TYPE a gauge \n# EOF\n", 1, "invalid type \"gauge \"");
    refused("# TYPE a Gauge\n# EOF\n", 1, "invalid type");
    // `untyped` is 0.0.4's word, not OpenMetrics'.
    refused("# TYPE a untyped\n# EOF\n", 1, "invalid type \"untyped\"");
    refused("# TYPE 1a gauge\n# EOF\n", 1, "invalid metric name");
}

#[test]
fn each_metadata_line_once_and_before_the_samples() {
    refused(
        "# TYPE a gauge\n# TYPE a gauge\n# EOF\n",
        2,
        "second # TYPE",
    );
    refused("# HELP a \n# HELP a \n# EOF\n", 2, "second # HELP");
    refused("# UNIT a_s s\n# UNIT a_s s\n# EOF\n", 2, "second # UNIT");
    refused(
        "# TYPE a gauge\na 1\n# HELP a x\n# EOF\n",
        3,
        "after its samples",
    );
    refused(
        "# HELP a x\na 1\n# TYPE a gauge\n# EOF\n",
        3,
        "after its samples",
    );
    refused(
        "# TYPE a_s gauge\na_s 1\n# UNIT a_s s\n# EOF\n",
        3,
        "after its samples",
    );
}

#[test]
fn families_are_not_interleaved() {
    refused("a 1\nb 1\na{x=\"1\"} 1\n# EOF\n", 3, "after other families");
    refused(
        "# TYPE a gauge\nb 1\n# TYPE a gauge\n# EOF\n",
        3,
        "second time",
    );
    refused(
        "# TYPE a summary\nq{quantile=\"0\"} 0\na_sum 0\n# EOF\n",
        3,
        "after other families",
    );
}

#[test]
fn sample_names_of_two_families_may_not_clash() {
    refused(
        "# TYPE a_created gauge\n# TYPE a counter\n# EOF\n",
        2,
        "both use the name a_created",
    );
    refused(
        "# TYPE a info\n# TYPE a counter\n# EOF\n",
        2,
        "second # TYPE",
    );
}

#[test]
fn sample_names_fit_the_type() {
    refused(
        "# TYPE a counter\na 1\n# EOF\n",
        2,
        "expected a_total or a_created",
    );
    refused("# TYPE a info\na 1\n# EOF\n", 2, "expected a_info");
}

// ---- lines ----

#[test]
fn label_sets_follow_the_abnf() {
    check(
        "a{} 1\nb{x=\"1\",y=\"\"} 2\n# EOF\n",
        "# TYPE a untyped\na 1\n# TYPE b untyped\nb{x=\"1\",y=\"\"} 2\n",
    );
    check(
        "a{x=\"} # {\",y=\"b{c}d\"} 1\n# EOF\n",
        "# TYPE a untyped\na{x=\"} # {\",y=\"b{c}d\"} 1\n",
    );
    refused("a{x=\"1\",} 1\n# EOF\n", 1, "expected ','");
    refused("a{x=\"1\",,y=\"2\"} 1\n# EOF\n", 1, "invalid label name");
    refused("a{x=\"1\"y=\"2\"} 1\n# EOF\n", 1, "expected ','");
    refused("a{x = \"1\"} 1\n# EOF\n", 1, "expected =\"");
    refused("a{x} 1\n# EOF\n", 1, "expected =\"");
    refused("a{x=1} 1\n# EOF\n", 1, "expected =\"");
    refused("a{x='1'} 1\n# EOF\n", 1, "expected =\"");
    refused("a{x=\"1} 1\n# EOF\n", 1, "unterminated");
    refused("a{1x=\"1\"} 1\n# EOF\n", 1, "invalid label name");
    refused("a{x=\"1\",x=\"2\"} 1\n# EOF\n", 1, "duplicate label name x");
    refused("a{x=\"1\"}1\n# EOF\n", 1, "expected one space");
}

#[test]
fn escapes_in_label_values_and_help() {
    // `\\`, `\"` and `\n` are escapes; another backslash stays as written.
    check(
        "# HELP a q\\\"uo\\\\te\\nnl \\t \\z\na{x=\"q\\\"\\\\\\n\",y=\"\\z\\d\"} 1\n# EOF\n",
        "# HELP a q\"uo\\\\te\\nnl \\\\t \\\\z\n# TYPE a untyped\na{x=\"q\\\"\\\\\\n\",y=\"\\\\z\\\\d\"} 1\n",
    );
    let exp = parse(
        &openmetrics_to_text("a{y=\"\\z\"} 1\n# EOF\n").unwrap(),
        &ParseLimits::default(),
    )
    .unwrap();
    assert_eq!(exp.families[0].samples[0].labels[0].1, "\\z");
    // A NUL is a valid character.
    check(
        "# HELP a x\0y\n# EOF\n",
        "# HELP a x\0y\n# TYPE a untyped\n",
    );
}

#[test]
fn values_are_decimal_numbers_inf_or_nan() {
    check(
        "a 0001\nb 1.5e3\nc -.5\nd +Inf\ne -inf\nf NaN\ng 1E3\nh 18446744073709551616\n# EOF\n",
        "# TYPE a untyped\na 0001\n# TYPE b untyped\nb 1.5e3\n# TYPE c untyped\nc -.5\n# TYPE d untyped\nd +Inf\n# TYPE e untyped\ne -Inf\n# TYPE f untyped\nf NaN\n# TYPE g untyped\ng 1E3\n# TYPE h untyped\nh 18446744073709551616\n",
    );
    for v in [
        "0x1", "0X1", "0b1", "0o1", "1_000", "0x1p-3", "1e", ".", "one", "1e999", "+NaN",
    ] {
        refused(&format!("a {v}\n# EOF\n"), 1, "invalid value");
    }
    refused("a  1\n# EOF\n", 1, "missing value");
    refused("a 1 \n# EOF\n", 1, "unexpected \"\"");
    refused("a 1\t\n# EOF\n", 1, "invalid value");
    refused("a\n# EOF\n", 1, "invalid metric name");
    refused("a \n# EOF\n", 1, "missing value");
}

#[test]
fn timestamps_are_seconds_and_become_milliseconds() {
    check(
        "a{x=\"1\"} 1 000\na{x=\"2\"} 1 1.5\na{x=\"3\"} 1 -2\na{x=\"4\"} 1 1.7e9\na{x=\"5\"} 1 0.0004\n# EOF\n",
        "# TYPE a untyped\na{x=\"1\"} 1 0\na{x=\"2\"} 1 1500\na{x=\"3\"} 1 -2000\na{x=\"4\"} 1 1700000000000\na{x=\"5\"} 1 0\n",
    );
    // Beyond 0.0.4's 64-bit milliseconds: the value is kept, the timestamp left out.
    check("a 1 1e300\n# EOF\n", "# TYPE a untyped\na 1\n");
    for ts in ["z", "1z", "1_2", "1.1.1", "NaN", "Inf", "-Inf", "0x1p-3"] {
        refused(&format!("a 1 {ts}\n# EOF\n"), 1, "invalid timestamp");
    }
}

#[test]
fn a_series_repeats_only_with_non_decreasing_timestamps_and_keeps_its_last_point() {
    check(
        "# TYPE a gauge\na{x=\"1\"} 1 1\na{x=\"1\"} 2 1\na{x=\"1\"} 3 2.5\na{x=\"2\"} 4 0\n# EOF\n",
        "# TYPE a gauge\na{x=\"1\"} 3 2500\na{x=\"2\"} 4 0\n",
    );
    refused("a 1 2\na 1 1\n# EOF\n", 2, "goes back in time");
    refused("a 1 -1\na 1 -1.1\n# EOF\n", 2, "goes back in time");
    refused("a 1\na 1 1\n# EOF\n", 2, "given twice");
    refused("a 1 1\na 1\n# EOF\n", 2, "given twice");
    refused("a 1\na 2\n# EOF\n", 2, "given twice");
}

#[test]
fn exemplars_only_on_counter_totals_and_buckets_and_well_formed() {
    check(
        "# TYPE c counter\nc_total 1 # {id=\"a # b\"} 0.5\nc_total{x=\"1\"} 2 7 # {} 1 123.4\n# EOF\n",
        "# TYPE c_total counter\nc_total 1\nc_total{x=\"1\"} 2 7000\n",
    );
    check(
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1 # {id=\"x\"} 4\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n",
    );
    let at = |ex: &str| format!("# TYPE c counter\nc_total 1 {ex}\n# EOF\n");
    refused(&at("#"), 2, "unexpected");
    refused(&at("#{} 1"), 2, "unexpected");
    refused(&at("# {}1"), 2, "expected a space and a value");
    refused(&at("# {} 1 "), 2, "invalid timestamp \"\"");
    refused(&at("# {} 1 1 "), 2, "invalid timestamp");
    refused(&at("# {} 0x1p-3"), 2, "invalid value");
    refused(&at("# {} 1 NaN"), 2, "invalid timestamp");
    refused(&at("# {} 1 Inf"), 2, "invalid timestamp");
    refused(&at("# id=\"a\"} 1"), 2, "expected '{'");
    refused(
        "# TYPE c counter\nc_total 1 1 id=\" # \"} 1\n# EOF\n",
        2,
        "unexpected",
    );
    refused(
        "# TYPE c counter\nc_total 1# {} 1\n# EOF\n",
        2,
        "unexpected",
    );
    // At most 128 code points of names and values (a multi-byte one counts once).
    let ok = format!("a=\"\u{2603}{}\"", "x".repeat(126));
    check(
        &at(&format!("# {{{ok}}} 1")),
        "# TYPE c_total counter\nc_total 1\n",
    );
    let long = format!("a=\"{}\"", "x".repeat(128));
    refused(&at(&format!("# {{{long}}} 1")), 2, "129 characters");
    // Not on gauges, info, stateset, _sum, _count, _created, a gauge named *_bucket.
    for (typ, line) in [
        ("gauge", "a 1"),
        ("info", "a_info 1"),
        ("stateset", "a{a=\"s\"} 1"),
        ("histogram", "a_sum 1"),
        ("gaugehistogram", "a_gsum 1"),
        ("counter", "a_created 1"),
    ] {
        refused(
            &format!("# TYPE a {typ}\n{line} # {{x=\"y\"}} 0.5\n# EOF\n"),
            2,
            "exemplar on",
        );
    }
    refused(
        "# TYPE a_bucket gauge\na_bucket 1 # {} 1\n# EOF\n",
        2,
        "exemplar on",
    );
}

// ---- types ----

#[test]
fn counters_become_total_families_with_a_created_gauge() {
    check(
        "# TYPE req_bytes counter\n# UNIT req_bytes bytes\n# HELP req_bytes Bytes \\\"in\\\".\nreq_bytes_total{c=\"1\"} 3\nreq_bytes_created{c=\"1\"} 1.7e9\n# EOF\n",
        "# HELP req_bytes_total Bytes \"in\".\n# TYPE req_bytes_total counter\nreq_bytes_total{c=\"1\"} 3\n# HELP req_bytes_created Bytes \"in\".\n# TYPE req_bytes_created gauge\nreq_bytes_created{c=\"1\"} 1.7e9\n",
    );
    check(
        "# TYPE c counter\nc_total 9223372036854775808\n# EOF\n",
        "# TYPE c_total counter\nc_total 9223372036854775808\n",
    );
    refused("# TYPE c counter\nc_total -1\n# EOF\n", 2, "not negative");
    refused("# TYPE c counter\nc_total NaN\n# EOF\n", 2, "not NaN");
}

#[test]
fn units_are_the_suffix_of_the_name_and_not_for_info_or_stateset() {
    refused("# UNIT a seconds\n# EOF\n", 1, "not the suffix");
    refused("# UNIT a_seconds seconds \n# EOF\n", 1, "invalid unit");
    refused(
        "# TYPE x_u info\n# UNIT x_u u\n# EOF\n",
        2,
        "expected no unit",
    );
    refused(
        "# UNIT x_u u\n# TYPE x_u stateset\n# EOF\n",
        2,
        "expected no unit",
    );
}

#[test]
fn histograms_buckets_count_and_sum() {
    check(
        "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1e1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_count 3\nh_sum 4.5\nh_created 12\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1e1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_count 3\nh_sum 4.5\n# TYPE h_created gauge\nh_created 12\n",
    );
    // Negative bounds are allowed, without a _sum.
    check(
        "# TYPE h histogram\nh_bucket{le=\"-1\"} 1\nh_bucket{le=\"+Inf\"} 2\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"-1\"} 1\nh_bucket{le=\"+Inf\"} 2\n",
    );
    let h = |lines: &str| format!("# TYPE h histogram\n{lines}# EOF\n");
    refused(&h("h_sum 1\n"), 2, "no le=\"+Inf\" bucket");
    refused(&h("h_bucket{le=\"1\"} 0\n"), 2, "no le=\"+Inf\" bucket");
    refused(
        &h("h_bucket{le=\"+Inf\"} 0\nh_sum 0\n"),
        3,
        "both or neither",
    );
    refused(
        &h("h_bucket{le=\"+Inf\"} 0\nh_count 0\n"),
        3,
        "both or neither",
    );
    refused(
        &h("h_bucket{le=\"+Inf\"} 0\nh_count 1\nh_sum 0\n"),
        4,
        "expected them equal",
    );
    refused(
        &h("h_count 1\nh_sum 0\nh_bucket{le=\"+Inf\"} 0\n"),
        4,
        "expected them equal",
    );
    refused(
        &h("h_bucket{le=\"2\"} 0\nh_bucket{le=\"1\"} 0\n"),
        3,
        "increasing le",
    );
    refused(
        &h("h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"),
        3,
        "cumulative",
    );
    refused(&h("h_bucket{le=\"+INF\"} 0\n"), 2, "invalid le");
    refused(&h("h_bucket{le=\"NaN\"} 0\n"), 2, "invalid le");
    refused(&h("h_bucket 0\n"), 2, "no le label");
    refused(&h("h_bucket{le=\"+Inf\"} -1\n"), 2, "not negative");
    refused(&h("h_bucket{le=\"+Inf\"} NaN\n"), 2, "not NaN");
    refused(&h("h_bucket{le=\"+Inf\"} 1.5\n"), 2, "an integer");
    refused(
        &h("h_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum NaN\n"),
        4,
        "not NaN",
    );
    refused(
        &h("h_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum -1\n"),
        4,
        "not negative",
    );
    refused(&h("h_bucket{le=\"+Inf\"} 1\nh_count NaN\n"), 3, "not NaN");
    refused(
        &h("h_bucket{le=\"-1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 1\n"),
        5,
        "negative bucket bounds and a _sum",
    );
    refused(&h("h_count{le=\"1\"} 0\n"), 2, "le label on h_count");
    // A Metric's samples stay together.
    refused(
        &h("h_bucket{a=\"1\",le=\"+Inf\"} 0\nh_bucket{a=\"2\",le=\"+Inf\"} 0\nh_count{a=\"1\"} 0\n"),
        4,
        "after other metrics",
    );
}

#[test]
fn gauge_histograms_become_untyped_families() {
    check(
        "# TYPE g gaugehistogram\n# HELP g x\ng_bucket{le=\"-1\"} 1\ng_bucket{le=\"+Inf\"} 3\ng_gcount 3\ng_gsum -5\n# EOF\n",
        "# TYPE g_bucket untyped\ng_bucket{le=\"-1\"} 1\ng_bucket{le=\"+Inf\"} 3\n# TYPE g_gcount untyped\ng_gcount 3\n# TYPE g_gsum untyped\ng_gsum -5\n",
    );
    let g = |lines: &str| format!("# TYPE g gaugehistogram\n{lines}# EOF\n");
    refused(&g("g_gsum 1\n"), 2, "no le=\"+Inf\" bucket");
    refused(
        &g("g_bucket{le=\"+Inf\"} 1\ng_gsum 1\n"),
        3,
        "both or neither",
    );
    refused(
        &g("g_bucket{le=\"+Inf\"} 1\ng_gcount 1\n"),
        3,
        "both or neither",
    );
    refused(
        &g("g_bucket{le=\"+Inf\"} 1\ng_gcount 1\ng_gsum -1\n"),
        4,
        "without negative buckets",
    );
    refused(
        &g("g_bucket{le=\"+Inf\"} 1\ng_gcount 1\ng_gsum NaN\n"),
        4,
        "NaN",
    );
    refused(&g("g_bucket{le=\"+Inf\"} -1\n"), 2, "not negative");
    refused(
        &g("g_bucket{le=\"+Inf\"} 1\ng_gcount -1\ng_gsum 1\n"),
        3,
        "not negative",
    );
    refused(&g("g_bucket 0\n"), 2, "no le label");
    refused(
        &g(
            "g_bucket{g=\"1\",le=\"+Inf\"} 0\ng_gcount{g=\"1\"} 0\ng_gsum{g=\"1\"} 0\n\
            g_bucket{g=\"2\",le=\"+Inf\"} 0\ng_gcount{g=\"2\"} 0\ng_gsum{g=\"2\"} 0\n\
            g_gsum{g=\"1\"} 1\n",
        ),
        8,
        "after other metrics",
    );
}

#[test]
fn summaries_quantiles_count_and_sum() {
    check(
        "# TYPE s summary\ns_count 1\ns_sum 2\ns{quantile=\"0.5\"} 0.7\ns{quantile=\"1\"} NaN\ns_created 3\n# EOF\n",
        "# TYPE s summary\ns_count 1\ns_sum 2\ns{quantile=\"0.5\"} 0.7\ns{quantile=\"1\"} NaN\n# TYPE s_created gauge\ns_created 3\n",
    );
    let s = |lines: &str| format!("# TYPE s summary\n{lines}# EOF\n");
    refused(&s("s 0\n"), 2, "no quantile label");
    for q in ["-1", "1.01", "foo", "NaN"] {
        refused(
            &s(&format!("s{{quantile=\"{q}\"}} 0\n")),
            2,
            "invalid quantile",
        );
    }
    refused(&s("s{quantile=\"0.5\"} -1\n"), 2, "not negative");
    refused(&s("s_sum NaN\n"), 2, "not NaN");
    refused(&s("s_sum -1\n"), 2, "not negative");
    refused(&s("s_count -1\n"), 2, "not negative");
    refused(&s("s_count NaN\n"), 2, "not NaN");
    refused(
        &s("s_sum{quantile=\"0.5\"} 1\n"),
        2,
        "quantile label on s_sum",
    );
}

#[test]
fn info_and_stateset_values() {
    check(
        "# TYPE b info\nb_info{v=\"1\"} 1 1\nb_info{v=\"2\"} 1.0 0\n# TYPE st stateset\nst{st=\"a\"} 0\nst{st=\"b\"} 1.0\n# TYPE u unknown\nu 4\n# EOF\n",
        "# TYPE b_info gauge\nb_info{v=\"1\"} 1 1000\nb_info{v=\"2\"} 1.0 0\n# TYPE st gauge\nst{st=\"a\"} 0\nst{st=\"b\"} 1.0\n# TYPE u untyped\nu 4\n",
    );
    refused("# TYPE b info\nb_info{v=\"1\"} 2\n# EOF\n", 2, "expected 1");
    refused(
        "# TYPE st stateset\nst{st=\"a\"} 2\n# EOF\n",
        2,
        "expected 0 or 1",
    );
    refused("# TYPE st stateset\nst 0\n# EOF\n", 2, "has no label st");
}

#[test]
fn families_without_samples_keep_their_metadata() {
    check(
        "# TYPE a counter\n# HELP a Help.\n# TYPE g gaugehistogram\n# TYPE s gauge\n# EOF\n",
        "# HELP a_total Help.\n# TYPE a_total counter\n# TYPE s gauge\n",
    );
}

/// Mutations of valid bodies: never a panic, and whatever is accepted
/// converts to 0.0.4 text that parses.
#[test]
fn mutated_bodies_are_refused_or_convert_to_valid_text() {
    let bodies = [
        "# TYPE c counter\n# HELP c Help \\\" \\z.\nc_total{a=\"x\\\\y\"} 1 1.5 # {id=\"t\"} 2 3\nc_created 1\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"-1\"} 0\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_created 5\n# EOF\n",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n# TYPE i info\ni_info{v=\"1\"} 1\n# EOF\n",
        "# TYPE g gaugehistogram\ng_bucket{le=\"+Inf\"} 1\ng_gcount 1\ng_gsum 2\n# TYPE st stateset\nst{st=\"a\"} 1\n# EOF\n",
        "a{x=\"1\"} 1 1\na{x=\"1\"} 2 2\n# TYPE u_s unknown\n# UNIT u_s s\nu_s 3\n# EOF\n",
    ];
    let alphabet = b" \n#{}\",=\\_a1.-+eE:TYPEHLPUNI\tq0";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for body in bodies {
        openmetrics_to_text(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        for _ in 0..2000 {
            let mut t = body.as_bytes().to_vec();
            for _ in 0..(next() % 3 + 1) {
                let i = (next() as usize) % t.len();
                let b = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => t[i] = b,
                    1 => {
                        t.remove(i);
                    }
                    _ => t.insert(i, b),
                }
            }
            let text = String::from_utf8(t).expect("ASCII edits of ASCII");
            if let Ok(out) = openmetrics_to_text(&text) {
                parse(&out, &ParseLimits::default())
                    .unwrap_or_else(|e| panic!("{text:?} became {out:?}, refused: {e}"));
            }
        }
    }
}

#[test]
fn a_type_line_frees_exactly_the_names_of_the_family_s_previous_type() {
    // Each family takes back only its own names when its TYPE arrives
    // (scanning every reserved name per family made 50,000 families take
    // 12 s of CPU in the hostile benchmark).
    let mut p = OmParser::default();
    for (no, line) in ["# TYPE a counter", "# TYPE b gauge", "# TYPE c histogram"]
        .iter()
        .enumerate()
    {
        p.line(no + 1, line).unwrap();
    }
    let mut names: Vec<(&str, &str)> = p
        .reserved
        .iter()
        .map(|(n, &i)| (n.as_str(), p.families[i].name.as_str()))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            ("a", "a"),
            ("a_created", "a"),
            ("a_total", "a"),
            ("b", "b"),
            ("c", "c"),
            ("c_bucket", "c"),
            ("c_count", "c"),
            ("c_created", "c"),
            ("c_sum", "c"),
        ]
    );
    // A later family may not take a name the counter holds.
    refused(
        "# TYPE a counter\n# TYPE a_created gauge\na_created 1\n# EOF\n",
        2,
        "both use the name a_created",
    );
}

#[test]
fn fifty_thousand_counters_with_created_convert() {
    let mut body = String::new();
    for i in 0..50_000 {
        body.push_str(&format!(
            "# TYPE c{i} counter\n# HELP c{i} h\nc{i}_total 1\nc{i}_created 1.5\n"
        ));
    }
    body.push_str("# EOF\n");
    let text = openmetrics_to_text(&body).unwrap();
    let exp = parse(&text, &ParseLimits::default()).unwrap();
    let samples: usize = exp.families.iter().map(|f| f.samples.len()).sum();
    assert_eq!(samples, 100_000);
}
