//! Tests of the [`Store`]: replace semantics, rendering, the render cache,
//! cross-application conflicts, atomic batches, limits and app names.
//!
//! Most tests push a few texts and compare the rendered pushed families
//! with [`check`]; refusals go through [`check_refused`], which also makes
//! sure that a refused push changed nothing.

use std::io::Read;

use super::*;

/// The first line of the self-metrics, which follow the pushed families.
const SELF_METRICS_START: &str = "# HELP exporter_proxy_";

fn store() -> Store {
    store_with(StoreOptions::default())
}

fn store_with(options: StoreOptions) -> Store {
    Store::new(options, SelfMetrics::new())
}

/// Pushes `text` for `app`, which must be accepted, and returns its series count.
#[track_caller]
fn push(s: &Store, app: &str, text: &str) -> usize {
    s.push(app, text, AppKind::Push, "test")
        .unwrap_or_else(|e| panic!("push refused: {e}\ntext:\n{text}"))
}

/// The rendered body as text.
fn body(s: &Store) -> String {
    String::from_utf8(s.render().to_bytes().to_vec()).expect("the body is UTF-8")
}

/// The rendered pushed families, without the self-metrics that follow them.
fn pushed(s: &Store) -> String {
    let b = body(s);
    let end = b
        .find(SELF_METRICS_START)
        .unwrap_or_else(|| panic!("no self-metrics in:\n{b}"));
    b[..end].to_owned()
}

/// Compares the rendered pushed families with `expected`.
#[track_caller]
fn check(s: &Store, expected: &str) {
    assert_eq!(pushed(s), expected);
}

/// Names and series counts of the apps, in `apps()` order.
fn app_names(s: &Store) -> Vec<(String, usize)> {
    s.apps().into_iter().map(|a| (a.name, a.series)).collect()
}

/// Pushes `text` for `app`, expects a refusal with `reason` and exactly
/// `message`, and checks that the rendered families and the apps are unchanged.
#[track_caller]
fn check_refused(s: &Store, app: &str, text: &str, reason: RejectReason, message: &str) {
    let before = (pushed(s), app_names(s), s.counts());
    let err = s
        .push(app, text, AppKind::Push, "test")
        .expect_err("push accepted");
    assert_eq!(err.reason, reason, "{err}");
    assert_eq!(err.message, message);
    let after = (pushed(s), app_names(s), s.counts());
    assert_eq!(after, before, "a refused push changed the store");
}

/// `push` without applying: for building batches.
#[track_caller]
fn prepare(s: &Store, app: &str, text: &str) -> Prepared {
    s.prepare(app, text)
        .unwrap_or_else(|e| panic!("prepare failed: {e}"))
}

pub(super) fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

// ---- push and replace ----

#[test]
fn empty_store_renders_only_self_metrics() {
    let s = store();
    let b = body(&s);
    assert!(b.starts_with(SELF_METRICS_START), "{b}");
    assert!(b.contains("\nexporter_proxy_apps 0\n"), "{b}");
    assert_eq!(s.counts(), (0, 0));
    assert_eq!(s.apps(), Vec::new());
}

#[test]
fn push_returns_series_and_renders() {
    let s = store();
    assert_eq!(push(&s, "a", "foo 1\nbar{x=\"1\"} 2\nbar{x=\"2\"} 3\n"), 3);
    check(
        &s,
        "# TYPE bar untyped\nbar{x=\"1\"} 2\nbar{x=\"2\"} 3\n# TYPE foo untyped\nfoo 1\n",
    );
    assert_eq!(s.counts(), (1, 3));
}

#[test]
fn a_push_replaces_the_whole_set() {
    let s = store();
    push(&s, "a", "foo 1\nbar 2\n# TYPE gone gauge\ngone 3\n");
    push(&s, "a", "foo 10\n");
    // `bar` and `gone` are dropped, not kept from the previous push.
    check(&s, "# TYPE foo untyped\nfoo 10\n");
    assert_eq!(app_names(&s), [("a".to_owned(), 1)]);
    assert_eq!(s.counts(), (1, 1));
    // Dropped series are free for another app.
    push(&s, "b", "bar 2\n");
    check(
        &s,
        "# TYPE bar untyped\nbar 2\n# TYPE foo untyped\nfoo 10\n",
    );
    // And an empty push keeps the app with nothing in it.
    assert_eq!(push(&s, "a", ""), 0);
    check(&s, "# TYPE bar untyped\nbar 2\n");
    assert_eq!(app_names(&s), [("a".to_owned(), 0), ("b".to_owned(), 1)]);
}

#[test]
fn apps_rows() {
    let s = store();
    let before = Utc::now();
    s.push(
        "b",
        "x 1\ny 2\n",
        AppKind::Poll,
        "http://127.0.0.1:9100/metrics",
    )
    .unwrap();
    s.push("a", "z 1\n", AppKind::Push, "/tmp/s.sock").unwrap();
    let after = Utc::now();
    let apps = s.apps();
    assert_eq!(apps.len(), 2);
    // Sorted by name.
    assert_eq!(apps[0].name, "a");
    assert_eq!(apps[0].kind, AppKind::Push);
    assert_eq!(apps[0].source, "/tmp/s.sock");
    assert_eq!(apps[0].series, 1);
    assert_eq!(apps[1].name, "b");
    assert_eq!(apps[1].kind, AppKind::Poll);
    assert_eq!(apps[1].source, "http://127.0.0.1:9100/metrics");
    assert_eq!(apps[1].series, 2);
    for a in &apps {
        let t = a.last_update.expect("pushed apps have a time");
        assert!(before <= t && t <= after, "{a:?}");
        assert_eq!(a.last_error, None);
        assert_eq!(a.last_error_time, None);
        // Pushes are `ok`; polled targets `up`.
        let want = if a.kind == AppKind::Poll { "up" } else { "ok" };
        assert_eq!(a.status(), want);
    }
    assert_eq!(AppKind::Push.as_str(), "push");
    assert_eq!(AppKind::Poll.as_str(), "poll");
}

