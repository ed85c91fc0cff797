//! The profile of a known file, computed by the chunk workers through the whole system (upload,
//! planner, 64 KiB chunks, finalization), checked against values computed here from the rows
//! the file was generated from; and the same file through `tessera_engine::file::process_file`
//! (the `tessera process` path) gives the same exact statistics.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tessera_e2e::{stack, Client};
use tessera_shared::store::jobs::JobStore;
use tessera_shared::store::objects::ObjectStore;

const CITIES: [&str; 4] = ["Oslo", "Lima", "Pune", "Kyiv"];
const N: u64 = 6000;
const RAGGED_AFTER: u64 = 1234;

struct Known {
    csv: Vec<u8>,
    amount_sum: f64,
    amount_min: f64,
    amount_max: f64,
    ragged_line: u64,
}

fn amount(i: u64) -> f64 {
    (i % 997) as f64 + (i % 100) as f64 / 100.0
}

/// `id,amount,flag,day,city,note` with quoted notes holding `,` and newlines, one ragged row.
fn known_file() -> Known {
    let mut s = String::from("id,amount,flag,day,city,note\r\n");
    let (mut sum, mut min, mut max) = (0.0, f64::MAX, f64::MIN);
    let mut ragged_line = 0;
    for i in 1..=N {
        let a = amount(i);
        sum += a;
        min = min.min(a);
        max = max.max(a);
        let city = if i % 50 == 0 {
            ""
        } else {
            CITIES[(i % 4) as usize]
        };
        let note = if i % 7 == 0 {
            "\"has, comma\nand \"\"newline\"\"\""
        } else {
            "plain"
        };
        s.push_str(&format!(
            "{i},{a:.2},{},2026-01-{:02},{city},{note}\r\n",
            i % 3 == 0,
            i % 28 + 1
        ));
        if i == RAGGED_AFTER {
            // Lines so far (1-based line of the next record) = line breaks + 1.
            ragged_line = s.bytes().filter(|&b| b == b'\n').count() as u64 + 1;
            s.push_str("oops,only-two\r\n");
        }
    }
    Known {
        csv: s.into_bytes(),
        amount_sum: sum,
        amount_min: min,
        amount_max: max,
        ragged_line,
    }
}

fn column<'a>(profile: &'a Value, name: &str) -> &'a Value {
    profile["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("column {name} in {profile}"))
}

