//! The gzip body of `/metrics` as the store builds it ([`super::gzip`]):
//! always exactly the plain body, whatever changed since the last render,
//! and close to `gzip -6` in size.

use std::io::{Read, Write as _};
use std::time::Duration;

use super::*;

/// Decodes with a reader that reads one gzip member only: the body must
/// be a single member.
fn gunzip_one_member(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// One app's text: `families` families of `series` series each, like the
/// benchmark's workload (the same family names in every app).
fn app_text(app: usize, families: usize, series: usize, round: usize) -> String {
    let mut s = String::new();
    for f in 0..families {
        s.push_str(&format!("# HELP fam_{f}_total Requests of kind {f}.\n"));
        s.push_str(&format!("# TYPE fam_{f}_total counter\n"));
        for i in 0..series {
            s.push_str(&format!(
                "fam_{f}_total{{app=\"app-{app}\",route=\"/api/v1/items/{}\",code=\"{}\"}} {}\n",
                i / 4,
                200 + i % 4,
                (app * 7919 + i * 104_729 + round * 31) % 1_000_003
            ));
        }
    }
    s
}

/// Asserts that the gzip body of the current render is the plain body,
/// in every format.
#[track_caller]
fn check(s: &Store) {
    let r = s.render();
    let plain = r.to_bytes();
    assert_eq!(gunzip_one_member(&r.gzip()), plain.to_vec());
    for f in [Format::Text, Format::OpenMetrics, Format::Protobuf] {
        assert_eq!(
            gunzip_one_member(&r.gzip_of(f)),
            r.bytes_of(f).to_vec(),
            "{f:?}"
        );
    }
}

#[test]
fn gzip_matches_the_plain_body_after_pushes_deletes_and_orders() {
    let s = Store::new(StoreOptions::default(), SelfMetrics::new());
    check(&s);
    // Apps arrive in a scrambled order, with scrapes in between.
    for k in 0..60 {
        let app = (k * 37) % 60;
        s.push(
            &format!("a{app}"),
            &app_text(app, 3, 40, 0),
            AppKind::Push,
            "t",
        )
        .unwrap();
        if k % 7 == 0 {
            check(&s);
        }
    }
    check(&s);
    // Re-pushes with new values, one app at a time, a scrape after each.
    for (round, app) in [5usize, 0, 59, 31, 5].into_iter().enumerate() {
        s.push(
            &format!("a{app}"),
            &app_text(app, 3, 40, round + 1),
            AppKind::Push,
            "t",
        )
        .unwrap();
        check(&s);
    }
    // An app with more families (a new family in the middle of the page),
    // then fewer.
    s.push("a10", &app_text(10, 5, 40, 9), AppKind::Push, "t")
        .unwrap();
    check(&s);
    s.push("a10", &app_text(10, 1, 40, 9), AppKind::Push, "t")
        .unwrap();
    check(&s);
    // Deletes: first, last, middle.
    for app in ["a0", "a59", "a30"] {
        assert!(s.remove(app));
        check(&s);
    }
    // Several changes between two gzip scrapes (renders in between
    // without gzip).
    for app in 1..5 {
        s.push(
            &format!("a{app}"),
            &app_text(app, 3, 40, 20),
            AppKind::Push,
            "t",
        )
        .unwrap();
        let _ = s.render();
    }
    assert!(s.remove("a20"));
    let _ = s.render();
    check(&s);
    // Everything gone.
    for app in 0..60 {
        s.remove(&format!("a{app}"));
    }
    check(&s);
}

#[tokio::test(start_paused = true)]
async fn gzip_matches_the_plain_body_after_expiry() {
    let s = Store::new(StoreOptions::default(), SelfMetrics::new());
    for app in 0..20 {
        let ttl = Ttl::After(Duration::from_secs(10 + (app as u64 % 3) * 10));
        s.push_with_ttl(
            &format!("e{app}"),
            &app_text(app, 2, 50, 0),
            AppKind::Push,
            "t",
            Some(ttl),
        )
        .unwrap();
    }
    check(&s);
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!s.expire(tokio::time::Instant::now()).is_empty());
        check(&s);
    }
    assert_eq!(s.counts().0, 0);
}