#[test]
fn remove() {
    let s = store();
    push(&s, "a", "foo 1\n");
    push(&s, "b", "bar 1\n");
    let gen = s.generation();
    assert!(s.remove("a"));
    assert!(s.generation() > gen, "removal must invalidate the cache");
    check(&s, "# TYPE bar untyped\nbar 1\n");
    assert_eq!(app_names(&s), [("b".to_owned(), 1)]);
    assert_eq!(s.counts(), (1, 1));
    // Its series are free again.
    push(&s, "c", "foo 1\n");
    let gen = s.generation();
    assert!(!s.remove("a"));
    assert!(!s.remove("nobody"));
    assert_eq!(s.generation(), gen, "removing nothing changes nothing");
}

// ---- rendering ----

#[test]
fn families_sorted_merged_with_first_help() {
    let s = store();
    push(
        &s,
        "b",
        "# HELP shared From b.\n# TYPE shared gauge\nshared{x=\"b\"} 2\n\
         # TYPE empty counter\n\
         # HELP zeta Last.\nzeta 1\n",
    );
    push(
        &s,
        "a",
        "# TYPE shared gauge\nshared{x=\"a\"} 1\n\
         # HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 0.5\nlat_count 1\n",
    );
    push(
        &s,
        "c",
        "# HELP shared From c.\n# TYPE shared gauge\nshared{x=\"c\"} 3\n",
    );
    check(
        &s,
        "# TYPE empty counter\n\
         # HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 0.5\nlat_count 1\n\
         # HELP shared From b.\n# TYPE shared gauge\nshared{x=\"b\"} 2\nshared{x=\"a\"} 1\nshared{x=\"c\"} 3\n\
         # HELP zeta Last.\n# TYPE zeta untyped\nzeta 1\n",
    );
    let b = body(&s);
    // One HELP and one TYPE per family, whatever the number of apps.
    assert_eq!(b.matches("# TYPE shared ").count(), 1);
    assert_eq!(b.matches("# HELP shared ").count(), 1);
}

#[test]
fn help_comes_from_the_first_app_in_name_order_that_has_one() {
    let s = store();
    push(&s, "m", "# HELP f From m.\nf{i=\"m\"} 1\n");
    push(&s, "z", "# HELP f From z.\nf{i=\"z\"} 1\n");
    check(
        &s,
        "# HELP f From m.\n# TYPE f untyped\nf{i=\"m\"} 1\nf{i=\"z\"} 1\n",
    );
    // An app earlier in name order without HELP does not hide it.
    push(&s, "a", "f{i=\"a\"} 1\n");
    check(
        &s,
        "# HELP f From m.\n# TYPE f untyped\nf{i=\"m\"} 1\nf{i=\"z\"} 1\nf{i=\"a\"} 1\n",
    );
    // Nor does the order of the blocks (the app that pushed last goes
    // last): z's push again does not make its HELP the first.
    push(&s, "z", "# HELP f From z.\nf{i=\"z\"} 2\n");
    push(&s, "m", "# HELP f From m.\nf{i=\"m\"} 2\n");
    check(
        &s,
        "# HELP f From m.\n# TYPE f untyped\nf{i=\"a\"} 1\nf{i=\"z\"} 2\nf{i=\"m\"} 2\n",
    );
    // Once the app holding the HELP goes, the next one's is used.
    assert!(s.remove("m"));
    check(
        &s,
        "# HELP f From z.\n# TYPE f untyped\nf{i=\"a\"} 1\nf{i=\"z\"} 2\n",
    );
}

#[test]
fn help_and_label_values_are_escaped() {
    let s = store();
    push(
        &s,
        "a",
        "# HELP f Back\\\\slash and\\nnewline \"quoted\".\nf{v=\"q\\\"b\\\\n\\n\"} 1\n",
    );
    check(
        &s,
        "# HELP f Back\\\\slash and\\nnewline \"quoted\".\n# TYPE f untyped\nf{v=\"q\\\"b\\\\n\\n\"} 1\n",
    );
}

#[test]
fn self_metrics_follow_the_pushed_families() {
    let s = store();
    push(&s, "a", "zzz 1\n");
    s.push("b", "aaa 1\nbbb 1\n", AppKind::Poll, "x").unwrap();
    let b = body(&s);
    let start = b.find(SELF_METRICS_START).unwrap();
    let (families, own) = b.split_at(start);
    assert_eq!(
        families,
        "# TYPE aaa untyped\naaa 1\n# TYPE bbb untyped\nbbb 1\n# TYPE zzz untyped\nzzz 1\n"
    );
    assert!(own.contains("\nexporter_proxy_apps 2\n"), "{own}");
    assert!(
        own.contains("\nexporter_proxy_app_series{app=\"a\",kind=\"push\"} 1\n"),
        "{own}"
    );
    assert!(
        own.contains("\nexporter_proxy_app_series{app=\"b\",kind=\"poll\"} 2\n"),
        "{own}"
    );
    // Nothing pushed appears after the self-metrics.
    assert!(!own.contains("zzz"), "{own}");
}

// ---- the render cache ----

#[test]
fn render_is_cached_per_generation() {
    let s = store();
    push(&s, "a", "foo 1\n");
    assert!(s.cached().is_none(), "nothing rendered yet");
    let first = s.render();
    let again = s.render();
    assert!(
        Arc::ptr_eq(&first, &again),
        "re-rendered an unchanged store"
    );
    assert!(Arc::ptr_eq(&s.cached().unwrap(), &first));
    assert_eq!(first.generation, s.generation());

    push(&s, "a", "foo 2\n");
    assert!(s.cached().is_none(), "a push must invalidate the cache");
    let second = s.render();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(second.generation > first.generation);
    assert!(String::from_utf8_lossy(&second.to_bytes()).contains("\nfoo 2\n"));
    // The old body is untouched: a scrape holding it still sees foo 1.
    assert!(String::from_utf8_lossy(&first.to_bytes()).contains("\nfoo 1\n"));
}