fn check_profile(p: &Value, k: &Known) {
    assert_eq!(p["rows"], N, "{p}");
    assert_eq!(p["rejected_rows"], 1);
    assert_eq!(p["rejected"]["ragged_row"], 1);

    let id = column(p, "id");
    assert_eq!(id["type"], "integer");
    assert_eq!(
        (id["min"].as_i64(), id["max"].as_i64()),
        (Some(1), Some(N as i64))
    );
    assert!((id["mean"].as_f64().unwrap() - (N as f64 + 1.0) / 2.0).abs() < 1e-9);
    let d = id["distinct"].as_u64().unwrap() as f64;
    assert!(
        (d - N as f64).abs() / (N as f64) <= 0.02,
        "distinct ids {d} within 2% of {N}"
    );
    assert_eq!(id["nulls"], 0);

    let amount = column(p, "amount");
    assert_eq!(amount["type"], "decimal");
    let mean = amount["mean"].as_f64().unwrap();
    let want = k.amount_sum / N as f64;
    assert!(
        (mean - want).abs() <= 1e-9 * want.abs(),
        "mean {mean} vs {want}"
    );
    assert!((amount["min"].as_f64().unwrap() - k.amount_min).abs() < 1e-9);
    assert!((amount["max"].as_f64().unwrap() - k.amount_max).abs() < 1e-9);
    let p50 = amount["quantiles"]["p50"].as_f64().unwrap();
    assert!(p50 > 400.0 && p50 < 600.0, "p50 {p50}");

    assert_eq!(column(p, "flag")["type"], "boolean");
    let day = column(p, "day");
    assert_eq!(day["type"], "date");
    assert_eq!(
        (day["min"].as_str(), day["max"].as_str()),
        (Some("2026-01-01"), Some("2026-01-28"))
    );

    let city = column(p, "city");
    assert_eq!(city["nulls"], N / 50);
    assert_eq!(city["distinct"], 4);
    assert_eq!(city["distinct_exact"], true);
    let top: Vec<&str> = city["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_str().unwrap())
        .collect();
    for c in CITIES {
        assert!(top.contains(&c), "{c} in top {top:?}");
    }
    let note = column(p, "note");
    assert_eq!(
        note["max_length"],
        "has, comma\nand \"newline\"".chars().count() as u64
    );
}

#[tokio::test]
async fn profile_of_a_known_file_through_the_whole_system() {
    let k = known_file();
    let stack = stack().await;
    let c = Client::new(&stack, "carol");
    let id = c
        .upload("known.csv", k.csv.len() as u64, k.csv.clone())
        .await;
    let snap = c.wait_final(&id, Duration::from_secs(180)).await;
    assert_eq!(snap["state"], "completed", "{snap}");
    assert_eq!(snap["rows"], N);
    assert_eq!(snap["rejected_rows"], 1);
    assert!(
        snap["progress"]["chunks_total"].as_u64().unwrap() >= 4,
        "several chunks: {snap}"
    );

    let job = JobStore::new(stack.clients.dynamodb.clone(), &stack.config.jobs_table)
        .get(&id)
        .await
        .unwrap()
        .expect("job");
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let profile: Value = serde_json::from_slice(
        &objects
            .read_all(job.results.profile.as_deref().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    check_profile(&profile, &k);

    // The API serves the same document to its owner, and to nobody else.
    let served = c.get(&format!("/v1/jobs/{id}/profile")).await;
    assert_eq!(served.status, StatusCode::OK, "{:?}", served.body);
    assert_eq!(served.body, profile);
    let other = Client::new(&stack, "mallory")
        .get(&format!("/v1/jobs/{id}/profile"))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{:?}", other.body);
    assert_eq!(other.body["error"]["code"], "not_found");
    // Before it completes there is no profile: 409 naming the state.
    let waiting = c.create_upload("later.csv", 10).await;
    let waiting = waiting["job_id"].as_str().unwrap();
    let early = c.get(&format!("/v1/jobs/{waiting}/profile")).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{:?}", early.body);
    assert_eq!(early.body["error"]["code"], "job_not_completed");
    assert!(
        early.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("awaiting_upload"),
        "{:?}",
        early.body
    );

    // The rejected output names the row, its reason and its absolute line.
    let rejected = objects
        .read_all(job.results.rejected.as_deref().unwrap())
        .await
        .unwrap();
    let mut rdr = csv::Reader::from_reader(rejected.as_slice());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1, "{}", String::from_utf8_lossy(&rejected));
    assert_eq!(
        &rows[0][1],
        k.ragged_line.to_string().as_str(),
        "source_line"
    );
    assert_eq!(&rows[0][2], "ragged_row");
    assert_eq!(&rows[0][3], "oops,only-two");

    // The local engine over the same bytes: identical exact statistics.
    let dir = std::env::temp_dir().join(format!("tessera-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("known.csv");
    std::fs::write(&src, &k.csv).unwrap();
    let local = local_profile(&src, &dir.join("out"));
    check_profile(&local, &k);
    for name in ["id", "amount", "flag", "day", "city", "note"] {
        for field in [
            "type",
            "count",
            "nulls",
            "min",
            "max",
            "min_length",
            "max_length",
            "type_counts",
        ] {
            assert_eq!(
                column(&local, name)[field],
                column(&profile, name)[field],
                "{name}.{field}"
            );
        }
    }
    assert_eq!(
        local["sample"], profile["sample"],
        "the sample does not depend on chunking"
    );
    std::fs::remove_dir_all(&dir).ok();
    stack.shutdown().await;
}

fn local_profile(src: &std::path::Path, out: &std::path::Path) -> Value {
    use tessera_shared::engine::file::{process_file, ProcessOptions};
    let opts = ProcessOptions {
        chunk_size: 7919, // a prime, so ranges fall everywhere relative to the records
        workers: 2,
        out_dir: out.to_path_buf(),
        ..ProcessOptions::default()
    };
    process_file(src, &opts).expect("process_file");
    serde_json::from_slice(&std::fs::read(out.join("profile.json")).unwrap()).unwrap()
}
