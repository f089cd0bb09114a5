//! Protobuf pushes and text pushes into one `Store`, checking after each
//! that every format of `/metrics` holds together:
//! * text 0.0.4 parses (our parser);
//! * the delimited protobuf body decodes, with one message per family of
//!   the text body, in the same order;
//! * the OpenMetrics body ends with `# EOF` and has one `# TYPE` per family;
//! * a refused push changes no series.
//!
//! Input: split on NUL; a chunk whose first byte is even is a protobuf
//! push (the rest, delimited `MetricFamily` messages), odd a text push
//! (the rest, if UTF-8); the first byte also picks the app.

#![no_main]

use exporter_proxy::exposition::{parse, proto, ParseLimits};
use exporter_proxy::store::{AppKind, Format, PrepareOptions, Store, StoreOptions};
use exporter_proxy::telemetry::SelfMetrics;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = Store::new(
        StoreOptions {
            max_series_per_app: 64,
            max_apps: 3,
            ..StoreOptions::default()
        },
        SelfMetrics::new(),
    );
    for chunk in data.split(|b| *b == 0) {
        let Some((&b, rest)) = chunk.split_first() else {
            continue;
        };
        let app = ["a", "b", "c"][usize::from(b % 3)];
        let before = store.series_snapshot();
        let prepared = if b % 2 == 0 {
            let Ok(families) = proto::decode_delimited(rest) else {
                continue;
            };
            store.prepare_protobuf(app, families, &PrepareOptions::default())
        } else {
            let Ok(text) = std::str::from_utf8(rest) else {
                continue;
            };
            store.prepare(app, text)
        };
        let result = prepared.and_then(|p| store.commit(vec![p], AppKind::Gateway, "fuzz"));
        if let Err(e) = result {
            assert_eq!(
                store.series_snapshot(),
                before,
                "refused push {e} changed the store"
            );
        }
        let rendered = store.render();
        let text = rendered.to_bytes();
        let text = std::str::from_utf8(&text).expect("/metrics is UTF-8");
        let exp = parse(text, &ParseLimits::default())
            .unwrap_or_else(|e| panic!("/metrics is not a valid exposition: {e}\n{text}"));
        let families = proto::decode_delimited(&rendered.bytes_of(Format::Protobuf))
            .expect("the protobuf body decodes");
        let names: Vec<&str> = families
            .iter()
            .map(|f| f.name.as_deref().unwrap_or(""))
            .collect();
        let text_names: Vec<&str> = exp.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names, text_names,
            "protobuf and text have the same families"
        );
        let om = rendered.bytes_of(Format::OpenMetrics);
        let om = std::str::from_utf8(&om).expect("OpenMetrics is UTF-8");
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert_eq!(
            om.lines().filter(|l| l.starts_with("# TYPE ")).count(),
            exp.families.len(),
            "one TYPE per family:\n{om}"
        );
    }
});