#[test]
fn refused_pushes_and_self_metrics_invalidate_the_cache() {
    let s = store();
    push(&s, "a", "foo 1\n");
    let r = s.render();
    // A refusal of an existing app changes its `/apps` status.
    assert!(s.push("a", "not valid\n", AppKind::Push, "x").is_err());
    assert!(!Arc::ptr_eq(&r, &s.render()));
    let r = s.render();
    s.self_metrics().count_push("tcp", "json", true);
    let after = s.render();
    assert!(!Arc::ptr_eq(&r, &after));
    assert!(
        String::from_utf8_lossy(&after.to_bytes()).contains(
            "exporter_proxy_pushes_total{format=\"json\",listener=\"tcp\",result=\"accepted\"} 1\n"
        ),
        "{:?}",
        after.to_bytes()
    );
}

#[test]
fn gzip_body_decompresses_to_the_plain_body() {
    let s = store();
    push(&s, "a", "x{i=\"1\"} 1\nx{i=\"2\"} 2\n");
    let r = s.render();
    assert!(!r.has_gzip());
    let gz = r.gzip();
    assert!(r.has_gzip());
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(gunzip(&gz), r.to_bytes().to_vec());
    // Computed once per generation.
    assert_eq!(r.gzip(), gz);
}

// ---- conflicts between apps ----

#[test]
fn type_conflict_names_the_other_app() {
    let s = store();
    push(&s, "a", "# TYPE foo gauge\nfoo{x=\"a\"} 1\n");
    check_refused(
        &s,
        "b",
        "# TYPE foo counter\nfoo{x=\"b\"} 1\n",
        RejectReason::Conflict,
        "family foo has type counter here but type gauge in app \"a\"",
    );
    assert!(s.apps().iter().all(|a| a.name != "b"));
    // No TYPE line means untyped, whose samples fit a gauge: they join it
    // (see `store::join`).
    push(&s, "b", "foo{x=\"b\"} 1\n");
    check(&s, "# TYPE foo gauge\nfoo{x=\"a\"} 1\nfoo{x=\"b\"} 1\n");
}

#[test]
fn derived_name_collisions_name_the_other_app() {
    let s = store();
    push(
        &s,
        "hist",
        "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n",
    );
    check_refused(
        &s,
        "g",
        "# TYPE lat_count gauge\nlat_count 1\n",
        RejectReason::Conflict,
        "samples named lat_count of family lat_count would collide with family lat of app \"hist\"",
    );
    // The other way round: a summary whose derived names are taken.
    push(&s, "g", "# TYPE req_sum gauge\nreq_sum 1\n");
    check_refused(
        &s,
        "s",
        "# TYPE req summary\nreq{quantile=\"0.5\"} 1\nreq_sum 1\nreq_count 1\n",
        RejectReason::Conflict,
        "samples named req_sum of family req would collide with family req_sum of app \"g\"",
    );
}

#[test]
fn duplicate_series_across_apps() {
    let s = store();
    push(&s, "a", "foo{x=\"1\"} 1\nfoo{x=\"2\"} 1\n");
    check_refused(
        &s,
        "b",
        "foo{x=\"3\"} 1\nfoo{x=\"2\"} 5\n",
        RejectReason::Conflict,
        "series foo{x=\"2\"} is already pushed by app \"a\" (set `receiver.app_label` to tell apps apart)",
    );
    // Label order does not make a series different.
    push(&s, "c", "bar{p=\"1\",q=\"2\"} 1\n");
    check_refused(
        &s,
        "b",
        "bar{q=\"2\",p=\"1\"} 1\n",
        RejectReason::Conflict,
        "series bar{q=\"2\",p=\"1\"} is already pushed by app \"c\" (set `receiver.app_label` to tell apps apart)",
    );
    // Different label values are different series.
    push(&s, "b", "foo{x=\"3\"} 1\n");
    check(
        &s,
        "# TYPE bar untyped\nbar{p=\"1\",q=\"2\"} 1\n# TYPE foo untyped\nfoo{x=\"1\"} 1\nfoo{x=\"2\"} 1\nfoo{x=\"3\"} 1\n",
    );
}

#[test]
fn refusal_of_an_existing_app_keeps_its_old_set() {
    let s = store();
    push(&s, "a", "# TYPE foo gauge\nfoo 1\n");
    push(&s, "b", "# TYPE bar gauge\nbar 1\n");
    check_refused(
        &s,
        "b",
        "# TYPE bar gauge\nbar 2\n# TYPE foo counter\nfoo{x=\"b\"} 1\n",
        RejectReason::Conflict,
        "family foo has type counter here but type gauge in app \"a\"",
    );
    check(&s, "# TYPE bar gauge\nbar 1\n# TYPE foo gauge\nfoo 1\n");
}

#[test]
fn the_only_owner_may_change_a_family_type() {
    let s = store();
    push(&s, "a", "# TYPE foo gauge\nfoo 1\n");
    push(&s, "a", "# TYPE foo counter\nfoo 2\n");
    check(&s, "# TYPE foo counter\nfoo 2\n");
    // Its old type is gone for everyone.
    push(&s, "b", "# TYPE foo counter\nfoo{x=\"b\"} 1\n");
    // With two owners, neither may change it.
    check_refused(
        &s,
        "a",
        "# TYPE foo gauge\nfoo 3\n",
        RejectReason::Conflict,
        "family foo has type gauge here but type counter in app \"b\"",
    );
    // An owner may also turn its histogram into the gauges it reserved.
    push(
        &s,
        "h",
        "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n",
    );
    push(&s, "h", "# TYPE lat_count gauge\nlat_count 1\n");
    check(
        &s,
        "# TYPE foo counter\nfoo 2\nfoo{x=\"b\"} 1\n# TYPE lat_count gauge\nlat_count 1\n",
    );
}