/// `gzip -6` (the program) of `text`, in bytes.
fn gzip6_len(text: &[u8]) -> usize {
    let mut child = std::process::Command::new("gzip")
        .arg("-6")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the gzip program is installed");
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout.len()
}

#[test]
fn gzip_body_is_within_ten_percent_of_gzip_6() {
    // Two shapes: many apps with small blocks, few apps with large ones.
    for (apps, series) in [(200, 25), (10, 2000)] {
        let s = Store::new(StoreOptions::default(), SelfMetrics::new());
        for app in 0..apps {
            s.push(
                &format!("app-{app}"),
                &app_text(app, 4, series, 0),
                AppKind::Push,
                "t",
            )
            .unwrap();
        }
        let r = s.render();
        let ours = r.gzip().len();
        let reference = gzip6_len(&r.to_bytes());
        assert!(
            ours * 10 <= reference * 11,
            "{apps}x{series}: {ours} bytes against {reference} for gzip -6"
        );
        // The same after one app changed (the reused runs are as good).
        s.push("app-3", &app_text(3, 4, series, 1), AppKind::Push, "t")
            .unwrap();
        let r = s.render();
        let ours = r.gzip().len();
        let reference = gzip6_len(&r.to_bytes());
        assert!(
            ours * 10 <= reference * 11,
            "{apps}x{series} after a push: {ours} bytes against {reference} for gzip -6"
        );
        eprintln!("{apps}x{series}: {ours} bytes, gzip -6 {reference}");
    }
}

#[test]
fn old_runs_are_dropped_when_no_one_asks_for_gzip() {
    let s = Store::new(StoreOptions::default(), SelfMetrics::new());
    s.push("a", &app_text(0, 2, 500, 0), AppKind::Push, "t")
        .unwrap();
    let _ = s.render().gzip();
    // Renders without gzip hand the runs on for a while...
    s.push("a", &app_text(0, 2, 500, 1), AppKind::Push, "t")
        .unwrap();
    let r = s.render();
    assert!(r.gzip_seed.lock().unwrap().is_some());
    // ...then drop them, so the replaced blocks they hold are freed.
    for round in 2..20 {
        s.push("a", &app_text(0, 2, 500, round), AppKind::Push, "t")
            .unwrap();
        let _ = s.render();
    }
    let r = s.render();
    assert!(r.gzip_seed.lock().unwrap().is_none());
    // The body is still right, compressed whole.
    check(&s);
}

#[test]
fn after_one_push_only_the_runs_of_that_app_are_compressed() {
    let s = Store::new(StoreOptions::default(), SelfMetrics::new());
    for app in 0..100 {
        s.push(
            &format!("a{app:03}"),
            &app_text(app, 4, 100, 0),
            AppKind::Push,
            "t",
        )
        .unwrap();
    }
    let before = s.render();
    let _ = before.gzip();
    let page = before.len() as u64;
    s.push("a042", &app_text(42, 4, 100, 1), AppKind::Push, "t")
        .unwrap();
    let after = s.render();
    let _ = after.gzip();
    let (old, new) = (before.gzip.get().unwrap(), after.gzip.get().unwrap());
    let (runs, bytes) = new.index.fresh_since(&old.index);
    eprintln!("{runs} runs, {bytes} bytes of a {page}-byte page compressed again");
    // Four changed blocks: each touches its run and at most the next two
    // (where the cuts resynchronise), plus the self-metrics' run.
    assert!(runs <= 4 * 3 + 1, "{runs} runs compressed again");
    assert!(
        bytes * 5 <= page,
        "{bytes} bytes of a {page}-byte page compressed again"
    );
}
