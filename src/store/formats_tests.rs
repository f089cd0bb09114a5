//! Protobuf pushes and the OpenMetrics and protobuf bodies.

use super::*;
use crate::exposition::proto::{Bucket, BucketSpan, Counter, Exemplar, Histogram, Timestamp};
use crate::store::lines::lines_have_timestamps;
use crate::store::{AppKind, StoreOptions};
use crate::telemetry::SelfMetrics;

fn store() -> Store {
    Store::new(StoreOptions::default(), SelfMetrics::new())
}

fn pair(k: &str, v: &str) -> LabelPair {
    LabelPair {
        name: Some(k.to_owned()),
        value: Some(v.to_owned()),
    }
}

fn exemplar(trace: &str, value: f64) -> Exemplar {
    Exemplar {
        label: vec![pair("trace_id", trace)],
        value: Some(value),
        timestamp: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000,
        }),
    }
}

/// A counter with an exemplar and a histogram with classic buckets (one
/// with an exemplar) and a native part.
fn families() -> Vec<MetricFamily> {
    let counter = MetricFamily {
        name: Some("jobs_total".into()),
        help: Some("Jobs \"done\".".into()),
        r#type: Some(proto::MetricType::Counter as i32),
        metric: vec![Metric {
            label: vec![pair("queue", "a"), pair("job", "pushed")],
            counter: Some(Counter {
                value: Some(3.0),
                exemplar: Some(exemplar("abc", 1.0)),
            }),
            ..Metric::default()
        }],
    };
    let histogram = MetricFamily {
        name: Some("lat_seconds".into()),
        help: None,
        r#type: Some(proto::MetricType::Histogram as i32),
        metric: vec![Metric {
            histogram: Some(Histogram {
                sample_count: Some(4),
                sample_sum: Some(2.5),
                bucket: vec![Bucket {
                    cumulative_count: Some(3),
                    upper_bound: Some(0.5),
                    exemplar: Some(exemplar("def", 0.25)),
                    ..Bucket::default()
                }],
                schema: Some(0),
                zero_threshold: Some(0.001),
                zero_count: Some(1),
                positive_span: vec![BucketSpan {
                    offset: Some(-1),
                    length: Some(2),
                }],
                positive_delta: vec![2, -1],
                ..Histogram::default()
            }),
            ..Metric::default()
        }],
    };
    vec![counter, histogram]
}

fn push(s: &Store, app: &str, fams: Vec<MetricFamily>) -> Result<usize, PushError> {
    let set = [("job", "j")];
    let opts = PrepareOptions {
        set: &set,
        default: &[("instance", "")],
        ..PrepareOptions::default()
    };
    let p = s.prepare_protobuf(app, fams, &opts)?;
    s.commit(vec![p], AppKind::Gateway, "test")
}

fn text(s: &Store, f: Format) -> String {
    String::from_utf8(s.render().bytes_of(f).to_vec()).unwrap()
}

