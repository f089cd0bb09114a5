//! Tests of packing (`pack.rs`, [`exposition::Chunk`]): a store that keeps
//! its text packed serves exactly what a plain one does, in every format
//! and encoding, and refuses, removes and saves the same; packing turns on
//! above the limit, packs what was stored, and turns off under half of it.

use super::tests::gunzip;
use super::*;

/// Where the self-metrics start in the text and OpenMetrics bodies (they
/// hold push times, which differ between two stores).
const SELF_METRICS: &str = "# HELP exporter_proxy_";

fn store(pack_above_series: usize) -> Store {
    Store::new(
        StoreOptions {
            pack_above_series,
            ..StoreOptions::default()
        },
        SelfMetrics::new(),
    )
}

/// An app's text: a counter, a gauge with escaped label values, a
/// histogram and a summary, `n` series of each kind (long enough to pack).
fn app_text(app: usize, n: usize, round: u64) -> String {
    let mut s =
        String::from("# HELP req_total Requests \\\\ by route.\n# TYPE req_total counter\n");
    for i in 0..n {
        s.push_str(&format!(
            "req_total{{app=\"a{app}\",route=\"/api/v1/items/{i}\"}} {}\n",
            round * 7 + i as u64
        ));
    }
    s.push_str("# TYPE temp gauge\n");
    for i in 0..n {
        s.push_str(&format!(
            "temp{{app=\"a{app}\",room=\"r\\\"{i}\\n\"}} {}.5\n",
            round + i as u64
        ));
    }
    s.push_str("# TYPE lat histogram\n");
    for i in 0..n {
        for le in ["0.1", "1", "+Inf"] {
            s.push_str(&format!(
                "lat_bucket{{app=\"a{app}\",op=\"op{i}\",le=\"{le}\"}} {}\n",
                round + 3
            ));
        }
        s.push_str(&format!("lat_sum{{app=\"a{app}\",op=\"op{i}\"}} 1.25\n"));
        s.push_str(&format!(
            "lat_count{{app=\"a{app}\",op=\"op{i}\"}} {}\n",
            round + 3
        ));
    }
    s.push_str("# TYPE q summary\n");
    for i in 0..n {
        s.push_str(&format!(
            "q{{app=\"a{app}\",k=\"{i}\",quantile=\"0.5\"}} 2\n"
        ));
        s.push_str(&format!("q_sum{{app=\"a{app}\",k=\"{i}\"}} 4\n"));
        s.push_str(&format!("q_count{{app=\"a{app}\",k=\"{i}\"}} 2\n"));
    }
    s
}

#[track_caller]
fn push(s: &Store, app: &str, text: &str) {
    s.push(app, text, AppKind::Push, "test")
        .unwrap_or_else(|e| panic!("push refused: {e}"));
}

/// Blocks held packed and plain.
fn packed_and_plain(s: &Store) -> (usize, usize) {
    let state = s.lock();
    let blocks = state.apps.values().flat_map(|e| e.families.iter());
    let packed = blocks.clone().filter(|b| b.body.is_packed()).count();
    (packed, blocks.count() - packed)
}

/// The pushed part of a text or OpenMetrics body.
fn pushed_part(body: &[u8]) -> String {
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    let end = text.find(SELF_METRICS).expect("self-metrics follow");
    text[..end].to_owned()
}

/// The pushed families of a protobuf body.
fn pushed_families(body: &[u8]) -> Vec<exposition::proto::MetricFamily> {
    exposition::proto::decode_delimited(body)
        .expect("valid protobuf")
        .into_iter()
        .filter(|f| !f.name().starts_with("exporter_proxy_"))
        .collect()
}

/// Every body the page has, plain and gunzipped, as comparable parts.
fn every_body(s: &Store) -> Vec<String> {
    let r = s.render();
    let mut out = Vec::new();
    for f in [Format::Text, Format::OpenMetrics] {
        let mut plain = Vec::new();
        for c in r.chunks_of(f) {
            c.write_to(&mut plain);
        }
        assert_eq!(plain.len(), r.len_of(f), "{f:?}: the length served");
        out.push(pushed_part(&plain));
        out.push(pushed_part(&gunzip(&r.gzip_of(f))));
    }
    let mut pb = Vec::new();
    for c in r.chunks_of(Format::Protobuf) {
        c.write_to(&mut pb);
    }
    out.push(format!("{:?}", pushed_families(&pb)));
    out.push(format!(
        "{:?}",
        pushed_families(&gunzip(&r.gzip_of(Format::Protobuf)))
    ));
    out
}

