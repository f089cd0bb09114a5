//! The Cap'n Proto envelope: the segment-table functions and `decode_capnp`.
//!
//! The input is used twice: as one message handed straight to
//! `decode_capnp`, and as a stream cut into messages exactly as the
//! receiver does (`segment_table_len` on the first 4 bytes,
//! `parse_segment_table` on the table, then the whole message, copied into
//! its own buffer, to `decode_capnp`). Decoded pushes must survive an
//! `encode_capnp` round trip.

#![no_main]

use exporter_proxy::ingest::codec::{
    decode_capnp, encode_capnp, parse_segment_table, segment_table_len, AppPush,
};
use libfuzzer_sys::fuzz_target;

/// The message size limit (the receiver's is `max_push_bytes`): small, so
/// that the fuzzer reaches the "too large" path too.
const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(push) = decode_capnp(data) {
        round_trip(&push);
    }

    let mut rest = data;
    while rest.len() >= 4 {
        let head: [u8; 4] = rest[..4].try_into().unwrap();
        let Ok(table_len) = segment_table_len(head) else {
            break;
        };
        assert!(
            table_len >= 8 && table_len % 8 == 0,
            "table of {table_len} bytes"
        );
        if rest.len() < table_len {
            break;
        }
        let Ok(header) = parse_segment_table(&rest[..table_len], LIMIT) else {
            break;
        };
        assert_eq!(header.table_bytes, table_len);
        assert!(header.total_bytes >= table_len && header.total_bytes <= LIMIT);
        assert_eq!(header.total_bytes % 8, 0);
        if rest.len() < header.total_bytes {
            break;
        }
        // The receiver reads each message into a buffer of its own.
        let message = rest[..header.total_bytes].to_vec();
        if let Ok(push) = decode_capnp(&message) {
            round_trip(&push);
        }
        rest = &rest[header.total_bytes..];
    }
});

fn round_trip(push: &AppPush) {
    let bytes = encode_capnp(&push.app, &push.text);
    let again = decode_capnp(&bytes).expect("our own encoding decodes");
    assert_eq!(&again, push);
}