#[test]
fn protobuf_push_keeps_native_histograms_and_exemplars() {
    let s = store();
    assert_eq!(push(&s, "g", families()), Ok(5));

    // Text 0.0.4: the classic part, grouping labels set.
    let t = text(&s, Format::Text);
    assert!(
        t.starts_with(
            "# HELP jobs_total Jobs \"done\".\n# TYPE jobs_total counter\n\
             jobs_total{job=\"j\",queue=\"a\",instance=\"\"} 3.0\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{job=\"j\",le=\"0.5\",instance=\"\"} 3.0\n\
             lat_seconds_bucket{job=\"j\",le=\"+Inf\",instance=\"\"} 4.0\n\
             lat_seconds_sum{job=\"j\",instance=\"\"} 2.5\n\
             lat_seconds_count{job=\"j\",instance=\"\"} 4.0\n"
        ),
        "{t}"
    );

    // Protobuf: as pushed, labels set and sorted.
    let fams = proto::decode_delimited(&s.render().bytes_of(Format::Protobuf)).unwrap();
    let mut expected = families();
    for f in &mut expected {
        f.metric[0]
            .label
            .retain(|l| l.name.as_deref() != Some("job"));
        f.metric[0].label.push(pair("job", "j"));
        f.metric[0].label.push(pair("instance", ""));
        f.metric[0].label.sort_by(|a, b| a.name.cmp(&b.name));
    }
    assert_eq!(fams[0], expected[0]);
    assert_eq!(fams[1], expected[1]);
    assert!(fams[2..]
        .iter()
        .all(|f| f.name.as_deref().unwrap().starts_with("exporter_proxy_")));

    // OpenMetrics: exemplars on the counter and the bucket, seconds.
    let om = text(&s, Format::OpenMetrics);
    assert!(
        om.starts_with(
            "# TYPE jobs counter\n# HELP jobs Jobs \\\"done\\\".\n\
             jobs_total{instance=\"\",job=\"j\",queue=\"a\"} 3.0 # {trace_id=\"abc\"} 1.0 1700000000.5\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{instance=\"\",job=\"j\",le=\"0.5\"} 3.0 # {trace_id=\"def\"} 0.25 1700000000.5\n\
             lat_seconds_bucket{instance=\"\",job=\"j\",le=\"+Inf\"} 4.0\n\
             lat_seconds_sum{instance=\"\",job=\"j\"} 2.5\n\
             lat_seconds_count{instance=\"\",job=\"j\"} 4.0\n"
        ),
        "{om}"
    );
    assert!(om.ends_with("\n# EOF\n"));
}