#[test]
fn reserved_names_are_freed_with_their_last_owner() {
    let s = store();
    let hist = "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n";
    push(&s, "h1", hist);
    push(
        &s,
        "h2",
        "# TYPE lat histogram\nlat_bucket{le=\"+Inf\",i=\"2\"} 1\nlat_sum{i=\"2\"} 1\nlat_count{i=\"2\"} 1\n",
    );
    assert!(s.remove("h1"));
    // h2 still owns `lat`: its names stay reserved.
    check_refused(
        &s,
        "g",
        "# TYPE lat_count gauge\nlat_count 1\n",
        RejectReason::Conflict,
        "samples named lat_count of family lat_count would collide with family lat of app \"h2\"",
    );
    // h2 drops the family by re-pushing without it.
    push(&s, "h2", "other 1\n");
    push(&s, "g", "# TYPE lat_count gauge\nlat_count 1\n");
    check(
        &s,
        "# TYPE lat_count gauge\nlat_count 1\n# TYPE other untyped\nother 1\n",
    );
    // And now the gauge blocks the histogram.
    check_refused(
        &s,
        "h1",
        hist,
        RejectReason::Conflict,
        "samples named lat_count of family lat would collide with family lat_count of app \"g\"",
    );
}

#[test]
fn gauge_after_removed_histogram() {
    let s = store();
    push(
        &s,
        "h",
        "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n",
    );
    assert!(s.remove("h"));
    push(&s, "g", "# TYPE lat_count gauge\nlat_count 1\n");
    check(&s, "# TYPE lat_count gauge\nlat_count 1\n");
}

#[test]
fn names_reserved_by_a_removed_family_do_not_stick_to_its_name() {
    let s = store();
    push(
        &s,
        "h",
        "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n",
    );
    assert!(s.remove("h"));
    // A gauge now takes the name `lat`; it reserves `lat` only.
    push(&s, "x", "# TYPE lat gauge\nlat 1\n");
    push(&s, "y", "# TYPE lat_count gauge\nlat_count 1\n");
    check(
        &s,
        "# TYPE lat gauge\nlat 1\n# TYPE lat_count gauge\nlat_count 1\n",
    );
}

// ---- atomic batches ----

#[test]
fn commit_applies_a_batch() {
    let s = store();
    let batch = vec![
        prepare(&s, "a", "foo 1\n"),
        prepare(&s, "b", "bar 1\nbaz 1\n"),
    ];
    assert_eq!(batch[0].app(), "a");
    assert_eq!(batch[1].series(), 2);
    assert_eq!(s.commit(batch, AppKind::Push, "src").unwrap(), 3);
    check(
        &s,
        "# TYPE bar untyped\nbar 1\n# TYPE baz untyped\nbaz 1\n# TYPE foo untyped\nfoo 1\n",
    );
    assert!(s.apps().iter().all(|a| a.source == "src"));
}

#[test]
fn commit_is_all_or_nothing_for_a_new_app() {
    let s = store();
    push(&s, "c", "# TYPE taken gauge\ntaken 1\n");
    let gen = s.generation();
    let batch = vec![
        prepare(&s, "a", "fresh 1\n"),
        prepare(&s, "b", "# TYPE taken counter\ntaken 2\n"),
    ];
    let err = s.commit(batch, AppKind::Push, "src").unwrap_err();
    assert_eq!(err.app, "b");
    assert_eq!(
        err.message,
        "family taken has type counter here but type gauge in app \"c\""
    );
    // `a` was applied first and rolled back.
    assert_eq!(app_names(&s), [("c".to_owned(), 1)]);
    check(&s, "# TYPE taken gauge\ntaken 1\n");
    assert_eq!(s.counts(), (1, 1));
    assert_eq!(s.generation(), gen);
    // Its series are not left in the index.
    push(&s, "d", "fresh 1\n");
}

#[test]
fn commit_rollback_restores_an_existing_app() {
    let s = store();
    push(
        &s,
        "a",
        "# HELP old Old.\n# TYPE old gauge\nold 1\n# TYPE lat_count gauge\nlat_count 1\n",
    );
    push(&s, "c", "# TYPE taken gauge\ntaken 1\n");
    let rows = s.apps();
    let before = pushed(&s);
    let batch = vec![
        // Replaces everything of `a`, even turning its gauge into a histogram.
        prepare(
            &s,
            "a",
            "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n",
        ),
        // Conflicts with `a`'s new set, applied just before in the batch.
        prepare(&s, "b", "# TYPE lat_sum gauge\nlat_sum 1\n"),
    ];
    let err = s.commit(batch, AppKind::Push, "new").unwrap_err();
    assert_eq!(err.reason, RejectReason::Conflict);
    assert_eq!(
        err.message,
        "samples named lat_sum of family lat_sum would collide with family lat of app \"a\""
    );
    assert_eq!(pushed(&s), before);
    assert_eq!(s.apps(), rows, "the old row of `a` is restored as it was");
    assert_eq!(s.counts(), (2, 3));
    // The index is `a`'s old set: its series and names are still taken ...
    check_refused(
        &s,
        "x",
        "# TYPE old gauge\nold 1\n",
        RejectReason::Conflict,
        "series old is already pushed by app \"a\" (set `receiver.app_label` to tell apps apart)",
    );
    check_refused(
        &s,
        "x",
        "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\n",
        RejectReason::Conflict,
        "samples named lat_count of family lat would collide with family lat_count of app \"a\"",
    );
    // ... and what the rolled-back set reserved is free.
    push(&s, "x", "# TYPE lat_sum gauge\nlat_sum 1\n");
}

#[test]
fn commit_rollback_restores_an_app_replaced_in_place() {
    let s = store();
    push(&s, "a", "# TYPE up gauge\nup{x=\"1\"} 1\n");
    push(&s, "c", "# TYPE taken gauge\ntaken 1\n");
    let rows = s.apps();
    let before = pushed(&s);
    let batch = vec![
        // The same series with a new value: replaced without touching the
        // indexes, then taken back.
        prepare(&s, "a", "# TYPE up gauge\nup{x=\"1\"} 2\n"),
        prepare(&s, "b", "# TYPE taken counter\ntaken 2\n"),
    ];
    let err = s.commit(batch, AppKind::Push, "new").unwrap_err();
    assert_eq!(err.app, "b");
    assert_eq!(pushed(&s), before);
    assert_eq!(s.apps(), rows, "the old row of `a` is restored as it was");
    // The index still knows `a`'s series ...
    check_refused(
        &s,
        "x",
        "# TYPE up gauge\nup{x=\"1\"} 3\n",
        RejectReason::Conflict,
        "series up{x=\"1\"} is already pushed by app \"a\" (set `receiver.app_label` to tell apps apart)",
    );
    // ... and the in-place path applies when nothing conflicts.
    push(&s, "a", "# TYPE up gauge\nup{x=\"1\"} 4\n");
    check(
        &s,
        "# TYPE taken gauge\ntaken 1\n# TYPE up gauge\nup{x=\"1\"} 4\n",
    );
}

