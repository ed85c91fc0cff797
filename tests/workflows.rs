//! Workflows end to end: saved rule documents through HTTP (create, versions, list, update,
//! delete, owner isolation, 422 with JSON paths), an upload that names a workflow, the chunk
//! workers applying it (rejected rows with `rule:<id>` and source lines, masked clean values),
//! rows in = clean + rejected at two chunk sizes, and a missing reference file failing the job
//! before any chunk runs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tessera_shared::keys::{self, PartKind};
use tessera_shared::store::objects::ObjectStore;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);
const MASK_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Header, then lines 2..=7: line 3 has no name, line 4 an amount out of range, line 5 a code
/// that does not match; lines 2 and 7 share an SSN (same token), line 6 has a formula-like name.
const DATA: &str = "id,name,email,amount,code,ssn\n\
1,Ann,ann@example.com,10,ABC,111-22-3333\n\
2,,bob@example.com,20,DEF,222-33-4444\n\
3,Cy,cy@example.com,5000,GHI,333-44-5555\n\
4,Di,di@example.com,30,jk1,444-55-6666\n\
5,=cmd,eve@example.com,40,XYZ,555-66-7777\n\
6,Fay,,50,QQQ,111-22-3333\n";

fn rules() -> Value {
    json!({
        "version": 1,
        "on_violation": "reject",
        "columns": {
            "amount": {"type": "decimal"},
            "email": {"transforms": [{"mask": "partial"}]},
            "ssn": {"transforms": [{"mask": {"token": {"encoding": "hex", "length": 16}}}]}
        },
        "rules": [
            {"id": "name_required", "column": "name", "check": "not_null"},
            {"id": "amount_range", "column": "amount", "check": {"range": {"min": 0, "max": 1000}}},
            {"id": "code_format", "column": "code", "check": {"matches": {"pattern": "^[A-Z]{3}$"}}}
        ]
    })
}

async fn stack_for(chunk_size: u64) -> LocalStack {
    // The stack reads what it does not set from the environment; every test here sets the same.
    std::env::set_var("TESSERA_MASK_KEY_HEX", MASK_KEY_HEX);
    stack_with(|o| o.chunk_size = chunk_size).await
}