#[test]
fn text_pushes_convert_and_counter_stems_stay_unique() {
    let s = store();
    s.push(
        "t",
        "# TYPE a_total counter\na_total 1 1700000000123\n# TYPE a gauge\na 2\n# TYPE b counter\nb 3\n\
         # TYPE c_total counter\nc_total 5\n# TYPE c_created gauge\nc_created 6\n\
         # TYPE h histogram\nh_bucket{x=\"a\",le=\"1\"} 1\nh_bucket{x=\"b\",le=\"1\"} 2\n\
         h_count{x=\"a\"} 1\nh_count{x=\"b\"} 2\nh_sum{x=\"a\"} 0.5\nh_sum{x=\"b\"} 1\n\
         # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n# TYPE u untyped\nu 4\n",
        AppKind::Push,
        "test",
    )
    .unwrap();
    let om = text(&s, Format::OpenMetrics);
    let pushed = &om[..om.find("# TYPE exporter_proxy_").unwrap()];
    assert_eq!(
        pushed,
        "# TYPE a gauge\na 2\n\
         # TYPE a_total unknown\na_total 1.0 1700000000.123\n\
         # TYPE b unknown\nb 3\n\
         # TYPE c_created gauge\nc_created 6\n\
         # TYPE c_total unknown\nc_total 5\n\
         # TYPE h histogram\n\
         h_bucket{x=\"a\",le=\"1\"} 1.0\nh_bucket{x=\"a\",le=\"+Inf\"} 1.0\nh_sum{x=\"a\"} 0.5\nh_count{x=\"a\"} 1.0\n\
         h_bucket{x=\"b\",le=\"1\"} 2.0\nh_bucket{x=\"b\",le=\"+Inf\"} 2.0\nh_sum{x=\"b\"} 1.0\nh_count{x=\"b\"} 2.0\n\
         # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n\
         # TYPE u unknown\nu 4\n",
        "a counter whose stem (or its _created) is taken, or without _total, is unknown under \
         its own name; text lines are kept when they are valid OpenMetrics, regrouped (with \
         +Inf) or in seconds otherwise"
    );
    let fams = proto::decode_delimited(&s.render().bytes_of(Format::Protobuf)).unwrap();
    let a = fams
        .iter()
        .find(|f| f.name.as_deref() == Some("a_total"))
        .unwrap();
    assert_eq!(a.r#type, Some(proto::MetricType::Counter as i32));
    assert_eq!(a.metric[0].timestamp_ms, Some(1_700_000_000_123));
    let sum = fams
        .iter()
        .find(|f| f.name.as_deref() == Some("s"))
        .unwrap();
    let q = sum.metric[0].summary.as_ref().unwrap();
    assert_eq!((q.sample_count, q.quantile.len()), (Some(3), 1));
}

#[test]
fn alternative_bodies_follow_generations_and_reuse_unchanged_blocks() {
    let s = store();
    s.push("a", "x_total 1\n", AppKind::Push, "test").unwrap();
    s.push("b", "# TYPE y gauge\ny 1\n", AppKind::Push, "test")
        .unwrap();
    let first = s.render();
    let om1 = first.bytes_of(Format::OpenMetrics);
    assert!(Arc::ptr_eq(&first, &s.render()), "cached per generation");
    assert!(first.is_built(Format::OpenMetrics, false));
    assert!(!first.is_built(Format::Protobuf, false));
    s.push("b", "# TYPE y gauge\ny 2\n", AppKind::Push, "test")
        .unwrap();
    let second = s.render();
    assert!(!second.is_built(Format::OpenMetrics, false));
    let om2 = second.bytes_of(Format::OpenMetrics);
    assert!(om2.starts_with(b"# TYPE x_total unknown\nx_total 1\n# TYPE y gauge\ny 2\n"));
    assert_ne!(om1, om2);
    // App a's block was not re-encoded: its chunk is the same buffer.
    let chunk = |r: &Rendered| r.chunks_of(Format::OpenMetrics)[1].buffer_id();
    assert_eq!(chunk(&first), chunk(&second));
    // And its OpenMetrics lines are its text lines, shared.
    assert_eq!(chunk(&second), second.chunks()[1].buffer_id());
}

/// The invariants of the `formats` fuzz target: the protobuf body has the
/// text body's families in order, the OpenMetrics body one `# TYPE` each
/// and `# EOF`.
#[track_caller]
fn formats_agree(s: &Store) {
    let r = s.render();
    let text = String::from_utf8(r.to_bytes().to_vec()).unwrap();
    let exp = exposition::parse(&text, &ParseLimits::default()).unwrap();
    let names: Vec<String> = proto::decode_delimited(&r.bytes_of(Format::Protobuf))
        .unwrap()
        .into_iter()
        .map(|f| f.name.unwrap())
        .collect();
    let text_names: Vec<String> = exp.families.iter().map(|f| f.name.clone()).collect();
    assert_eq!(names, text_names);
    let om = String::from_utf8(r.bytes_of(Format::OpenMetrics).to_vec()).unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(
        om.lines().filter(|l| l.starts_with("# TYPE ")).count(),
        exp.families.len()
    );
}

#[test]
fn every_format_has_every_family() {
    let s = store();
    formats_agree(&s);
    push(&s, "g", families()).unwrap();
    s.push(
        "t",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n# TYPE e gauge\n",
        AppKind::Push,
        "test",
    )
    .unwrap();
    formats_agree(&s);
}

#[track_caller]
fn refused(s: &Store, fams: Vec<MetricFamily>, message: &str) {
    let before = (text(s, Format::Text), s.counts());
    let err = push(s, "g", fams).expect_err("push accepted");
    assert_eq!(err.reason, RejectReason::ParseError, "{err}");
    assert!(
        err.message.contains(message),
        "{} does not contain {message}",
        err.message
    );
    assert_eq!(
        (text(s, Format::Text), s.counts()),
        before,
        "nothing changed"
    );
}

#[test]
fn invalid_protobuf_pushes_are_refused_whole() {
    let s = store();
    push(&s, "g", families()).unwrap();
    let mut f = families();
    f[1].metric[0].histogram.as_mut().unwrap().schema = Some(9);
    refused(
        &s,
        f,
        "family lat_seconds, metric #1: native histogram schema 9 is out of range",
    );
    let mut f = families();
    f[1].metric[0]
        .histogram
        .as_mut()
        .unwrap()
        .positive_delta
        .push(1);
    refused(
        &s,
        f,
        "positive spans cover 2 buckets but 3 bucket counts are given",
    );
    let mut f = families();
    f[0].metric[0].counter = None;
    refused(
        &s,
        f,
        "family jobs_total, metric #1: a counter family needs the counter field",
    );
    let mut f = families();
    let again = f[0].metric[0].clone();
    f[0].metric.push(again);
    refused(&s, f, "(in the text form of the protobuf body)");
    let mut f = families();
    f[0].metric[0].label.push(pair("__bad", "x"));
    refused(&s, f, "invalid label name \"__bad\"");
    let mut f = families();
    f[0].metric[0].counter.as_mut().unwrap().exemplar = Some(exemplar(&"x".repeat(200), 1.0));
    refused(&s, f, "exemplar labels have 208 characters; at most 128");
    let mut f = families();
    f.push(f[0].clone());
    refused(&s, f, "family jobs_total appears twice");
    let mut f = families();
    f[0].name = Some("1bad".into());
    refused(&s, f, "invalid metric name");
    let mut f = families();
    f[1].metric[0]
        .histogram
        .as_mut()
        .unwrap()
        .bucket
        .push(Bucket {
            upper_bound: Some(0.1),
            ..Bucket::default()
        });
    refused(&s, f, "bucket bound 0.1 is not above the previous one");
}

#[test]
fn delimited_framing_errors_name_the_offset() {
    let mut body = Vec::new();
    for f in families() {
        proto::encode_delimited(&mut body, &f);
    }
    assert_eq!(proto::decode_delimited(&body).unwrap(), families());
    let first = prost::Message::encoded_len(&families()[0]);
    let cut = &body[..body.len() - 3];
    let err = proto::decode_delimited(cut).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "byte offset {}: the MetricFamily message claims",
            first + 1
        )),
        "{err}"
    );
    let err = proto::decode_delimited(&[0x05, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert!(
        err.starts_with("byte offset 0: invalid MetricFamily message"),
        "{err}"
    );
}

#[test]
fn timestamps_are_seen_in_encoded_lines_whatever_the_label_values_hold() {
    for (body, has) in [
        ("", false),
        ("g 1\n", false),
        ("g 1 1700000000000\n", true),
        ("g{a=\"x\"} NaN\n", false),
        ("g{a=\"x\"} +Inf -5\n", true),
        // Blanks and braces inside label values are not the line's own.
        ("g{path=\"/a b} 1 2\",q=\"} }\"} 3\n", false),
        ("g{path=\"/a b} 1 2\"} 3 4\n", true),
        ("g{a=\"1\"} 1\ng{a=\"2\"} 2 17\n", true),
        ("g{a=\"1\"} 1\ng 2\n", false),
    ] {
        assert_eq!(lines_have_timestamps(body.as_bytes()), has, "{body:?}");
    }
}

#[test]
fn gauge_lines_with_blanks_in_label_values_are_shared_as_openmetrics() {
    let s = store();
    s.push(
        "a",
        "# TYPE g gauge\ng{path=\"/a b} 1 2\"} 3\n# TYPE t gauge\nt{x=\"y z\"} 1 1700000000123\n",
        AppKind::Push,
        "test",
    )
    .unwrap();
    let r = s.render();
    let om = String::from_utf8(r.bytes_of(Format::OpenMetrics).to_vec()).unwrap();
    assert!(
        om.starts_with(
            "# TYPE g gauge\ng{path=\"/a b} 1 2\"} 3\n# TYPE t gauge\nt{x=\"y z\"} 1.0 1700000000.123\n"
        ),
        "{om}"
    );
    // The line without a timestamp is the text block itself, shared.
    assert_eq!(
        r.chunks_of(Format::OpenMetrics)[1].buffer_id(),
        r.chunks()[1].buffer_id()
    );
}

/// Shuffles `order` (Fisher-Yates, driven by a fixed LCG from `seed`).
fn shuffle(order: &mut [&str], seed: &mut u64) {
    for i in (1..order.len()).rev() {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (*seed >> 33) as usize % (i + 1));
    }
}