#[test]
fn a_replace_with_other_series_or_types_updates_the_indexes() {
    let s = store();
    push(&s, "a", "# TYPE m gauge\nm{x=\"1\"} 1\n");
    // Same family and type, another series: the old one is freed.
    push(&s, "a", "# TYPE m gauge\nm{x=\"2\"} 1\n");
    push(&s, "b", "# TYPE m gauge\nm{x=\"1\"} 1\n");
    // Same series, another type: refused against `b`, as a new push would be.
    check_refused(
        &s,
        "a",
        "# TYPE m counter\nm{x=\"2\"} 1\n",
        RejectReason::Conflict,
        "family m has type counter here but type gauge in app \"b\"",
    );
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Random expositions in many spellings: blanks, CRLF, trailing commas,
/// escapes, bound spellings, timestamps, repeated series and declarations,
/// reserved prefixes. Half of them use only valid values and no escapes, so
/// that enough of them are accepted.
fn random_exposition(rng: &mut Rng) -> String {
    let clean = rng.below(2) == 0;
    // The first `valid` items of each list below are valid and escape-free.
    let pick = |rng: &mut Rng, items: &[&'static str], valid: usize| {
        rng.pick(if clean { &items[..valid] } else { items })
    };
    const FAMILIES: &[(&str, &str)] = &[
        ("c_total", "counter"),
        ("g", "gauge"),
        ("h", "histogram"),
        ("s", "summary"),
        ("u", "untyped"),
        ("h_bucket", "gauge"),
        ("exporter_proxy_x", "gauge"),
    ];
    const LABELS: &[&str] = &["app", "job", "instance", "le", "quantile", "x", "y"];
    const VALUES: &[&str] = &[
        "1",
        "1.0",
        "0.5",
        "+Inf",
        "-Inf",
        "1e3",
        "",
        "x y",
        "0.25000",
        "NaN",
        "007",
        "-0",
        "123456789",
        "a\\\"b",
        "a\\nb",
    ];
    const NUMBERS: &[&str] = &[
        "1",
        "1.0",
        "-2.50",
        "+Inf",
        "-inf",
        "NaN",
        "nan",
        ".5",
        "Infinity",
        "1e3",
        "12345678901234567890",
        "0x10",
        "",
        "1e400",
    ];
    const TIMESTAMPS: &[&str] = &["", "", "", " 123", " +5", " 007", " -0", " x", " 1.5"];
    const BLANKS: &[&str] = &["", "", "", " ", "\t", "  "];
    let mut out = String::new();
    // Clean input declares each family once, before its samples.
    let mut helped = std::collections::HashSet::new();
    let mut sampled = std::collections::HashSet::new();
    for line in 0..rng.below(12) {
        let (family, typ) = FAMILIES[rng.below(if clean { 5 } else { FAMILIES.len() })];
        let declare = !clean || !sampled.contains(family);
        match rng.below(10) {
            0 if !clean || helped.insert(family) => {
                out.push_str(&format!("# HELP {family} Some \\ help\\n.\n"));
            }
            1 if declare => {
                sampled.insert(family);
                out.push_str(&format!("# TYPE {family} {typ}\n"));
            }
            2 => out.push_str("# a comment\n\n"),
            _ => {
                sampled.insert(family);
                let name = match (typ, rng.below(4)) {
                    ("histogram", 0) => format!("{family}_sum"),
                    ("histogram", 1) => format!("{family}_count"),
                    ("histogram", _) => format!("{family}_bucket"),
                    ("summary", 0) => format!("{family}_sum"),
                    ("summary", 1) => format!("{family}_count"),
                    _ => family.to_owned(),
                };
                out.push_str(rng.pick(BLANKS));
                out.push_str(&name);
                let mut labels: Vec<String> = Vec::new();
                for _ in 0..rng.below(5) {
                    let label = rng.pick(LABELS);
                    if !clean || !labels.iter().any(|l| l.starts_with(&format!("{label}="))) {
                        labels.push(format!("{label}=\"{}\"", pick(rng, VALUES, 12)));
                    }
                }
                if clean {
                    // Bounds where they belong, and mostly distinct series.
                    let bound = rng.pick(&["1", "1.0", "0.50", "+Inf", "1e-5", "2.5e6"]);
                    labels.retain(|l| !l.starts_with("le=") && !l.starts_with("quantile="));
                    if name.ends_with("_bucket") {
                        labels.push(format!("le=\"{bound}\""));
                    } else if typ == "summary" && name == family {
                        labels.push(format!("quantile=\"{bound}\""));
                    }
                    if rng.below(2) == 0 {
                        labels.retain(|l| !l.starts_with("x="));
                        labels.insert(0, format!("x=\"{line}\""));
                    }
                }
                if !labels.is_empty() || rng.below(4) == 0 {
                    out.push_str(rng.pick(BLANKS));
                    out.push('{');
                    for (i, l) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(rng.pick(BLANKS));
                        out.push_str(l);
                    }
                    if !labels.is_empty() && rng.below(6) == 0 {
                        out.push(',');
                    }
                    out.push('}');
                }
                out.push_str(if rng.below(8) == 0 { "\t" } else { " " });
                out.push_str(pick(rng, NUMBERS, 10));
                out.push_str(pick(rng, TIMESTAMPS, 7));
                out.push_str(rng.pick(BLANKS));
                out.push_str(if rng.below(10) == 0 { "\r\n" } else { "\n" });
            }
        }
    }
    out
}

