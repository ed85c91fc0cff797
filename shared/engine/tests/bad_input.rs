//! Every bad-input case and its stable code; sniffing; the file adapter end to end.

use tessera_engine::chunk::ChunkOptions;
use tessera_engine::dialect::{sniff, sniff_with_size, DialectOverrides, LineEnding};
use tessera_engine::file::{process_bytes, process_file, ProcessOptions};

fn opts(chunk_size: u64) -> ProcessOptions {
    ProcessOptions {
        chunk_size,
        workers: 2,
        read_buffer_bytes: 3,
        ..ProcessOptions::default()
    }
}

/// Runs at several chunk sizes; all must agree; returns (clean, rejected) text.
fn run(data: &[u8], o: ProcessOptions) -> (String, String) {
    let mut first: Option<(String, String)> = None;
    for cs in [1, 2, 5, 1 << 20] {
        let out = process_bytes(
            data,
            &ProcessOptions {
                chunk_size: cs,
                ..o.clone()
            },
        )
        .unwrap();
        let got = (
            String::from_utf8(out.clean).unwrap(),
            String::from_utf8(out.rejected).unwrap(),
        );
        if let Some(f) = &first {
            assert_eq!(f, &got, "chunk size {cs}");
        }
        first = Some(got);
    }
    first.unwrap()
}

const REJ_HEAD: &str = "source_byte_offset,source_line,reason,raw,detail\n";

#[test]
fn invalid_utf8_is_rejected_not_dropped() {
    let (clean, rej) = run(b"a,b\n1,\xFF\n2,3\n", opts(1));
    assert_eq!(clean, "a,b\n2,3\n");
    assert_eq!(rej, format!("{REJ_HEAD}4,2,invalid_utf8,\"1,\u{fffd}\",\n"));
    // Split across a delimiter: bytes that are valid once the delimiter is removed.
    let (_, rej) = run(b"a,b\n\xC3,\xA9\n", opts(1));
    assert!(rej.contains("invalid_utf8"), "{rej}");
}

#[test]
fn nul_byte_is_rejected() {
    let (clean, rej) = run(b"a,b\n1,x\0y\n2,3\n", opts(1));
    assert_eq!(clean, "a,b\n2,3\n");
    assert!(rej.contains(",2,nul_byte,"), "{rej}");
}

#[test]
fn ragged_rows_are_kept_in_rejected() {
    let (clean, rej) = run(b"a,b\n1\n2,3\n4,5,6\r\n", opts(1));
    assert_eq!(clean, "a,b\n2,3\n");
    assert_eq!(
        rej,
        format!("{REJ_HEAD}4,2,ragged_row,1,\n10,4,ragged_row,\"4,5,6\",\n")
    );
}

#[test]
fn stray_quotes_are_rejected() {
    let (clean, rej) = run(b"a,b\n1,x\"y\"\n\"ab\"c,2\n3,4\n", opts(1));
    assert_eq!(clean, "a,b\n3,4\n");
    assert_eq!(
        rej,
        format!(
            "{REJ_HEAD}4,2,stray_quote,\"1,x\"\"y\"\"\",\n11,3,stray_quote,\"\"\"ab\"\"c,2\",\n"
        )
    );
}

#[test]
fn oversized_fields_are_skipped_with_bounded_memory() {
    let mut o = opts(1);
    o.chunk = ChunkOptions {
        max_field_bytes: 8,
        ..ChunkOptions::default()
    };
    let mut data = b"a,b\n1,".to_vec();
    data.extend(std::iter::repeat_n(b'z', 100));
    data.extend_from_slice(b"\n2,3\n");
    let (clean, rej) = run(&data, o);
    assert_eq!(clean, "a,b\n2,3\n");
    assert_eq!(
        rej,
        format!("{REJ_HEAD}4,2,field_too_large,\"1,zzzzzz\",\n")
    );
}

#[test]
fn unbalanced_quote_is_an_error_with_the_offset() {
    for cs in [1, 3, 100] {
        let e = process_bytes(b"a,b\n1,2\n3,\"open\n4,5\n", &opts(cs)).unwrap_err();
        assert_eq!(e.code(), "unbalanced_quote");
        assert!(e.to_string().contains("byte 10"), "{e}");
    }
}

#[test]
fn utf16_is_refused() {
    for data in [
        b"\xFF\xFEa\0,\0b\0\n\0".to_vec(),
        b"\xFE\xFF\0a\0,\0b\0\n".to_vec(),
        "a,b\n1,2\n3,4\n5,6\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect(),
    ] {
        let e = process_bytes(&data, &opts(4)).unwrap_err();
        assert_eq!(e.code(), "unsupported_encoding");
        assert!(e.to_string().contains("UTF-8"), "says what to do: {e}");
    }
}

#[test]
fn headers_are_renamed_deterministically() {
    let s = sniff(
        b"id,,name,name,name_2\n1,2,3,4,5\n",
        &DialectOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.columns, ["id", "col_2", "name", "name_2", "name_2_2"]);
}

#[test]
fn bad_headers_are_errors() {
    let o = DialectOverrides {
        has_header: Some(true),
        ..DialectOverrides::default()
    };
    assert_eq!(
        sniff(b"a,\xFF\n1,2\n", &o).unwrap_err().code(),
        "invalid_header"
    );
    assert_eq!(
        sniff(b"a,\"b\"c\n1,2\n", &o).unwrap_err().code(),
        "invalid_header"
    );
    let e = sniff_with_size(b"\"a,b", 1000, &o).unwrap_err();
    assert_eq!(e.code(), "header_too_long");
}

