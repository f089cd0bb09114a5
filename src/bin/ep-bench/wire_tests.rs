//! Issue 19, point 3, on the benchmark's own workload: the proxy's gzip
//! `/metrics` body at 100 apps × 1,000 series and at 1,000 × 100 (the
//! steady scenario's page) is within 10% of `gzip -6` of the same page
//! (before: 877 KB against 662 KB, +32%, at 100 × 1,000), also right after
//! one app pushed new values.

use std::io::Read;

use exporter_proxy::store::{AppKind, Store, StoreOptions};
use exporter_proxy::telemetry::SelfMetrics;

use crate::steady::gzip6_len;
use crate::workload;

#[track_caller]
fn check(store: &Store, when: &str) {
    let r = store.render();
    let plain = r.to_bytes();
    let gz = r.gzip();
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain.to_vec(), "{when}: decodes to the page");
    let reference = gzip6_len(&plain);
    eprintln!(
        "{when}: page {} bytes, gzip body {} bytes, gzip -6 {reference}",
        plain.len(),
        gz.len()
    );
    assert!(
        gz.len() * 10 <= reference * 11,
        "{when}: {} bytes against {reference} for gzip -6",
        gz.len()
    );
}

/// Loads `apps` × `series` of the benchmark's workload, checks the body,
/// then after one app's push.
fn shape(apps: usize, series: usize) {
    let store = Store::new(StoreOptions::default(), SelfMetrics::new());
    for app in 0..apps {
        let text = workload::app_text(app, series, 0);
        store
            .push(&workload::app_name(app), &text, AppKind::Push, "bench")
            .unwrap();
    }
    check(&store, &format!("{apps}x{series} after the load"));
    let text = workload::app_text(42, series, 1);
    store
        .push(&workload::app_name(42), &text, AppKind::Push, "bench")
        .unwrap();
    check(&store, &format!("{apps}x{series} after one push"));
}

#[test]
fn gzip_body_at_100x1000_is_within_ten_percent_of_gzip_6() {
    shape(100, 1000);
}

/// The steady scenario's page: small blocks (about 1 KB per app and
/// family), the shape where runs lose most against one stream.
#[test]
fn gzip_body_at_1000x100_is_within_ten_percent_of_gzip_6() {
    shape(1000, 100);
}
