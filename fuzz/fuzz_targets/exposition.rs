//! The text exposition parser with the default limits, and the encoder.
//!
//! Invariants that hold for correct code:
//! * whatever `parse` accepts, `encode` writes text that `parse` accepts
//!   again, to the same families and samples, and encoding that gives the
//!   same bytes (encode ∘ parse is idempotent);
//! * every accepted series is unique (by `series_key`);
//! * tighter limits only ever refuse more, and what they accept respects them.

#![no_main]

use std::collections::HashSet;

use exporter_proxy::exposition::{encode, parse, series_key, ParseLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = ParseLimits::default();
    let tight = ParseLimits {
        max_series: 3,
        max_line_bytes: 64,
    };
    let parsed = parse(text, &limits);
    let parsed_tight = parse(text, &tight);
    let exp = match parsed {
        Ok(exp) => exp,
        Err(e) => {
            assert!(e.line >= 1, "error line numbers are 1-based: {e:?}");
            assert!(
                parsed_tight.is_err(),
                "tight limits accepted what defaults refused"
            );
            return;
        }
    };
    if let Ok(t) = &parsed_tight {
        assert_eq!(t, &exp, "the limits changed the result");
        assert!(t.families.iter().map(|f| f.samples.len()).sum::<usize>() <= 3);
        assert!(text.split('\n').all(|l| l.len() <= 64));
    }

    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for family in &exp.families {
        assert!(
            names.insert(family.name.as_str()),
            "family {} twice",
            family.name
        );
        for s in &family.samples {
            assert!(keys.insert(series_key(s, &[])), "series {s:?} twice");
        }
    }

    let encoded = encode(&exp);
    let again = parse(&encoded, &limits).unwrap_or_else(|e| {
        panic!("our encoding is refused: {e}\ninput: {text:?}\nencoded: {encoded:?}")
    });
    // Samples the parser dropped (`Exposition::dropped`) are not in the
    // encoding, which has nothing left to drop.
    assert_eq!(
        again.families, exp.families,
        "re-parse differs\ninput: {text:?}\nencoded: {encoded:?}"
    );
    assert!(again.dropped.is_empty(), "our encoding has samples to drop");
    assert_eq!(encode(&again), encoded, "encoding is not stable");
});