#[test]
fn sniffs_delimiter_bom_line_ending_and_header() {
    let d = DialectOverrides::default();
    let s = sniff(b"\xEF\xBB\xBFa;b;c\r\n1;2,5;3\r\n4;5;6\r\n", &d).unwrap();
    assert_eq!(s.dialect.delimiter, b';');
    assert!(s.dialect.bom && s.dialect.has_header);
    assert_eq!(s.dialect.line_ending, LineEnding::Crlf);
    assert_eq!(s.header_len, 3 + 7);
    assert_eq!(s.columns, ["a", "b", "c"]);
    assert_eq!(sniff(b"a\tb\n1\t2\n", &d).unwrap().dialect.delimiter, b'\t');
    assert_eq!(
        sniff(b"a|b\r1|2\r", &d).unwrap().dialect.line_ending,
        LineEnding::Cr
    );
    let s = sniff(b"1,2\n3,4\n", &d).unwrap();
    assert!(!s.dialect.has_header);
    assert_eq!(s.columns, ["col_1", "col_2"]);
    assert_eq!(s.header_len, 0);
    // Overrides win.
    let o = DialectOverrides {
        delimiter: Some(b'|'),
        has_header: Some(true),
        ..d
    };
    let s = sniff(b"1,2|3\n", &o).unwrap();
    assert_eq!(s.columns, ["1,2", "3"]);
}

#[test]
fn empty_header_only_and_no_final_newline() {
    let out = process_bytes(b"", &opts(4)).unwrap();
    assert_eq!((out.summary.rows, out.summary.chunks), (0, 0));
    let out = process_bytes(b"a,b\n", &opts(4)).unwrap();
    assert_eq!(out.summary.rows, 0);
    assert_eq!(String::from_utf8(out.clean).unwrap(), "a,b\n");
    let out = process_bytes(b"a,b", &opts(4)).unwrap();
    assert_eq!(out.summary.rows, 0);
    let (clean, _) = run(b"a,b\n1,2\n3,4", opts(1));
    assert_eq!(clean, "a,b\n1,2\n3,4\n");
}

#[test]
fn clean_output_requotes_only_when_needed() {
    let (clean, _) = run(
        b"a;b\n\"x,y\";\"q\"\"\"\n\" lead\";\"\"\n",
        ProcessOptions {
            dialect: DialectOverrides {
                delimiter: Some(b';'),
                ..DialectOverrides::default()
            },
            ..opts(1)
        },
    );
    assert_eq!(clean, "a,b\n\"x,y\",\"q\"\"\"\n lead,\n");
    let (clean, _) = run(b"a\n\"\"\n", opts(1));
    assert_eq!(
        clean, "a\n\"\"\n",
        "one empty field must not become a blank line"
    );
}

#[test]
fn process_file_writes_the_three_outputs() {
    let dir = std::env::temp_dir().join(format!("tessera-engine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    let mut data = String::from("id,name,score\n");
    for i in 0..2000 {
        data.push_str(&format!("{i},\"n,{i}\n\",{}.5\n", i % 7));
    }
    data.push_str("bad\n");
    std::fs::write(&input, &data).unwrap();
    let out_dir = dir.join("out");
    let s = process_file(
        &input,
        &ProcessOptions {
            chunk_size: 1000,
            workers: 0,
            out_dir: out_dir.clone(),
            ..ProcessOptions::default()
        },
    )
    .unwrap();
    assert_eq!((s.rows, s.rejected_rows), (2000, 1));
    assert!(s.chunks > 10);
    let clean = std::fs::read_to_string(out_dir.join("clean.csv")).unwrap();
    assert!(clean.starts_with("id,name,score\n0,\"n,0\n\",0.5\n"));
    let rej = std::fs::read_to_string(out_dir.join("rejected.csv")).unwrap();
    assert_eq!(
        rej,
        format!("{REJ_HEAD}{},4002,ragged_row,bad,\n", data.len() - 4)
    );
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("profile.json")).unwrap()).unwrap();
    assert!(profile.is_object());
    assert!(!out_dir.join(".parts").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn option_and_io_errors_have_codes() {
    let o = DialectOverrides {
        delimiter: Some(b'"'),
        ..DialectOverrides::default()
    };
    assert_eq!(sniff(b"a,b\n", &o).unwrap_err().code(), "invalid_option");
    let e = process_file(
        std::path::Path::new("/nonexistent/tessera/in.csv"),
        &ProcessOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "io_error");
    assert!(e.to_string().contains("/nonexistent/tessera/in.csv"), "{e}");
}

#[test]
fn profile_only_writes_just_the_profile() {
    let dir = std::env::temp_dir().join(format!("tessera-engine-po-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    std::fs::write(&input, "a,b\n1,2\n3,4\n").unwrap();
    let out_dir = dir.join("out");
    let s = process_file(
        &input,
        &ProcessOptions {
            out_dir: out_dir.clone(),
            profile_only: true,
            ..ProcessOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s.rows, 2);
    assert!(out_dir.join("profile.json").exists());
    assert!(!out_dir.join("clean.csv").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