#[test]
fn the_encoding_path_agrees_with_the_reference_on_random_input() {
    // `prepare_with` compares itself with `prepare_reference` under test and
    // panics on any difference; this feeds it many spellings under every
    // combination of labels the push paths set.
    let stores = [
        store(),
        store_with(StoreOptions {
            app_label: Some("app".to_owned()),
            max_series_per_app: 6,
            ..StoreOptions::default()
        }),
    ];
    let set: &[(&str, &str)] = &[("job", "j"), ("instance", "")];
    let default: &[(&str, &str)] = &[("instance", ""), ("y", "a\"b")];
    let options = [
        PrepareOptions::default(),
        PrepareOptions {
            set,
            ..PrepareOptions::default()
        },
        PrepareOptions {
            default,
            ..PrepareOptions::default()
        },
        PrepareOptions {
            set,
            default,
            ..PrepareOptions::default()
        },
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused, mut encoded) = (0, 0, 0);
    for _ in 0..4000 {
        let text = random_exposition(&mut rng);
        let direct = exposition::parse_encoded(
            &text,
            &ParseLimits::default(),
            &exposition::EncodeOptions::default(),
        );
        if matches!(direct, Ok(Some(f)) if f.iter().any(|f| !f.keys.is_empty())) {
            encoded += 1;
        }
        for s in &stores {
            for o in &options {
                match s.prepare_with("app1", &text, o) {
                    Ok(_) => accepted += 1,
                    Err(_) => refused += 1,
                }
            }
        }
    }
    // Both outcomes are well represented, so both were compared.
    assert!(accepted > 3000, "only {accepted} accepted");
    assert!(refused > 3000, "only {refused} refused");
    // And the encoding path, not the fallback, handled many of them.
    assert!(encoded > 800, "only {encoded} went the encoding path");
}

#[test]
fn commit_conflict_within_the_batch() {
    let s = store();
    let batch = vec![
        prepare(&s, "a", "shared{x=\"1\"} 1\n"),
        prepare(&s, "b", "shared{x=\"1\"} 2\n"),
    ];
    let err = s.commit(batch, AppKind::Push, "src").unwrap_err();
    assert_eq!(err.app, "b");
    assert!(err.message.contains("already pushed by app \"a\""), "{err}");
    assert_eq!(s.counts(), (0, 0));
    assert_eq!(pushed(&s), "");
}

// ---- limits ----

#[test]
fn max_apps() {
    let s = store_with(StoreOptions {
        max_apps: 2,
        ..StoreOptions::default()
    });
    push(&s, "a", "a 1\n");
    push(&s, "b", "b 1\n");
    check_refused(
        &s,
        "c",
        "c 1\n",
        RejectReason::TooManyApps,
        "the store already holds the maximum of 2 applications",
    );
    // Existing apps may still push.
    push(&s, "a", "a 2\n");
    // A removal makes room.
    assert!(s.remove("b"));
    push(&s, "c", "c 1\n");
    assert_eq!(app_names(&s), [("a".to_owned(), 1), ("c".to_owned(), 1)]);
}

#[test]
fn max_series_per_app() {
    let s = store_with(StoreOptions {
        max_series_per_app: 2,
        ..StoreOptions::default()
    });
    assert_eq!(push(&s, "a", "x 1\ny 1\n"), 2);
    check_refused(
        &s,
        "a",
        "x 1\ny 1\nz 1\n",
        RejectReason::TooManySeries,
        "line 3: too many series: more than 2",
    );
    check(&s, "# TYPE x untyped\nx 1\n# TYPE y untyped\ny 1\n");
}

// ---- app label ----

#[test]
fn app_label_is_injected_first_and_replaces_a_pushed_one() {
    let s = store_with(StoreOptions {
        app_label: Some("app".to_owned()),
        ..StoreOptions::default()
    });
    push(
        &s,
        "one",
        "up 1\nreq{code=\"200\"} 5\nreq{app=\"fake\",code=\"500\"} 1\n",
    );
    // The same series from another app is now a different series.
    push(&s, "two", "up 1\nreq{code=\"200\"} 7\n");
    check(
        &s,
        "# TYPE req untyped\n\
         req{app=\"one\",code=\"200\"} 5\nreq{app=\"one\",code=\"500\"} 1\nreq{app=\"two\",code=\"200\"} 7\n\
         # TYPE up untyped\nup{app=\"one\"} 1\nup{app=\"two\"} 1\n",
    );
    // An app cannot pass its series off as another app's.
    push(&s, "three", "req{app=\"two\",code=\"200\"} 9\n");
    assert!(
        pushed(&s).contains("\nreq{app=\"three\",code=\"200\"} 9\n"),
        "{}",
        pushed(&s)
    );
    assert_eq!(s.counts(), (3, 6));
}

// ---- app names ----

#[test]
fn invalid_app_names() {
    let s = store();
    for (app, message) in [
        ("", "the application name is empty"),
        (
            "a\nb",
            "the application name contains the control character '\\n'",
        ),
        (
            "tab\there",
            "the application name contains the control character '\\t'",
        ),
        (
            "del\u{7f}",
            "the application name contains the control character '\\u{7f}'",
        ),
    ] {
        let err = s.push(app, "x 1\n", AppKind::Push, "test").unwrap_err();
        assert_eq!(err.reason, RejectReason::InvalidAppName, "{app:?}");
        assert_eq!(err.message, message, "{app:?}");
        assert_eq!(err.app, app);
    }
    assert_eq!(s.counts(), (0, 0));
}

#[test]
fn app_name_length_limit() {
    let s = store();
    let longest = "a".repeat(MAX_APP_NAME_BYTES);
    push(&s, &longest, "x 1\n");
    let err = s
        .push(
            &"a".repeat(MAX_APP_NAME_BYTES + 1),
            "y 1\n",
            AppKind::Push,
            "test",
        )
        .unwrap_err();
    assert_eq!(err.reason, RejectReason::InvalidAppName);
    assert_eq!(err.app, "a".repeat(64));
    // 86 three-byte characters: 258 bytes. The name in the error is cut to
    // at most 64 bytes, on a character boundary.
    let long = "€".repeat(86);
    let err = s.push(&long, "y 1\n", AppKind::Push, "test").unwrap_err();
    assert_eq!(err.reason, RejectReason::InvalidAppName);
    assert_eq!(err.message, "the application name is longer than 256 bytes");
    assert_eq!(err.app, "€".repeat(21));
    assert_eq!(app_names(&s), [(longest, 1)]);
    // Unicode that is not a control character is fine.
    push(&s, "café ☕ app", "z 1\n");
}