#[test]
fn a_packed_store_serves_refuses_and_saves_what_a_plain_one_does() {
    let (plain, packed) = (store(usize::MAX), store(0));
    let both = |f: &dyn Fn(&Store)| {
        f(&plain);
        f(&packed);
    };
    both(&|s| {
        for app in 0..4 {
            push(s, &format!("app{app}"), &app_text(app, 12, 0));
        }
    });
    let (p, unpacked) = packed_and_plain(&packed);
    assert_eq!((p, unpacked), (16, 0), "every block of the packed store");
    assert_eq!(packed_and_plain(&plain), (0, 16));
    assert_eq!(every_body(&packed), every_body(&plain));
    let text = pushed_part(&packed.render().to_bytes());
    assert!(
        text.contains("temp{app=\"a2\",room=\"r\\\"3\\n\"} 3.5\n"),
        "{text}"
    );

    // New values (the gzip runs of the others found again), a removal,
    // a set that changes its series.
    both(&|s| {
        push(s, "app1", &app_text(1, 12, 5));
        assert!(s.remove("app2"));
        push(s, "app3", &app_text(3, 9, 1));
    });
    assert_eq!(every_body(&packed), every_body(&plain));
    assert_eq!(packed_and_plain(&packed), (12, 0));

    // A refusal names the series another app holds, read from packed text.
    let conflict = app_text(0, 12, 9);
    let refusal = |s: &Store| s.push("intruder", &conflict, AppKind::Push, "test");
    let (a, b) = (refusal(&plain), refusal(&packed));
    assert!(a.is_err());
    assert_eq!(a, b);
    assert!(
        b.clone()
            .unwrap_err()
            .message
            .contains("lat_bucket{app=\"a0\",op=\"op0\",le=\"0.1\"} is already pushed"),
        "the series is named: {b:?}"
    );

    // The snapshot holds the text, whatever form it is kept in.
    let saved = |s: &Store| -> Vec<(String, String)> {
        s.saved_apps()
            .into_iter()
            .map(|a| (a.name, a.text))
            .collect()
    };
    assert_eq!(saved(&packed), saved(&plain));
    assert_eq!(saved(&packed).len(), 3);
}

#[test]
fn packing_turns_on_above_the_limit_packs_what_was_stored_and_off_under_half() {
    // Each app holds 12 × 9 = 108 series.
    let s = store(250);
    push(&s, "a", &app_text(0, 12, 0));
    push(&s, "b", &app_text(1, 12, 0));
    assert_eq!(packed_and_plain(&s), (0, 8), "216 series: plain");
    let before = pushed_part(&s.render().to_bytes());
    let generation = s.generation();

    push(&s, "c", &app_text(2, 12, 0));
    // The push that crossed the limit was prepared plain; the commit packed
    // it with the others.
    assert_eq!(packed_and_plain(&s), (12, 0), "324 series: all packed");
    assert!(s.generation() > generation);
    let after = pushed_part(&s.render().to_bytes());
    let without_c: String = after
        .lines()
        .filter(|l| !l.contains("app=\"a2\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without_c, before);
    assert!(after.len() > before.len() * 5 / 4, "c's lines are there");

    // Under half the limit (125), the next push turns packing off; the one
    // after it is prepared plain.
    assert!(s.remove("b"));
    assert!(s.remove("c"));
    push(&s, "a", &app_text(0, 12, 1));
    assert!(!s.packs());
    push(&s, "a", &app_text(0, 12, 2));
    assert_eq!(packed_and_plain(&s), (0, 4));
    assert!(pushed_part(&s.render().to_bytes())
        .contains("req_total{app=\"a0\",route=\"/api/v1/items/0\"} 14\n"));
}

#[test]
fn a_push_that_races_the_packing_of_its_app_is_kept() {
    // The packing pass puts packed blocks in place only where the app
    // still holds the blocks it packed.
    let s = store(usize::MAX);
    push(&s, "a", &app_text(0, 12, 0));
    let taken: Vec<(String, Vec<Arc<FamilyBlock>>)> = s.lock().app_blocks().collect();
    push(&s, "a", &app_text(0, 12, 1));
    s.repack(taken);
    assert_eq!(packed_and_plain(&s), (0, 4), "the newer push stays");
    assert!(pushed_part(&s.render().to_bytes())
        .contains("req_total{app=\"a0\",route=\"/api/v1/items/0\"} 7\n"));
}
