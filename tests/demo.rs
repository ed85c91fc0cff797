//! End to end: `tessera demo`'s code path ([`tessera_infra::demo::run`]) on a generated file
//! above a lowered multipart threshold, through the emulator: the upload goes in parallel 5 MiB
//! parts, the job completes with the file's exact row count, and the printed profile table and
//! example query answer carry the numbers computed here from the generated rows.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_e2e::{stack_with, Rng};
use tessera_infra::demo::{run, DemoOptions};
use tessera_infra::upload::{Api, UploadOptions};

const MIB: u64 = 1024 * 1024;
const REGIONS: [&str; 4] = ["east", "north", "south", "west"];

/// Per region: rows and the sum of `amount` in cents.
struct Expected {
    rows: u64,
    per_region: BTreeMap<&'static str, (u64, u64)>,
}

/// `id,region,amount,note` rows until the file has `min_bytes`; notes carry quoted commas, `""`
/// and newlines so records are not lines. Amounts are cents between 1.00 and 99999.98, except
/// the first two rows, which hold the minimum 0.05 and the maximum 99999.99.
fn generate(min_bytes: usize, seed: u64) -> (Vec<u8>, Expected) {
    let mut rng = Rng::new(seed);
    let mut out = b"id,region,amount,note\n".to_vec();
    let mut exp = Expected {
        rows: 0,
        per_region: BTreeMap::new(),
    };
    while out.len() < min_bytes {
        exp.rows += 1;
        let id = exp.rows;
        let region = REGIONS[rng.below(4) as usize];
        let cents = match id {
            1 => 5,
            2 => 9_999_999,
            _ => 100 + rng.below(9_999_899),
        };
        let note = match rng.below(4) {
            0 => "\"said \"\"hi\"\", then left\"".to_string(),
            1 => "\"two\nlines, one record\"".to_string(),
            _ => format!("note {}", rng.below(1000)),
        };
        let e = exp.per_region.entry(region).or_default();
        e.0 += 1;
        e.1 += cents;
        let line = format!("{id},{region},{}.{:02},{note}\n", cents / 100, cents % 100);
        out.extend_from_slice(line.as_bytes());
    }
    (out, exp)
}

/// The whitespace-separated cells of the rendered table line that starts with `first`.
fn table_line<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no line starting with {first:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_uploads_in_parts_and_shows_the_profile_and_an_example_query() {
    // Lower the API's threshold for this binary's only stack, so the demo gets a multipart plan
    // without asking for one, as a 297 MB file does with the default threshold. Set before the
    // stack starts (it reads TESSERA_* from the environment for what it does not set).
    std::env::set_var("TESSERA_MULTIPART_THRESHOLD", (8 * MIB).to_string());
    let stack = stack_with(|o| {
        o.chunk_size = 2 * MIB;
        o.chunk_concurrency = 2;
    })
    .await;
    let (data, exp) = generate(13 * MIB as usize, 11);
    let dir = std::env::temp_dir().join(format!("tessera-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("demo.csv");
    std::fs::write(&path, &data).expect("write the generated file");

    let api = Api {
        http: reqwest::Client::new(),
        base: stack.http_url.clone(),
        token: stack.token("demo-user"),
    };
    let opts = DemoOptions {
        upload: UploadOptions {
            part_size: Some(5 * MIB),
            concurrency: 2,
            ..UploadOptions::default()
        },
        poll: Duration::from_millis(150),
        ..DemoOptions::default()
    };
    let outcome = tokio::time::timeout(Duration::from_secs(300), run(&api, &path, &opts))
        .await
        .expect("the demo finished within 5 minutes")
        .expect("the demo ran");
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    // Uploaded in parts: 13 MiB in 5 MiB parts is 3 (the last 3 MiB).
    assert_eq!(outcome.uploaded.parts, 3, "{:?}", outcome.uploaded);
    assert_eq!(outcome.uploaded.size, data.len() as u64);
    let snap = &outcome.snapshot;
    assert_eq!(snap["state"], "completed", "{snap}");
    assert_eq!(snap["rows"], exp.rows, "{snap}");
    assert_eq!(snap["rejected_rows"], 0, "{snap}");

    let text = outcome.render("demo.csv");
    println!("{text}");
    assert!(
        text.starts_with(&format!(
            "completed demo.csv: {} rows, 0 rejected, 4 columns",
            exp.rows
        )),
        "{text}"
    );

    // The profile table: amount's type, nulls, min, max; region's distinct count and top value.
    let amount = table_line(&text, "amount");
    assert_eq!(amount[1..3], ["decimal", "0"], "{amount:?}");
    assert_eq!(amount[4..6], ["0.05", "99999.99"], "{amount:?}");
    let (top, top_rows) = exp
        .per_region
        .iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.0.cmp(a.0)))
        .map(|(r, (n, _))| (*r, *n))
        .expect("rows");
    let region = table_line(&text, "region");
    assert_eq!(
        region[1..],
        [
            "string",
            "0",
            "4",
            "east",
            "west",
            top,
            &format!("({top_rows})")
        ],
        "{region:?}"
    );
    let id = table_line(&text, "id");
    assert_eq!(id[1], "integer");
    assert_eq!(id[5], exp.rows.to_string(), "the largest id: {id:?}");

    // The example: rows and average amount per region, most rows first, asked through the API.
    let example = outcome.example.as_ref().expect("an example query");
    assert_eq!(
        example.description,
        "rows and average amount per region, most rows first"
    );
    assert!(text.contains(&format!(
        "POST /v1/jobs/{}/queries",
        outcome.uploaded.job_id
    )));
    assert_eq!(example.result.columns, ["region", "count", "avg(amount)"]);
    assert_eq!(example.result.rows.len(), 4);
    for (name, (rows, cents)) in &exp.per_region {
        let line = table_line(&text, name);
        assert_eq!(line[1], rows.to_string(), "{name}: {line:?}");
        let avg: f64 = line[2].parse().expect("a decimal average");
        let want = *cents as f64 / *rows as f64 / 100.0;
        assert!((avg - want).abs() < 1e-6, "{name}: avg {avg}, want {want}");
        assert_eq!(line.len(), 3, "{line:?}");
    }
    // Most rows first.
    let counts: Vec<u64> = example
        .result
        .rows
        .iter()
        .map(|r| r[1].as_u64().expect("a count"))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), exp.rows);
}
