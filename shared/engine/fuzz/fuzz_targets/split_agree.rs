//! Arbitrary bytes: processing at a fuzzer-chosen chunk size and read-buffer size must give
//! exactly what one chunk gives (same clean and rejected bytes, same counters), or the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::dialect::DialectOverrides;
use tessera_engine::file::{process_bytes, ProcessOptions};

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let chunk_size = 1 + input[0] as u64 % 64;
    let buf = 1 + input[1] as usize % 16;
    let has_header = input[2] & 1 == 1;
    let data = &input[3..];
    let opts = |chunk_size: u64, buf: usize| ProcessOptions {
        chunk_size,
        workers: 1,
        read_buffer_bytes: buf,
        dialect: DialectOverrides {
            delimiter: Some(b','),
            quote: Some(b'"'),
            has_header: Some(has_header),
        },
        ..ProcessOptions::default()
    };
    let one = process_bytes(data, &opts(u64::MAX / 2, 1 << 16));
    let many = process_bytes(data, &opts(chunk_size, buf));
    match (one, many) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.clean, b.clean);
            assert_eq!(a.rejected, b.rejected);
            assert_eq!(a.summary.rows, b.summary.rows);
            assert_eq!(a.summary.rejected_rows, b.summary.rejected_rows);
            assert_eq!(a.summary.blank_lines, b.summary.blank_lines);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!(
            "one chunk: {:?}\nmany: {:?}",
            a.map(|o| o.summary),
            b.map(|o| o.summary)
        ),
    }
});