#[test]
fn reserved_prefix_is_refused() {
    let s = store();
    check_refused(
        &s,
        "a",
        "ok 1\n# TYPE exporter_proxy_apps gauge\nexporter_proxy_apps 99\n",
        RejectReason::Conflict,
        "family exporter_proxy_apps uses the prefix exporter_proxy_ reserved for the proxy's own metrics",
    );
    // Only the prefix with its underscore is reserved.
    push(&s, "a", "exporter_proxy 1\nexporter_proxyx 1\n");
}

#[test]
fn parse_errors_and_byte_order_mark() {
    let s = store();
    push(&s, "a", "good 1\n");
    let err = s.prepare("a", "good 2\nbad line here\n").unwrap_err();
    assert_eq!(err.reason, RejectReason::ParseError);
    assert!(err.message.starts_with("line 2: "), "{err}");
    assert_eq!(err.to_string(), format!("app \"a\": {}", err.message));
    check_refused(
        &s,
        "a",
        "good 2\nbad line here\n",
        RejectReason::ParseError,
        &err.message,
    );
    check_refused(
        &s,
        "a",
        "\u{feff}x 1\n",
        RejectReason::ParseError,
        "line 1: unexpected byte order mark; send plain UTF-8",
    );
    check(&s, "# TYPE good untyped\ngood 1\n");
}

// ---- rejections in /apps ----

#[test]
fn rejection_marks_an_existing_app_until_its_next_good_push() {
    let s = store();
    push(&s, "a", "foo 1\n");
    push(&s, "b", "# TYPE bar gauge\nbar 1\n");
    let before = Utc::now();
    let err = s
        .push(
            "a",
            "# TYPE bar counter\nbar{x=\"a\"} 1\n",
            AppKind::Push,
            "test",
        )
        .unwrap_err();
    let a = &s.apps()[0];
    assert_eq!(a.name, "a");
    assert_eq!(a.status(), "rejected");
    assert_eq!(a.last_error.as_deref(), Some(err.message.as_str()));
    assert!(a.last_error_time.is_some_and(|t| t >= before));
    // The old set is still served.
    assert_eq!(a.series, 1);
    assert!(pushed(&s).contains("\nfoo 1\n"));
    assert_eq!(s.apps()[1].status(), "ok", "only the pushing app is marked");

    push(&s, "a", "foo 2\n");
    let a = &s.apps()[0];
    assert_eq!(a.status(), "ok");
    assert_eq!(a.last_error, None);
    assert_eq!(a.last_error_time, None);
}

#[test]
fn record_rejection_directly() {
    let s = store();
    push(&s, "a", "foo 1\n");
    let e = PushError {
        reason: RejectReason::Timeout,
        app: "a".to_owned(),
        message: "read timed out".to_owned(),
    };
    s.record_rejection(&e);
    assert_eq!(s.apps()[0].last_error.as_deref(), Some("read timed out"));
    // Unknown apps are not created by a rejection.
    s.record_rejection(&PushError {
        app: "ghost".to_owned(),
        ..e
    });
    assert_eq!(app_names(&s), [("a".to_owned(), 1)]);
}

#[test]
fn set_labels_that_make_series_equal_are_refused() {
    let s = store_with(StoreOptions {
        app_label: Some("app".to_owned()),
        ..StoreOptions::default()
    });
    check_refused(
        &s,
        "a",
        "foo{app=\"x\",z=\"1\"} 1\nfoo{app=\"y\",z=\"1\"} 2\n",
        RejectReason::Conflict,
        "series foo{app=\"a\",z=\"1\"} appears twice once the label(s) app are set: the push has series that differ only in them",
    );
    // Distinct series stay fine.
    assert_eq!(
        push(
            &s,
            "a",
            "foo{app=\"x\",z=\"1\"} 1\nfoo{app=\"y\",z=\"2\"} 2\n"
        ),
        2
    );
    assert_eq!(s.counts(), (1, 2));
}

#[test]
fn merge_refuses_collisions_with_the_apps_own_families() {
    let s = store();
    push(&s, "m", "# TYPE lat_count gauge\nlat_count 1\n");
    let p = prepare(
        &s,
        "m",
        "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n",
    );
    let before = pushed(&s);
    let err = s.commit_merge(p, AppKind::Push, "test").unwrap_err();
    assert_eq!(err.reason, RejectReason::Conflict);
    assert!(err.message.contains("lat_count"), "{err}");
    assert_eq!(pushed(&s), before);
    // Without the colliding family the merge applies and keeps the rest.
    push(&s, "m", "# TYPE keep gauge\nkeep 1\n");
    let p = prepare(&s, "m", "# TYPE other gauge\nother 2\n");
    s.commit_merge(p, AppKind::Push, "test").unwrap();
    let b = pushed(&s);
    assert!(b.contains("keep 1\n") && b.contains("other 2\n"), "{b}");
}

#[test]
fn le_and_quantile_are_printed_as_go_floats() {
    let s = store();
    push(
        &s,
        "h",
        "# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"1000000.0\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n# TYPE q summary\nq{quantile=\"0.50\"} 1\nq_sum 1\nq_count 1\n# TYPE g gauge\ng{le=\"1.0\"} 1\n",
    );
    let b = pushed(&s);
    assert!(
        b.contains("h_bucket{le=\"1\"} 1\n") && b.contains("h_bucket{le=\"1e+06\"} 1\n"),
        "{b}"
    );
    assert!(b.contains("q{quantile=\"0.5\"} 1\n"), "{b}");
    assert!(
        b.contains("g{le=\"1.0\"} 1\n"),
        "only histogram/summary labels: {b}"
    );
}