fn block_of(name: &str, typ: MetricType, body: &str) -> FamilyBlock {
    FamilyBlock {
        name: name.to_owned(),
        help: None,
        typ,
        body: Bytes::from(body.to_owned()).into(),
        keys: Vec::new(),
        digest: 0,
        rich: None,
        alt: exposition::AltEncodings::default(),
    }
}

#[test]
fn the_line_scan_agrees_with_a_full_parse_on_histograms_and_summaries() {
    let h = MetricType::Histogram;
    let q = MetricType::Summary;
    let cases: Vec<(MetricType, &str)> = vec![
        (h, ""),
        (h, "h_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n"),
        (h, "h_bucket{x=\"a\",le=\"1\"} 1\nh_bucket{le=\"+Inf\",x=\"a\"} 2\nh_sum{x=\"a\"} 3\nh_count{x=\"a\"} 2\n"),
        (h, "h_bucket{x=\"a\",le=\"2\"} 1\nh_bucket{x=\"a\",le=\"1\"} 1\nh_bucket{x=\"a\",le=\"+Inf\"} 1\n"),
        (h, "h_bucket{x=\"a\",le=\"1\"} 1\nh_sum{x=\"a\"} 3\n"),
        (h, "h_sum{x=\"a\"} 3\nh_bucket{x=\"a\",le=\"+Inf\"} 1\n"),
        (h, "h_bucket{x=\"a\",le=\"+Inf\"} 1\nh_bucket{x=\"b\",le=\"+Inf\"} 1\nh_sum{x=\"a\"} 1\n"),
        (h, "h_bucket{x=\"a\",le=\"+Inf\"} 1 17\nh_sum{x=\"a\"} 1\n"),
        (h, "h_bucket{x=\"a\\\",b=\\\"}\",le=\"1e3\"} 1\nh_bucket{x=\"a\\\",b=\\\"}\",le=\"+Inf\"} 1\nh_count{x=\"a\\\",b=\\\"}\"} 1\nh_sum{x=\"a\\\",b=\\\"}\"} 1\n"),
        (h, "h_bucket{x=\"a=b c\",le=\"0.5\"} 0\nh_bucket{x=\"a=b c\",le=\"+Inf\"} 0\nh_bucket{x=\"z\",le=\"+Inf\"} 0\n"),
        (h, "h_count 1\n"),
        (q, "s{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n"),
        (q, "s{x=\"a\",quantile=\"0.5\"} 1\ns{x=\"b\",quantile=\"0.5\"} 1\ns_sum{x=\"a\"} 2\n"),
        (q, "s_sum 2\ns{quantile=\"0.9\"} 1\ns_count 3 5\n"),
        (q, "s{quantile=\"0.5\",x=\"a\"} 1\ns_count{x=\"a\"} 1\ns_sum{x=\"a\"} 1\n"),
    ];
    for (typ, body) in &cases {
        let name = if *typ == h { "h" } else { "s" };
        let b = block_of(name, *typ, body);
        assert_eq!(
            text_is_openmetrics(&b),
            text_is_openmetrics_by_parse(&b),
            "{body:?}"
        );
    }
    // Every order of the lines of a valid block with two series: the scan
    // and the parse agree on each (a shuffle by a fixed LCG, 400 orders).
    let lines: Vec<&str> = vec![
        "h_bucket{x=\"a\",le=\"0.1\"} 1",
        "h_bucket{x=\"a\",le=\"1\"} 2",
        "h_bucket{x=\"a\",le=\"+Inf\"} 3",
        "h_sum{x=\"a\"} 4",
        "h_count{x=\"a\"} 3",
        "h_bucket{le=\"1\",x=\"b\"} 1",
        "h_bucket{le=\"+Inf\",x=\"b\"} 1",
        "h_count{x=\"b\"} 1",
        "h_sum{x=\"b\"} 0.5",
    ];
    let mut seed = 0x2545_f491_u64;
    let (mut valid, mut invalid) = (0, 0);
    for round in 0..400 {
        let mut order = lines.clone();
        if round > 0 {
            shuffle(&mut order, &mut seed);
        }
        let body = order.join("\n") + "\n";
        let b = block_of("h", h, &body);
        let scan = text_is_openmetrics(&b);
        assert_eq!(scan, text_is_openmetrics_by_parse(&b), "{body}");
        if scan {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(valid >= 1 && invalid > 300, "{valid} valid, {invalid} not");
}

/// App `a`'s push for the gzip run tests: a gauge family of 30 series
/// whose values change with `round`.
fn gauge_app(a: usize, round: usize) -> String {
    let lines: String = (0..30)
        .map(|i| {
            format!(
                "g{{route=\"/r/{i}\",app_id=\"{a}\"}} {}\n",
                a * 7 + i + round
            )
        })
        .collect();
    format!("# TYPE g gauge\n{lines}")
}

/// A gzip body decoded (one member).
fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn text_and_openmetrics_gzip_bodies_share_the_runs_of_shared_blocks() {
    let s = store();
    let page = |round: usize| {
        (0..200)
            .map(|a| (format!("app{a:03}"), gauge_app(a, round)))
            .collect::<Vec<_>>()
    };
    for (app, text) in page(0) {
        s.push(&app, &text, AppKind::Push, "test").unwrap();
    }
    let r = s.render();
    let text_gz = r.gzip_of(Format::Text);
    let om_gz = r.gzip_of(Format::OpenMetrics);
    assert_eq!(gunzip(&text_gz), r.to_bytes().to_vec());
    assert_eq!(gunzip(&om_gz), r.bytes_of(Format::OpenMetrics).to_vec());
    let total = r.bytes_of(Format::OpenMetrics).len() as u64;
    let om = r.alt.body(Format::OpenMetrics).unwrap().gzip.get().unwrap();
    assert!(total > 100_000, "{total}");
    assert!(
        om.fresh_bytes < total / 4,
        "OpenMetrics after text compressed {} of {total} bytes anew",
        om.fresh_bytes
    );
    // The other way round, after one app's push: the text finds the
    // runs of the OpenMetrics body built just before.
    s.push("app100", &page(1)[100].1, AppKind::Push, "test")
        .unwrap();
    let r = s.render();
    let om_gz = r.gzip_of(Format::OpenMetrics);
    let text_gz = r.gzip_of(Format::Text);
    assert_eq!(gunzip(&om_gz), r.bytes_of(Format::OpenMetrics).to_vec());
    assert_eq!(gunzip(&text_gz), r.to_bytes().to_vec());
    let text = r.gzip.get().unwrap();
    assert!(
        text.fresh_bytes < total / 4,
        "text after OpenMetrics compressed {} of {total} bytes anew",
        text.fresh_bytes
    );
}

#[test]
fn a_push_makes_only_its_own_runs_of_the_protobuf_gzip_body_new() {
    // Every protobuf block starts with the same field tags: its bytes
    // cannot tell where a run may end, the series of its text block do.
    // (With marks taken from the bytes, a family was one run, compressed
    // whole after every push.)
    let s = store();
    let text = gauge_app;
    for a in 0..300 {
        s.push(&format!("app{a:03}"), &text(a, 0), AppKind::Push, "test")
            .unwrap();
    }
    let r = s.render();
    let first = r.gzip_of(Format::Protobuf);
    assert_eq!(gunzip(&first), r.bytes_of(Format::Protobuf).to_vec());
    s.push("app150", &text(150, 1), AppKind::Push, "test")
        .unwrap();
    let r = s.render();
    let second = r.gzip_of(Format::Protobuf);
    assert_eq!(gunzip(&second), r.bytes_of(Format::Protobuf).to_vec());
    let total = r.bytes_of(Format::Protobuf).len() as u64;
    let pb = r.alt.body(Format::Protobuf).unwrap().gzip.get().unwrap();
    assert!(total > 100_000, "{total}");
    assert!(
        pb.fresh_bytes < total / 4,
        "protobuf after one push compressed {} of {total} bytes anew",
        pb.fresh_bytes
    );
}

#[test]
fn a_batch_ended_ahead_of_a_scrape_keeps_the_runs_built_at_the_end_of_the_family() {
    // The steady load in small: 300 apps push in a fixed order, 30 per
    // scrape interval; ahead of each scrape a build (after `end_batch`, as
    // http::prebuild does), then 3 more pushes before the scrape's own
    // build. What the scrape compresses, summed over the last 10 intervals
    // (after one whole push period, once the page is in push order).
    let top_up = |end_batches: bool| {
        let s = store();
        for a in 0..300 {
            s.push(
                &format!("app{a:03}"),
                &gauge_app(a, 0),
                AppKind::Push,
                "test",
            )
            .unwrap();
        }
        s.render().gzip_of(Format::Text);
        // Push order: a fixed shuffle of the names.
        let mut next = (0..).map(|i: usize| (i * 181) % 300);
        let mut push = |n: usize, round: usize| {
            for a in next.by_ref().take(n) {
                s.push(
                    &format!("app{a:03}"),
                    &gauge_app(a, round),
                    AppKind::Push,
                    "test",
                )
                .unwrap();
            }
        };
        let mut fresh = 0;
        for interval in 0..20 {
            push(27, interval + 1);
            if end_batches {
                s.end_batch();
            }
            s.render().gzip_of(Format::Text);
            push(3, interval + 1);
            let r = s.render();
            let gz = r.gzip_of(Format::Text);
            assert_eq!(gunzip(&gz), r.to_bytes().to_vec());
            if interval >= 10 {
                fresh += r.gzip.get().unwrap().fresh_bytes;
            }
        }
        fresh
    };
    let (with, without) = (top_up(true), top_up(false));
    // 3 blocks of about 1.2 KB each new at the end, and the run(s) at the
    // front that the 3 apps left: with the batch cut, the run at the end
    // built ahead is found again.
    assert!(
        with * 3 < without * 2,
        "with batches {with} bytes compressed at 10 scrapes, without {without}"
    );
}

fn encoded(metrics: &[Metric]) -> Vec<u8> {
    let mut out = Vec::new();
    protobuf::encode_metric_fields(&mut out, metrics);
    out
}

/// Whether the block's text parses (as every stored block does).
fn parses(b: &FamilyBlock) -> bool {
    let mut text = Vec::new();
    exposition::encode_header(&mut text, &b.name, None, b.typ);
    b.body.write_to(&mut text);
    exposition::parse(std::str::from_utf8(&text).unwrap(), &ParseLimits::default()).is_ok()
}

#[test]
fn metrics_read_from_the_lines_are_those_of_a_full_parse() {
    use MetricType::{Counter, Gauge, Histogram, Summary, Untyped};
    let mut cases: Vec<(&str, MetricType, String)> = vec![
        ("c_total", Counter, "c_total 1\n".into()),
        ("c_total", Counter, "c_total{b=\"2\",a=\"1\"} 1e3 1700000000000\nc_total{a=\"x\\\\y\\\"z\\n\"} -0\n".into()),
        ("g", Gauge, "g NaN\ng{x=\"+Inf\"} +Inf\ng{x=\"-Inf\"} -Inf -5\ng{x=\"y z} 1 2\"} .5\n".into()),
        ("g", Gauge, "g{path=\"/a b} 1 2\",q=\"} }\"} 3\n".into()),
        ("u", Untyped, "u 17\nu{a=\"\"} 0.000001\n".into()),
        ("h", Histogram, "h_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n".into()),
        ("h", Histogram, "h_bucket{x=\"a\",le=\"1\"} 1\nh_bucket{le=\"+Inf\",x=\"a\"} 2\nh_sum{x=\"a\"} 3\n".into()),
        ("h", Histogram, "h_bucket{x=\"a\",le=\"0.5\"} 1.5\nh_bucket{x=\"a\",le=\"+Inf\"} 2\nh_count{x=\"a\"} -1\n".into()),
        ("h", Histogram, "h_bucket{x=\"a\\\",b=\\\"}\",le=\"1e3\"} 1\nh_bucket{x=\"a\\\",b=\\\"}\",le=\"+Inf\"} 1\nh_count{x=\"a\\\",b=\\\"}\"} 1\nh_sum{x=\"a\\\",b=\\\"}\"} 1\n".into()),
        ("h", Histogram, "h_bucket{x=\"a\",le=\"+Inf\"} 1 17\nh_sum{x=\"a\"} 1 18\n".into()),
        ("s", Summary, "s{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n".into()),
        ("s", Summary, "s{x=\"a\",quantile=\"0.5\"} 1\ns{x=\"b\",quantile=\"0.99\"} 1\ns_sum{x=\"a\"} 2\ns_count{x=\"b\"} 2.5\n".into()),
    ];
    // Every order of a histogram's lines (a fixed LCG shuffle), series
    // interleaved or not.
    let lines: Vec<&str> = vec![
        "h_bucket{x=\"a\",le=\"0.1\"} 1",
        "h_bucket{x=\"a\",le=\"1\"} 2",
        "h_bucket{x=\"a\",le=\"+Inf\"} 3",
        "h_sum{x=\"a\"} 4",
        "h_count{x=\"a\"} 3",
        "h_bucket{le=\"1\",x=\"b\"} 1",
        "h_bucket{le=\"+Inf\",x=\"b\"} 1",
        "h_sum{x=\"b\"} 0.5",
    ];
    let mut seed = 0x9e37_79b9_u64;
    for _ in 0..200 {
        let mut order = lines.clone();
        shuffle(&mut order, &mut seed);
        cases.push(("h", Histogram, order.join("\n") + "\n"));
    }
    let mut compared = 0;
    for (name, typ, body) in &cases {
        let b = block_of(name, *typ, body);
        if !parses(&b) {
            continue;
        }
        let fast = metrics_from_lines(&b).unwrap_or_else(|| panic!("not read: {body:?}"));
        // Compared as encoded (NaN is not equal to itself).
        assert_eq!(
            encoded(&fast),
            encoded(&block_metrics_by_parse(&b)),
            "{body:?}"
        );
        assert!(!fast.is_empty(), "{body:?}");
        compared += 1;
    }
    assert!(compared > 200, "only {compared} blocks parse");
}

#[test]
fn lines_not_in_the_encoders_form_are_left_to_the_parse() {
    for body in ["g  1\n", "g 1  17\n", "g{a=\"1\"}1\n", "g 1 x\n", "g one\n"] {
        let b = block_of("g", MetricType::Gauge, body);
        assert_eq!(metrics_from_lines(&b), None, "{body:?}");
    }
}

#[test]
fn a_pushed_blocks_protobuf_form_is_read_from_its_lines() {
    let s = store();
    let text = "# TYPE req_total counter\nreq_total{code=\"200\",path=\"/a\"} 5\n\
                # TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 2\n\
                lat_sum 0.3\nlat_count 2\nlat_created 1700000000\n\
                # TYPE c counter\nc_total 1 1700000000000\nc_created 1700000000\n\
                # TYPE q summary\nq{quantile=\"0.5\",x=\"a\\\\b\"} 1\nq_sum{x=\"a\\\\b\"} 2\n\
                q_count{x=\"a\\\\b\"} 3\n# TYPE g gauge\ng{a=\"x y\"} NaN\nu_thing -Inf\n";
    s.push("a", text, AppKind::Push, "test").unwrap();
    let r = s.render();
    let mut read = 0;
    for f in &r.alt.families {
        for b in &f.blocks {
            let fast = metrics_from_lines(b).expect("a stored block is in the encoder's form");
            assert_eq!(
                encoded(&fast),
                encoded(&block_metrics_by_parse(b)),
                "{}",
                f.name
            );
            read += 1;
        }
    }
    assert!(read >= 9, "{read}");
}