async fn create_workflow(c: &Client, rules: Value) -> String {
    let a = c
        .post_json(
            "/v1/workflows",
            &json!({"name": "customers", "description": "checks and masks", "rules": rules}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["version"], 1);
    a.body["workflow_id"].as_str().unwrap().to_string()
}

/// Uploads `data` naming `workflow`; returns the job id.
async fn upload_with(c: &Client, workflow: Value, data: &[u8]) -> String {
    let a = c
        .post_json(
            "/v1/uploads",
            &json!({"filename": "c.csv", "size": data.len(), "content_type": "text/csv", "workflow": workflow}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let url = a.body["upload"]["url"].as_str().unwrap();
    let put = c.http.put(url).body(data.to_vec()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    a.body["job_id"].as_str().unwrap().to_string()
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn workflow_crud_versions_isolation_and_validation() {
    let stack = stack_for(64 * 1024).await;
    let alice = Client::new(&stack, "alice");
    let bob = Client::new(&stack, "bob");
    let id = create_workflow(&alice, rules()).await;

    let got = alice.get(&format!("/v1/workflows/{id}")).await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    assert_eq!(got.body["version"], 1);
    assert_eq!(got.body["rules"], rules());

    // A new version; the old one stays readable.
    let mut v2 = rules();
    v2["rules"].as_array_mut().unwrap().pop();
    let put = alice
        .http
        .put(format!("{}/v1/workflows/{id}", alice.base))
        .bearer_auth(alice.token.as_deref().unwrap())
        .json(&json!({"rules": v2}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let latest = alice.get(&format!("/v1/workflows/{id}")).await;
    assert_eq!(latest.body["version"], 2);
    assert_eq!(latest.body["name"], "customers");
    assert_eq!(latest.body["rules"], v2);
    let old = alice.get(&format!("/v1/workflows/{id}/versions/1")).await;
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.body["rules"], rules());
    assert_eq!(
        alice
            .get(&format!("/v1/workflows/{id}/versions/3"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Listed for its owner, newest first; job lists stay clean.
    let second = create_workflow(&alice, rules()).await;
    let list = alice.get("/v1/workflows").await;
    let ids: Vec<&str> = list.body["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workflow_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str(), id.as_str()]);
    assert_eq!(alice.get("/v1/jobs").await.body["jobs"], json!([]));

    // Another owner sees nothing and can change nothing.
    assert_eq!(
        bob.get(&format!("/v1/workflows/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(bob.get("/v1/workflows").await.body["workflows"], json!([]));
    let a = bob
        .post_json(
            "/v1/uploads",
            &json!({"filename": "c.csv", "size": 10, "content_type": "text/csv", "workflow": {"id": id}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);

    // Bad documents: 422 with every problem's JSON path.
    let bad = json!({"version": 1, "rules": [
        {"column": "a", "check": "not_null"},
        {"column": "b", "check": {"matches": {"pattern": "[a-"}}},
        {"column": "c", "chek": "not_null"}
    ]});
    let a = alice
        .post_json("/v1/workflows", &json!({"name": "bad", "rules": bad}))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "invalid_rules");
    let paths: Vec<&str> = a.body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.iter().any(|p| p.starts_with("/rules/2")), "{paths:?}");

    // Delete: gone from the API, versions stay for jobs (the store still has them).
    let del = alice
        .http
        .delete(format!("{}/v1/workflows/{id}", alice.base))
        .bearer_auth(alice.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::OK);
    assert_eq!(
        alice.get(&format!("/v1/workflows/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let kept = tessera_shared::store::workflows::WorkflowStore::new(
        stack.clients.dynamodb.clone(),
        &stack.config.jobs_table,
    )
    .version(&id, 1)
    .await
    .unwrap();
    assert!(kept.is_some());
    stack.shutdown().await;
}

async fn run_rules_at(chunk_size: u64) {
    let stack = stack_for(chunk_size).await;
    let alice = Client::new(&stack, "alice");
    let id = create_workflow(&alice, rules()).await;
    let job_id = upload_with(&alice, json!({"id": id}), DATA.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["workflow"], json!({"id": id, "version": 1}));
    // The invariant: rows in = clean + rejected.
    assert_eq!(done["rows"], 3, "{done}");
    assert_eq!(done["rejected_rows"], 3, "{done}");

    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let prefix = format!("results/alice/{job_id}");
    let rejected = csv_rows(
        &objects
            .read_all(&format!("{prefix}/rejected.csv"))
            .await
            .unwrap(),
    );
    let got: Vec<(String, String)> = rejected[1..]
        .iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("3".to_string(), "rule:name_required".to_string()),
            ("4".to_string(), "rule:amount_range".to_string()),
            ("5".to_string(), "rule:code_format".to_string()),
        ],
        "chunk size {chunk_size}: {rejected:?}"
    );

    let clean = csv_rows(
        &objects
            .read_all(&format!("{prefix}/clean.csv"))
            .await
            .unwrap(),
    );
    assert_eq!(clean[0], ["id", "name", "email", "amount", "code", "ssn"]);
    assert_eq!(clean.len(), 4, "{clean:?}");
    let ids: Vec<&str> = clean[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["1", "5", "6"]);
    assert_eq!(clean[1][2], "a***@example.com");
    assert_eq!(clean[2][2], "e***@example.com");
    assert_eq!(clean[3][2], "", "empty stays empty under a mask");
    let token = &clean[1][5];
    assert_eq!(token.len(), 16, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_ne!(token, "111-22-3333");
    assert_eq!(&clean[3][5], token, "same value, same token");

    let manifest: Value = serde_json::from_slice(
        &objects
            .read_all(&format!("{prefix}/manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["violations"],
        json!({"name_required": 1, "amount_range": 1, "code_format": 1})
    );
    assert_eq!(manifest["workflow"], json!({"id": id, "version": 1}));

    // Exports, read back through their presigned URLs.
    let csv_export = export(&alice, &job_id, json!({"output": "clean", "format": "csv"})).await;
    let rows = csv_rows(csv_export.as_bytes());
    assert_eq!(rows.len(), 4, "{csv_export}");
    assert_eq!(
        rows[2][1], "'=cmd",
        "a formula cell is escaped: {csv_export}"
    );
    assert_eq!(rows[1][2], "a***@example.com");
    let raw = export(
        &alice,
        &job_id,
        json!({"output": "clean", "format": "csv", "formula_escape": false, "columns": ["name", "id"]}),
    )
    .await;
    assert_eq!(raw, "name,id\nAnn,1\n=cmd,5\nFay,6\n");
    // CSV, every column, no escaping: the stored output itself, linked (any size).
    let stored = export(
        &alice,
        &job_id,
        json!({"output": "clean", "format": "csv", "formula_escape": false}),
    )
    .await;
    assert_eq!(
        stored.as_bytes(),
        objects
            .read_all(&format!("{prefix}/clean.csv"))
            .await
            .unwrap()
            .as_slice()
    );
    assert!(stored.contains("\n5,=cmd,"), "{stored}");
    let jsonl = export(
        &alice,
        &job_id,
        json!({"output": "clean", "format": "jsonl"}),
    )
    .await;
    let objs: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 3, "{jsonl}");
    assert_eq!(objs[1]["name"], "=cmd");
    assert_eq!(objs[0]["email"], "a***@example.com");
    assert_eq!(objs[0]["ssn"].as_str(), Some(token.as_str()));
    let rej = export(
        &alice,
        &job_id,
        json!({"output": "rejected", "format": "jsonl"}),
    )
    .await;
    assert_eq!(rej.lines().count(), 3, "{rej}");
    let a = alice
        .post_json(
            &format!("/v1/jobs/{job_id}/exports"),
            &json!({"output": "clean", "format": "csv", "columns": ["nope"]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "unknown_column");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
    let bob = Client::new(&stack, "bob");
    let a = bob
        .post_json(
            &format!("/v1/jobs/{job_id}/exports"),
            &json!({"output": "clean", "format": "csv"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    stack.shutdown().await;
}

/// Creates an export and downloads it through its presigned URL.
async fn export(c: &Client, job_id: &str, body: Value) -> String {
    let a = c
        .post_json(&format!("/v1/jobs/{job_id}/exports"), &body)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert!(a.body["expires_in"].as_u64().unwrap() <= 300);
    assert!(a.body["expires_at"].is_string());
    let url = a.body["url"].as_str().unwrap();
    let resp = c.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn rules_apply_in_one_chunk() {
    run_rules_at(64 * 1024).await;
}

#[tokio::test]
async fn rules_apply_in_many_chunks() {
    run_rules_at(16).await;
}

#[tokio::test]
async fn missing_reference_fails_the_job_before_any_chunk() {
    let stack = stack_for(64 * 1024).await;
    let alice = Client::new(&stack, "alice");
    let doc = json!({"version": 1, "rules": [
        {"column": "code", "check": {"one_of": {"ref": {"key": "lists/codes.csv", "column": "code"}}}}
    ]});
    let id = create_workflow(&alice, doc).await;
    let job_id = upload_with(&alice, json!({"id": id, "version": 1}), DATA.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "reference_missing", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lists/codes.csv"),
        "{done}"
    );
    assert_eq!(done["progress"]["chunks_done"], 0, "{done}");
    stack.shutdown().await;
}

#[tokio::test]
async fn threshold_fails_the_job() {
    let stack = stack_for(64 * 1024).await;
    let alice = Client::new(&stack, "alice");
    let doc = json!({"version": 1, "rules": [
        {"id": "amount_small", "column": "amount", "check": {"range": {"max": 100}},
         "on_violation": {"fail": {"max_count": 0}}}
    ], "columns": {"amount": {"type": "integer"}}});
    let id = create_workflow(&alice, doc).await;
    let job_id = upload_with(&alice, json!({"id": id}), DATA.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "rule_threshold_exceeded", "{done}");
    stack.shutdown().await;
}

/// A file of `n` records (`id,email,note`) whose ids repeat at the records given in `repeat`
/// (`(record, id of the earlier record)`, 0-based) and whose e-mails repeat every 500th record;
/// some notes are quoted with a comma or a line break, so records span chunk boundaries.
fn unique_data(n: usize, repeat: &[(usize, usize)]) -> String {
    let mut s = String::from("id,email,note\n");
    for i in 0..n {
        let id = repeat
            .iter()
            .find(|&&(r, _)| r == i)
            .map_or(i, |&(_, first)| first);
        let email = if i % 500 == 499 {
            "same,one@example.com".to_string()
        } else {
            format!("u{i}@example.com")
        };
        let note = match i % 7 {
            0 => "\"line one\nline two\"".to_string(),
            3 => "\"a, b\"".to_string(),
            _ => format!("n{i}"),
        };
        s += &format!("{id},\"{email}\",{note}\n");
    }
    s
}

#[tokio::test]
async fn unique_repeats_across_chunks_are_rejected_or_flagged_exactly() {
    // 4 KiB chunks: 16 chunks for 2,000 records (63 KB), repeats far from their first occurrence.
    let stack = stack_for(4096).await;
    let alice = Client::new(&stack, "alice");
    let repeats = [(1500, 3), (1999, 10), (777, 10), (20, 3)];
    let data = unique_data(2000, &repeats);
    let doc = json!({"version": 1, "rules": [
        {"id": "id_unique", "column": "id", "check": "unique"},
        {"id": "email_unique", "column": "email", "check": "unique", "on_violation": "flag"}
    ]});
    let id = create_workflow(&alice, doc).await;
    let job_id = upload_with(&alice, json!({"id": id}), data.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");
    // Ids 3 (records 3, 20, 1500) and 10 (records 10, 777, 1999): 4 repeats.
    assert_eq!(done["rows"], 1996, "{done}");
    assert_eq!(done["rejected_rows"], 4, "{done}");

    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let prefix = format!("results/alice/{job_id}");
    let read = |name: &'static str| {
        let (objects, prefix) = (objects.clone(), prefix.clone());
        async move { objects.read_all(&format!("{prefix}/{name}")).await.unwrap() }
    };
    let manifest: Value = serde_json::from_slice(&read("manifest.json").await).unwrap();
    // 2,000 / 500 = 4 records share one e-mail: 3 repeats, flagged.
    assert_eq!(
        manifest["violations"],
        json!({"id_unique": 4, "email_unique": 3}),
        "{manifest}"
    );
    assert!(manifest["chunks"].as_u64().unwrap() > 10, "{manifest}");
    // The chunks owning a repeat (records 20, 777, 999, 1499, 1500, 1999: at least 4 distinct
    // 4 KiB chunks) were re-run through the chunk queue, each with its own repeats part.
    let chunks = manifest["chunks"].as_u64().unwrap() as u32;
    let reruns = manifest["chunks_rerun_for_unique"].as_u64().unwrap();
    assert!((4..=6).contains(&reruns), "{manifest}");
    let mut with_repeats = 0;
    for i in 0..chunks {
        let key = keys::part_key("alice", &job_id, PartKind::UniqueRepeats, i);
        if objects.read_all(&key).await.is_ok() {
            with_repeats += 1;
        }
    }
    assert_eq!(with_repeats, reruns, "{manifest}");
    // The search tasks read the chunks' key headers from one index object (written by the
    // finalizer: every chunk's header, in chunk order), not one object per chunk.
    let index = objects
        .read_all(&keys::part_key("alice", &job_id, PartKind::UniqueIndex, 0))
        .await
        .unwrap();
    let parts = tessera_shared::unique::partitions_for(data.len() as u64);
    let hlen = tessera_shared::unique::header_len(2, parts) as usize;
    assert_eq!(index.len(), chunks as usize * hlen, "{manifest}");
    for (i, head) in index.chunks(hlen).enumerate() {
        let own = objects
            .read_range(
                &keys::part_key("alice", &job_id, PartKind::Unique, i as u32),
                0,
                hlen as u64,
            )
            .await
            .unwrap();
        assert_eq!(head, &own[..], "chunk {i}'s header");
    }
    // The search ran as one task per group (here one group per rule), each writing what it found.
    assert_eq!(manifest["unique_search_groups"], 2, "{manifest}");
    for g in 0..2 {
        let key = keys::part_key("alice", &job_id, PartKind::UniqueFound, g);
        let found: Value = serde_json::from_slice(&objects.read_all(&key).await.unwrap()).unwrap();
        let n = found["found"].as_array().unwrap().len();
        match found["rule"].as_str().unwrap() {
            "id_unique" => assert_eq!(n, 4, "{found}"),
            "email_unique" => assert_eq!(n, 3, "{found}"),
            other => panic!("unexpected rule {other}"),
        }
    }

    // Source line of record i: 2 (after the header) + i + the line breaks inside the notes of
    // records before it (one per record with i % 7 == 0).
    let line_of = |i: usize| 2 + i + i.div_ceil(7);
    let rejected = csv_rows(&read("rejected.csv").await);
    let got: Vec<(String, String)> = rejected[1..]
        .iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    let mut want: Vec<usize> = repeats.iter().map(|&(r, _)| r).collect();
    want.sort_unstable();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|&i| (line_of(i).to_string(), "rule:id_unique".to_string()))
        .collect();
    assert_eq!(got, want, "{rejected:?}");
    assert!(
        rejected[1][4].contains("repeats an earlier record"),
        "{rejected:?}"
    );

    let clean = csv_rows(&read("clean.csv").await);
    assert_eq!(clean[0], ["id", "email", "note", "_violations"]);
    assert_eq!(clean.len(), 1 + 1996);
    let ids: std::collections::HashSet<&str> = clean[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len(), 1996, "every clean id is unique now");
    let flagged: Vec<&str> = clean[1..]
        .iter()
        .filter(|r| r[3] == "email_unique")
        .map(|r| r[1].as_str())
        .collect();
    // Records 999 and 1499 are flagged; 1999 repeats the e-mail too (counted above) but is
    // rejected by `id_unique`, so it is not in the clean output; 499, the first, is not flagged.
    assert_eq!(flagged, ["same,one@example.com"; 2], "{clean:?}");

    // The same document with a fail threshold: the repeats fail the job.
    let strict = json!({"version": 1, "rules": [
        {"id": "id_unique", "column": "id", "check": "unique", "on_violation": {"fail": {"max_count": 3}}}
    ]});
    let id = create_workflow(&alice, strict).await;
    let job_id = upload_with(&alice, json!({"id": id}), data.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "rule_threshold_exceeded", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("id_unique"),
        "{done}"
    );
    stack.shutdown().await;
}

/// Uploads a reference file through `POST /v1/references` and its presigned PUT.
async fn put_reference(c: &Client, key: &str, body: &str) {
    let a = c
        .post_json("/v1/references", &json!({"key": key, "size": body.len()}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["key"], key);
    let url = a.body["upload"]["url"].as_str().unwrap();
    let put = c.http.put(url).body(body.to_string()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);
}

#[tokio::test]
async fn reference_files_upload_list_isolation_use_and_delete() {
    let stack = stack_for(64 * 1024).await;
    let alice = Client::new(&stack, "alice");
    let bob = Client::new(&stack, "bob");
    put_reference(
        &alice,
        "lists/codes.csv",
        "code,label\nABC,first\nDEF,second\nXYZ,third\n",
    )
    .await;

    // Listed for its owner only, by the key a rule names.
    let a = alice.get("/v1/references").await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(
        a.body["references"][0]["key"], "lists/codes.csv",
        "{:?}",
        a.body
    );
    assert_eq!(a.body["references"].as_array().unwrap().len(), 1);
    assert!(a.body["next_cursor"].is_null());
    let b = bob.get("/v1/references").await;
    assert_eq!(b.body["references"], json!([]), "{:?}", b.body);

    // Pages: a second file, one a page; the cursor is the caller's own and checked.
    put_reference(&alice, "lists/more.csv", "code\nZZZ\n").await;
    let p1 = alice.get("/v1/references?limit=1").await;
    assert_eq!(p1.status, StatusCode::OK, "{:?}", p1.body);
    assert_eq!(
        p1.body["references"][0]["key"], "lists/codes.csv",
        "{:?}",
        p1.body
    );
    assert_eq!(p1.body["references"].as_array().unwrap().len(), 1);
    let cursor = p1.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let p2 = alice
        .get(&format!("/v1/references?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(
        p2.body["references"][0]["key"], "lists/more.csv",
        "{:?}",
        p2.body
    );
    assert_eq!(p2.body["references"].as_array().unwrap().len(), 1);
    assert!(p2.body["next_cursor"].is_null(), "{:?}", p2.body);
    for (who, url) in [
        (&alice, "/v1/references?cursor=not-a-cursor".to_string()),
        (&bob, format!("/v1/references?cursor={cursor}")),
    ] {
        let r = who.get(&url).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "invalid_cursor", "{:?}", r.body);
    }
    let r = alice.get("/v1/references?limit=0").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_limit");
    let d = alice.delete("/v1/references/lists/more.csv").await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{:?}", d.body);

    // Bad keys and sizes are refused with a code that says what to fix.
    for key in ["../alice/x.csv", "/abs.csv", "a//b.csv", ""] {
        let a = alice
            .post_json("/v1/references", &json!({"key": key, "size": 10}))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{key}: {:?}", a.body);
        assert_eq!(a.body["error"]["code"], "invalid_reference_key");
    }
    let a = alice
        .post_json(
            "/v1/references",
            &json!({"key": "big.csv", "size": 1u64 << 40}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "reference_too_large");

    // A job whose one_of rule reads the uploaded list: ABC, DEF and XYZ pass; GHI (line 4),
    // jk1 (line 5) and QQQ (line 7) are not in it.
    let doc = json!({"version": 1, "rules": [
        {"id": "known_code", "column": "code", "check": {"one_of": {"ref": {"key": "lists/codes.csv", "column": "code"}}}}
    ]});
    let id = create_workflow(&alice, doc).await;
    let job_id = upload_with(&alice, json!({"id": id}), DATA.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["rejected_rows"], 3, "{done}");
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let rejected = csv_rows(
        &objects
            .read_all(&format!("results/alice/{job_id}/rejected.csv"))
            .await
            .unwrap(),
    );
    let lines: Vec<&str> = rejected[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        lines,
        ["4", "5", "7"],
        "GHI, jk1 and QQQ are not in the list: {rejected:?}"
    );

    // Bob's workflow naming the same relative key reads his own (absent) prefix.
    let bobs = create_workflow(&bob, json!({"version": 1, "rules": [
        {"column": "code", "check": {"one_of": {"ref": {"key": "lists/codes.csv", "column": "code"}}}}
    ]}))
    .await;
    let job_id = upload_with(&bob, json!({"id": bobs}), DATA.as_bytes()).await;
    let done = bob.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["error"]["code"], "reference_missing", "{done}");

    // Delete: 404 for bob, 204 for alice, then gone; a new job fails before any chunk.
    assert_eq!(
        bob.delete("/v1/references/lists/codes.csv").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice.delete("/v1/references/lists/codes.csv").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice.get("/v1/references").await.body["references"],
        json!([])
    );
    let job_id = upload_with(&alice, json!({"id": id}), DATA.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "reference_missing", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/references"),
        "{done}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_document_is_checked_against_a_completed_jobs_profile() {
    let stack = stack_for(64 * 1024).await;
    let alice = Client::new(&stack, "alice");
    let job_id = alice
        .upload("c.csv", DATA.len() as u64, DATA.as_bytes().to_vec())
        .await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");

    // `name` is text, `amount` integers (one is 5000), `ssn` text: an integer `name` and a
    // numeric range on `ssn` do not fit; `amount` as decimal does; `nope` does not exist.
    let bad = json!({"version": 1,
    "columns": {"amount": {"type": "decimal"}, "name": {"type": "integer"}},
    "rules": [
        {"column": "amount", "check": {"range": {"max": 1000}}},
        {"column": "ssn", "check": {"range": {"min": 0}}},
        {"column": "nope", "check": "not_null"}
    ]});
    let a = alice
        .post_json(
            "/v1/workflows/validate",
            &json!({"rules": bad, "job_id": job_id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "invalid_rules");
    let errs = a.body["error"]["details"]["errors"].as_array().unwrap();
    let paths: Vec<&str> = errs.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/rules/2/column",
            "/columns/name/type",
            "/rules/1/check/range"
        ],
        "{errs:?}"
    );
    assert!(
        errs[1]["message"]
            .as_str()
            .unwrap()
            .contains("5 of the 5 non-empty values of `name` are not integers"),
        "{errs:?}"
    );

    let good = json!({"version": 1, "columns": {"amount": {"type": "decimal"}},
        "rules": [{"column": "amount", "check": {"range": {"max": 1000}}}]});
    let a = alice
        .post_json(
            "/v1/workflows/validate",
            &json!({"rules": good, "job_id": job_id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["valid"], true);
    assert_eq!(a.body["rule_ids"], json!(["amount_range"]));
    // Another owner's job is not found; a structurally bad document is 422 as on save.
    let bob = Client::new(&stack, "bob");
    let a = bob
        .post_json(
            "/v1/workflows/validate",
            &json!({"rules": good, "job_id": job_id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = alice
        .post_json(
            "/v1/workflows/validate",
            &json!({"rules": {"version": 1, "rulez": []}, "job_id": job_id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(a.body["error"]["details"]["errors"][0]["path"], "/rulez");
    stack.shutdown().await;
}

/// A rule every row breaks, on a file whose chunks' rejected parts are each over 8 MiB (so each
/// is rebased into a multipart upload) and whose records span several lines: rejected.csv holds
/// every row, in order, with its absolute source line, and nothing is clean.
#[tokio::test]
async fn a_large_rejected_output_is_rebased_exactly_in_bounded_parts() {
    let stack = stack_for(12 << 20).await;
    let alice = Client::new(&stack, "alice");
    let id = create_workflow(
        &alice,
        json!({"version": 1, "columns": {"n": {"type": "integer"}}, "rules": [
            {"id": "never", "column": "n", "check": {"range": {"max": -1}}}
        ]}),
    )
    .await;
    // Every third record has a quoted note with a line break inside: 4 lines per 3 records.
    let mut data = String::from("n,note\n");
    let mut lines = Vec::new();
    let mut line = 2u64;
    let mut i = 0u64;
    while data.len() < 30 << 20 {
        lines.push(line);
        if i.is_multiple_of(3) {
            data.push_str(&format!("{i},\"two\nlines {i}\"\n"));
            line += 2;
        } else {
            data.push_str(&format!("{i},one line {i} padded to be a little longer\n"));
            line += 1;
        }
        i += 1;
    }
    let job_id = upload_with(&alice, json!({"id": id}), data.as_bytes()).await;
    let done = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["rows"], 0, "{done}");
    assert_eq!(done["rejected_rows"], i, "{done}");
    assert!(
        done["progress"]["chunks_total"].as_u64().unwrap() >= 3,
        "{done}"
    );

    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let rejected = csv_rows(
        &objects
            .read_all(&format!("results/alice/{job_id}/rejected.csv"))
            .await
            .unwrap(),
    );
    assert_eq!(rejected.len() as u64, 1 + i, "header + every row");
    for (k, row) in rejected[1..].iter().enumerate() {
        assert_eq!(row[1], lines[k].to_string(), "row {k}: {row:?}");
        assert_eq!(row[2], "rule:never", "row {k}");
        assert!(row[3].starts_with(&format!("{k},")), "row {k}: {row:?}");
    }
    stack.shutdown().await;
}