#[test]
fn merge_interleaves_old_and_new_families() {
    let s = store();
    push(&s, "m", "a 1\nc 1\ne 1\n");
    let p = prepare(&s, "m", "b 2\nc 2\nd 2\n");
    assert_eq!(s.commit_merge(p, AppKind::Push, "test").unwrap(), 5);
    check(
        &s,
        "# TYPE a untyped\na 1\n# TYPE b untyped\nb 2\n# TYPE c untyped\nc 2\n# TYPE d untyped\nd 2\n# TYPE e untyped\ne 1\n",
    );
}

#[tokio::test(start_paused = true)]
async fn apps_expire_after_their_ttl_with_paused_time() {
    use std::time::Duration;
    let s = store_with(StoreOptions {
        default_ttl: Ttl::After(Duration::from_secs(60)),
        ..StoreOptions::default()
    });
    push(&s, "short", "short_up 1\n");
    s.push_with_ttl(
        "forever",
        "forever_up 1\n",
        AppKind::Push,
        "test",
        Some(Ttl::Never),
    )
    .unwrap();
    s.push_with_ttl(
        "long",
        "long_up 1\n",
        AppKind::Push,
        "test",
        Some(Ttl::After(Duration::from_secs(600))),
    )
    .unwrap();
    let info = |name: &str| s.apps().into_iter().find(|a| a.name == name);
    assert_eq!(
        info("short").unwrap().ttl,
        Ttl::After(Duration::from_secs(60))
    );
    assert_eq!(
        info("short").unwrap().expires_in,
        Some(Duration::from_secs(60))
    );
    assert_eq!(info("forever").unwrap().expires_in, None);

    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(s.expire(tokio::time::Instant::now()), Vec::<String>::new());
    assert_eq!(
        info("short").unwrap().expires_in,
        Some(Duration::from_secs(1))
    );
    // A new push restarts the clock.
    push(&s, "short", "short_up 2\n");
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(s.expire(tokio::time::Instant::now()), Vec::<String>::new());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(s.expire(tokio::time::Instant::now()), ["short"]);
    assert!(info("short").is_none());
    assert!(!body(&s).contains("short_up"));
    assert!(body(&s).contains("exporter_proxy_expired_apps_total 1\n"));
    // Expiry is per app: the others are untouched.
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(s.expire(tokio::time::Instant::now()), ["long"]);
    assert!(info("forever").is_some());
    // Polled apps never expire through the push TTL.
    s.push("polled", "polled_up 1\n", AppKind::Poll, "test")
        .unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(s.expire(tokio::time::Instant::now()), Vec::<String>::new());
}

#[test]
fn ttl_parsing() {
    use std::time::Duration;
    assert_eq!(Ttl::parse("never"), Ok(Ttl::Never));
    assert_eq!(Ttl::parse(" NEVER "), Ok(Ttl::Never));
    assert_eq!(
        Ttl::parse("1h30m"),
        Ok(Ttl::After(Duration::from_secs(5400)))
    );
    assert!(Ttl::parse("0s").unwrap_err().contains("never"));
    assert!(Ttl::parse("soon").is_err());
    assert_eq!(Ttl::After(Duration::from_secs(90)).describe(), "1m 30s");
}

/// Found while writing the `store` fuzz target, whose invariant is that
/// `/metrics` always parses: `le="1"` and `le="1.0"` are
/// distinct series to the parser but the same once written as Go floats, and
/// were both accepted: `/metrics` then had a duplicate series, which makes
/// Prometheus fail the whole scrape.
#[test]
fn bounds_equal_once_normalised_are_refused() {
    let s = store();
    push(&s, "kept", "kept 1\n");
    check_refused(
        &s,
        "h",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
        RejectReason::Conflict,
        "series h_bucket{le=\"1\"} appears twice once le and quantile values are written as Go floats (le=\"1.0\" is le=\"1\"): expected each bucket bound and quantile once",
    );
    check_refused(
        &s,
        "q",
        "# TYPE q summary\nq{quantile=\"0.50\"} 1\nq{quantile=\".5\"} 2\n",
        RejectReason::Conflict,
        "series q{quantile=\"0.5\"} appears twice once le and quantile values are written as Go floats (le=\"1.0\" is le=\"1\"): expected each bucket bound and quantile once",
    );
    let b = body(&s);
    crate::exposition::parse(&b, &ParseLimits::default())
        .unwrap_or_else(|e| panic!("/metrics is invalid: {e}\n{b}"));
}

#[test]
fn blocks_go_in_the_order_their_apps_last_changed() {
    let s = store();
    let text = |app: &str, v: u32| {
        format!("# TYPE f gauge\nf{{i=\"{app}\"}} {v}\n# TYPE g gauge\ng{{i=\"{app}\"}} {v}\n")
    };
    let order = |s: &Store| {
        let page = pushed(s);
        let of = |family: &str| -> Vec<String> {
            page.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .map(|l| l[l.find('"').unwrap() + 1..l.rfind('"').unwrap()].to_owned())
                .collect()
        };
        let f = of("f");
        assert_eq!(f, of("g"), "every family in the same order:\n{page}");
        f
    };
    for app in ["c", "a", "b"] {
        push(&s, app, &text(app, 1));
    }
    assert_eq!(order(&s), ["c", "a", "b"]);
    // New values for the same series: the app goes last.
    push(&s, "c", &text("c", 2));
    assert_eq!(order(&s), ["a", "b", "c"]);
    // A refused push changes nothing.
    assert!(s
        .push("a", "f{i=\"a\"} x\n", AppKind::Push, "test")
        .is_err());
    assert_eq!(order(&s), ["a", "b", "c"]);
    // Another set of series: last as well.
    push(&s, "a", &format!("{}h 1\n", text("a", 3)));
    assert_eq!(order(&s), ["b", "c", "a"]);
    // A new app goes last; one that goes leaves the others in place.
    push(&s, "d", &text("d", 1));
    assert!(s.remove("c"));
    assert_eq!(order(&s), ["b", "a", "d"]);
}
