//! The push path's one-pass parser (`exposition::parse_encoded`, behind
//! `Store::prepare_with`) against the reference (`exposition::parse`, then
//! encoding, behind `Store::prepare_reference`).
//!
//! Invariant: for every input and every combination of the labels the push
//! paths set, both give the same prepared push (families, bytes, series
//! keys) or the same error. Without options, whenever the one-pass parser
//! answers on its own, its blocks are the reference's samples encoded.
//!
//! Input: the first byte chooses the options (app label, Pushgateway-style
//! set labels, default labels, a series limit); the rest, if UTF-8, is the
//! pushed text.

#![no_main]

use exporter_proxy::exposition::{
    encode_sample, parse, parse_encoded, series_key, EncodeOptions, ParseLimits,
};
use exporter_proxy::store::{PrepareOptions, Store, StoreOptions};
use exporter_proxy::telemetry::SelfMetrics;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };

    let limits = ParseLimits::default();
    if let (Ok(Some(got)), Ok(exp)) = (
        parse_encoded(text, &limits, &EncodeOptions::default()),
        parse(text, &limits),
    ) {
        assert_eq!(got.len(), exp.families.len());
        for (g, f) in got.iter().zip(&exp.families) {
            assert_eq!((&g.name, &g.help, g.typ), (&f.name, &f.help, f.typ));
            let mut body = Vec::new();
            for s in &f.samples {
                encode_sample(&mut body, s, &[]);
            }
            assert_eq!(&*g.body.text(), &body[..], "input: {text:?}");
            let keys: Vec<u64> = f.samples.iter().map(|s| series_key(s, &[])).collect();
            assert_eq!(g.keys, keys, "input: {text:?}");
        }
    }

    let store = Store::new(
        StoreOptions {
            max_series_per_app: if flags & 8 == 0 { 0 } else { 4 },
            app_label: (flags & 1 == 1).then(|| "app".to_owned()),
            ..StoreOptions::default()
        },
        SelfMetrics::new(),
    );
    let set: &[(&str, &str)] = if flags & 2 == 0 {
        &[]
    } else {
        &[("job", "j\"\\\n"), ("instance", "")]
    };
    let default: &[(&str, &str)] = if flags & 4 == 0 {
        &[]
    } else {
        &[("instance", ""), ("x", "1")]
    };
    let opts = PrepareOptions {
        set,
        default,
        ..PrepareOptions::default()
    };
    let fast = store.prepare_with("a", text, &opts);
    let reference = store.prepare_reference("a", text, &opts);
    assert_eq!(fast, reference, "input: {text:?}");
});
