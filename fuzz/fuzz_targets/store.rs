//! Pushes of arbitrary text by a few apps into one `Store`, checking the
//! product's central invariants after every push:
//! * `/metrics` (the rendered store) is always a valid exposition: our own
//!   parser accepts it (one TYPE per family, families contiguous, no
//!   duplicate series, no clashing derived names);
//! * a refused push changes no series;
//! * the store's series count is what the accepted pushes add up to.
//!
//! Input: the first byte chooses options (the app label on or off); the
//! rest, if UTF-8, is split on NUL into pushes, each for app `a`, `b` or
//! `c` by its first byte.

#![no_main]

use exporter_proxy::exposition::{parse, ParseLimits};
use exporter_proxy::store::{AppKind, Store, StoreOptions};
use exporter_proxy::telemetry::SelfMetrics;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let store = Store::new(
        StoreOptions {
            max_series_per_app: 64,
            max_apps: 3,
            app_label: (flags & 1 == 1).then(|| "app".to_owned()),
            ..StoreOptions::default()
        },
        SelfMetrics::new(),
    );
    for chunk in text.split('\0') {
        // The first byte picks the app; skip a chunk whose first character
        // is longer than one byte.
        let Some(&b) = chunk.as_bytes().first() else {
            continue;
        };
        if !chunk.is_char_boundary(1) {
            continue;
        }
        let (app, push) = (["a", "b", "c"][usize::from(b % 3)], &chunk[1..]);
        let before = store.series_snapshot();
        match store.push(app, push, AppKind::Push, "fuzz") {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(
                    store.series_snapshot(),
                    before,
                    "refused push {e} changed the store"
                );
            }
        }
        let body = store.render().to_bytes();
        let body = std::str::from_utf8(&body).expect("/metrics is UTF-8");
        if let Err(e) = parse(body, &ParseLimits::default()) {
            panic!("/metrics is not a valid exposition: {e}\n{body}");
        }
        let total: usize = store.series_snapshot().iter().map(|(_, s)| s.len()).sum();
        assert_eq!(store.counts().1, total, "series index and apps disagree");
    }
});
