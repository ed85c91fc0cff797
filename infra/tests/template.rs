//! `template.yaml` agrees with `tessera_infra::resources::spec()`, the description the local
//! runtime provisions from: table keys and index, queue timings and redrive, event-source batch
//! sizes, the bucket's notification filter, lifecycle and CORS, and the environment the functions
//! read. Also: no IAM statement grants a wildcard action or an unscoped resource, every function's
//! grants are exactly the reviewed list, and Bedrock is granted only on the configured model.
//!
//! Pure parsing, no network. CloudFormation short tags (`!Ref`, `!Sub`, `!GetAtt`...) arrive from
//! serde_yaml as `Value::Tagged`; [`normalise`] rewrites them to the long form (`{Ref: ..}`,
//! `{Fn::Sub: ..}`, `{Fn::GetAtt: [id, attr]}`) so a check does not care which form was written.
//!
//! `TESSERA_TEMPLATE=/path/to/copy.yaml` checks another file, which is how to see these tests
//! fail on a deliberately broken copy without touching the real template.

use serde_yaml::{Mapping, Value};
use tessera_infra::resources::{spec, QueueSpec};

fn template() -> Value {
    let path = std::env::var("TESSERA_TEMPLATE")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml").to_string());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let raw: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    normalise(raw)
}

/// Rewrites short-form intrinsic functions to their long form, recursively.
fn normalise(v: Value) -> Value {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = normalise(t.value);
            let (key, inner) = match tag {
                "Ref" | "Condition" => (tag.to_string(), inner),
                // `!GetAtt Res.Attr` is a string; the long form is a list.
                "GetAtt" => {
                    let inner = match inner {
                        Value::String(s) => {
                            let (res, attr) = s
                                .split_once('.')
                                .unwrap_or_else(|| panic!("bad !GetAtt {s}"));
                            Value::Sequence(vec![res.into(), attr.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut m = Mapping::new();
            m.insert(key.into(), inner);
            Value::Mapping(m)
        }
        Value::Mapping(m) => {
            Value::Mapping(m.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(normalise).collect()),
        other => other,
    }
}

/// `v[p0][p1]...`, where a path element that parses as a number indexes a sequence.
/// Panics with the full path when something is missing, so a failure says where to look.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for (i, p) in path.iter().enumerate() {
        let next = match (cur, p.parse::<usize>()) {
            (Value::Sequence(s), Ok(n)) => s.get(n),
            _ => cur.get(*p),
        };
        cur = next.unwrap_or_else(|| panic!("template has no {}", path[..=i].join(".")));
    }
    cur
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    at(t, &["Resources", id])
}

fn props<'a>(t: &'a Value, id: &str) -> &'a Value {
    at(resource(t, id), &["Properties"])
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v:?}"))
}

/// A number, written either as a YAML number or as a numeric string (both valid in CloudFormation).
fn num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n
            .as_u64()
            .unwrap_or_else(|| panic!("not a whole number: {n}")),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")),
        other => panic!("expected a number, found {other:?}"),
    }
}

/// The string a `!Sub` renders, for the single-string form.
fn sub_text(v: &Value) -> &str {
    str_of(at(v, &["Fn::Sub"]))
}

fn get_att(res: &str, attr: &str) -> Value {
    normalise(Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
        tag: serde_yaml::value::Tag::new("GetAtt"),
        value: format!("{res}.{attr}").into(),
    })))
}

fn reference(res: &str) -> Value {
    let mut m = Mapping::new();
    m.insert("Ref".into(), res.into());
    Value::Mapping(m)
}

fn seq_of_str(v: &Value) -> Vec<&str> {
    match v {
        Value::Sequence(s) => s.iter().map(str_of).collect(),
        Value::String(s) => vec![s.as_str()],
        other => panic!("expected a list of strings, found {other:?}"),
    }
}

/// Logical ids and bodies of every resource of `ty`.
fn resources_of<'a>(t: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    at(t, &["Resources"])
        .as_mapping()
        .expect("Resources is a mapping")
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
        .map(|(k, r)| (str_of(k), r))
        .collect()
}

/// `(function id, event body)` of every event of `event_type` across all functions.
fn function_events<'a>(t: &'a Value, event_type: &str) -> Vec<(&'a str, &'a Value)> {
    let mut out = Vec::new();
    for (id, f) in resources_of(t, "AWS::Serverless::Function") {
        if let Some(events) = f
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping)
        {
            for (_, ev) in events {
                if ev.get("Type").and_then(Value::as_str) == Some(event_type) {
                    out.push((id, ev));
                }
            }
        }
    }
    out
}

#[test]
fn short_tags_are_normalised() {
    let v: Value =
        serde_yaml::from_str("a: !GetAtt Q.Arn\nb: !Sub \"${AWS::StackName}-x\"\nc: !Ref P")
            .unwrap();
    let v = normalise(v);
    assert_eq!(v["a"], get_att("Q", "Arn"));
    assert_eq!(at(&v["a"], &["Fn::GetAtt", "0"]).as_str(), Some("Q"));
    assert_eq!(sub_text(&v["b"]), "${AWS::StackName}-x");
    assert_eq!(v["c"], reference("P"));
}

#[test]
fn jobs_table_matches_spec() {
    let t = template();
    let s = spec().table;
    let p = props(&t, s.logical_id);
    assert_eq!(
        str_of(at(resource(&t, s.logical_id), &["Type"])),
        "AWS::DynamoDB::Table"
    );
    assert!(
        sub_text(at(p, &["TableName"])).ends_with(&format!("-{}", s.name)),
        "table name must end with -{}",
        s.name
    );
    assert_eq!(str_of(at(p, &["BillingMode"])), "PAY_PER_REQUEST");

    let key = |schema: &Value, kind: &str| -> String {
        let keys = schema.as_sequence().expect("KeySchema is a list");
        let k: Vec<_> = keys
            .iter()
            .filter(|k| str_of(at(k, &["KeyType"])) == kind)
            .collect();
        assert_eq!(k.len(), 1, "exactly one {kind} key");
        str_of(at(k[0], &["AttributeName"])).to_string()
    };
    assert_eq!(key(at(p, &["KeySchema"]), "HASH"), s.hash_key);
    assert_eq!(key(at(p, &["KeySchema"]), "RANGE"), s.range_key);

    let gsis = at(p, &["GlobalSecondaryIndexes"])
        .as_sequence()
        .expect("GSIs are a list");
    assert_eq!(gsis.len(), s.indexes.len(), "index count");
    for ix in &s.indexes {
        let g = gsis
            .iter()
            .find(|g| str_of(at(g, &["IndexName"])) == ix.name)
            .unwrap_or_else(|| panic!("no GSI {}", ix.name));
        assert_eq!(
            key(at(g, &["KeySchema"]), "HASH"),
            ix.hash_key,
            "{} hash key",
            ix.name
        );
        assert_eq!(
            key(at(g, &["KeySchema"]), "RANGE"),
            ix.range_key,
            "{} range key",
            ix.name
        );
        assert_eq!(str_of(at(g, &["Projection", "ProjectionType"])), "ALL");
    }

    // Every key attribute is declared as a string, and nothing else is declared (CloudFormation
    // rejects unused attribute definitions).
    let mut declared: Vec<(&str, &str)> = at(p, &["AttributeDefinitions"])
        .as_sequence()
        .expect("AttributeDefinitions is a list")
        .iter()
        .map(|a| {
            (
                str_of(at(a, &["AttributeName"])),
                str_of(at(a, &["AttributeType"])),
            )
        })
        .collect();
    declared.sort();
    let mut expected = vec![(s.hash_key, "S"), (s.range_key, "S")];
    expected.extend(
        s.indexes
            .iter()
            .flat_map(|i| [(i.hash_key, "S"), (i.range_key, "S")]),
    );
    expected.sort();
    expected.dedup();
    assert_eq!(declared, expected);

    assert_eq!(
        str_of(at(p, &["TimeToLiveSpecification", "AttributeName"])),
        s.ttl_attribute
    );
    assert_eq!(
        at(p, &["TimeToLiveSpecification", "Enabled"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        str_of(at(p, &["StreamSpecification", "StreamViewType"])),
        s.stream_view_type
    );
    assert_eq!(
        at(
            p,
            &[
                "PointInTimeRecoverySpecification",
                "PointInTimeRecoveryEnabled"
            ]
        )
        .as_bool(),
        Some(true)
    );
}

fn check_queue(t: &Value, q: &QueueSpec) {
    let p = props(t, q.logical_id);
    let what = q.logical_id;
    assert_eq!(str_of(at(resource(t, what), &["Type"])), "AWS::SQS::Queue");
    assert!(
        sub_text(at(p, &["QueueName"])).ends_with(&format!("-{}", q.name)),
        "{what} name must end with -{}",
        q.name
    );
    assert_eq!(
        num(at(p, &["VisibilityTimeout"])),
        u64::from(q.visibility_timeout_secs),
        "{what} VisibilityTimeout"
    );
    assert_eq!(
        num(at(p, &["MessageRetentionPeriod"])),
        u64::from(q.message_retention_secs),
        "{what} MessageRetentionPeriod"
    );
    assert_eq!(
        num(at(p, &["ReceiveMessageWaitTimeSeconds"])),
        u64::from(q.receive_wait_secs),
        "{what} ReceiveMessageWaitTimeSeconds"
    );
    assert_eq!(
        at(p, &["SqsManagedSseEnabled"]).as_bool(),
        Some(true),
        "{what} SSE"
    );
    assert_eq!(
        at(p, &["RedrivePolicy", "deadLetterTargetArn"]),
        &get_att(q.dlq_logical_id, "Arn"),
        "{what} DLQ"
    );
    assert_eq!(
        num(at(p, &["RedrivePolicy", "maxReceiveCount"])),
        u64::from(q.max_receive_count),
        "{what} maxReceiveCount"
    );

    let dlq = props(t, q.dlq_logical_id);
    assert!(
        sub_text(at(dlq, &["QueueName"])).ends_with(&format!("-{}", q.dlq_name)),
        "{} name",
        q.dlq_logical_id
    );
    assert_eq!(
        at(dlq, &["SqsManagedSseEnabled"]).as_bool(),
        Some(true),
        "{} SSE",
        q.dlq_logical_id
    );
    // A DLQ keeps failures at least as long as the source queue kept the message.
    assert!(num(at(dlq, &["MessageRetentionPeriod"])) >= u64::from(q.message_retention_secs));

    // Exactly one function consumes the queue, with the spec's batch size and partial failures.
    let queue_arn = get_att(q.logical_id, "Arn");
    let consumers: Vec<_> = function_events(t, "SQS")
        .into_iter()
        .filter(|(_, ev)| at(ev, &["Properties", "Queue"]) == &queue_arn)
        .collect();
    assert_eq!(
        consumers.len(),
        1,
        "{what} must have exactly one SQS event source"
    );
    let (func, ev) = consumers[0];
    assert_eq!(
        num(at(ev, &["Properties", "BatchSize"])),
        u64::from(q.batch_size),
        "{func} BatchSize"
    );
    assert!(
        seq_of_str(at(ev, &["Properties", "FunctionResponseTypes"]))
            .contains(&"ReportBatchItemFailures"),
        "{func} must report partial batch failures"
    );

    // AWS's rule of thumb: visibility timeout at least 6x the consumer's timeout, or messages
    // reappear while a slow invocation is still working on them.
    let timeout = num(at(props(t, func), &["Timeout"]));
    assert!(
        u64::from(q.visibility_timeout_secs) >= 6 * timeout,
        "{what} visibility {} < 6 x {func} timeout {timeout}",
        q.visibility_timeout_secs
    );
}

/// A finalizer that dies is taken over by its own message when SQS hands it out again
/// (docs/pipeline.md § *A finalizer that dies*): that happens a visibility timeout after the
/// message was received, and the job moved to `finalizing` at most one function timeout after
/// that receipt, so the job is stale by then only if stale age + timeout < visibility timeout.
/// The stale age must also outlast a live finalizer (the function's timeout), or a live one
/// would be taken over.
#[test]
fn a_dead_finalizers_message_comes_back_after_its_job_is_stale() {
    let t = template();
    let q = spec().chunk_tasks;
    let queue_arn = get_att(q.logical_id, "Arn");
    let (func, _) = function_events(&t, "SQS")
        .into_iter()
        .find(|(_, ev)| at(ev, &["Properties", "Queue"]) == &queue_arn)
        .expect("the chunk queue's consumer");
    let timeout = num(at(props(&t, func), &["Timeout"]));
    // The function's own variable, else the Globals', else the default.
    let var = |v: Option<&Value>| {
        v.and_then(|v| v.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(|vars| vars.get("TESSERA_STALE_FINALIZING_SECS"))
            .map(num)
    };
    let stale = var(Some(props(&t, func)))
        .or_else(|| var(t.get("Globals").and_then(|g| g.get("Function"))))
        .unwrap_or(tessera_shared::config::DEFAULT_STALE_FINALIZING_SECS);
    let visibility = u64::from(q.visibility_timeout_secs);
    assert!(
        timeout < stale,
        "stale age {stale} s must outlast a live finalizer ({func} timeout {timeout} s)"
    );
    assert!(
        stale + timeout < visibility,
        "a dead finalizer's message comes back {visibility} s after its receipt; the job must be stale by then (stale age {stale} s + {func} timeout {timeout} s)"
    );
}

#[test]
fn queues_match_spec() {
    let t = template();
    let s = spec();
    check_queue(&t, &s.upload_events);
    check_queue(&t, &s.chunk_tasks);
    check_queue(&t, &s.agent_tasks);
}

#[test]
fn bucket_matches_spec() {
    let t = template();
    let s = spec();
    let b = &s.bucket;
    let p = props(&t, b.logical_id);
    assert_eq!(
        str_of(at(resource(&t, b.logical_id), &["Type"])),
        "AWS::S3::Bucket"
    );

    // Notification: ObjectCreated under the spec's prefix/suffix, to the upload-events queue.
    let qc = at(p, &["NotificationConfiguration", "QueueConfigurations"])
        .as_sequence()
        .expect("list");
    assert_eq!(qc.len(), 1, "one queue notification");
    assert_eq!(str_of(at(&qc[0], &["Event"])), "s3:ObjectCreated:*");
    assert_eq!(
        at(&qc[0], &["Queue"]),
        &get_att(s.upload_events.logical_id, "Arn")
    );
    let rules = at(&qc[0], &["Filter", "S3Key", "Rules"])
        .as_sequence()
        .expect("list");
    let rule = |name: &str| {
        let r: Vec<_> = rules
            .iter()
            .filter(|r| str_of(at(r, &["Name"])).eq_ignore_ascii_case(name))
            .collect();
        assert_eq!(r.len(), 1, "one {name} rule");
        str_of(at(r[0], &["Value"]))
    };
    assert_eq!(rule("prefix"), b.notify_prefix);
    assert_eq!(rule("suffix"), b.notify_suffix);

    // Lifecycle: incomplete multipart uploads are aborted after the spec's days.
    let lifecycle = at(p, &["LifecycleConfiguration", "Rules"])
        .as_sequence()
        .expect("list");
    let abort: Vec<_> = lifecycle
        .iter()
        .filter_map(|r| r.get("AbortIncompleteMultipartUpload"))
        .collect();
    assert_eq!(abort.len(), 1, "one abort-incomplete-multipart rule");
    assert_eq!(
        num(at(abort[0], &["DaysAfterInitiation"])),
        u64::from(b.abort_incomplete_multipart_days)
    );
    assert!(
        lifecycle.iter().any(
            |r| r.get("Prefix").and_then(Value::as_str) == Some(b.notify_prefix)
                && r.get("ExpirationInDays").is_some()
        ),
        "uploads must expire"
    );

    // CORS: the browser can read the headers it needs (ETag to complete multipart uploads).
    let cors = at(p, &["CorsConfiguration", "CorsRules"])
        .as_sequence()
        .expect("list");
    assert_eq!(cors.len(), 1);
    assert_eq!(
        seq_of_str(at(&cors[0], &["ExposedHeaders"])),
        b.cors_expose_headers
    );
    assert!(seq_of_str(at(&cors[0], &["AllowedMethods"])).contains(&"PUT"));

    // Private and encrypted.
    for k in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            at(p, &["PublicAccessBlockConfiguration", k]).as_bool(),
            Some(true),
            "{k}"
        );
    }
    assert_eq!(
        str_of(at(
            p,
            &[
                "BucketEncryption",
                "ServerSideEncryptionConfiguration",
                "0",
                "ServerSideEncryptionByDefault",
                "SSEAlgorithm"
            ]
        )),
        "AES256"
    );

    // The queue policy lets exactly this bucket send; it names the bucket by its constructed ARN
    // (to avoid a dependency cycle), so that ARN must be the bucket's name.
    let bucket_name = sub_text(at(p, &["BucketName"]));
    let policies: Vec<_> = resources_of(&t, "AWS::SQS::QueuePolicy")
        .into_iter()
        .filter(|(_, r)| seq_of_policy_targets(r).contains(&reference(s.upload_events.logical_id)))
        .collect();
    assert_eq!(policies.len(), 1, "one policy on the upload-events queue");
    let (policy_id, policy) = policies[0];
    let stmt = at(policy, &["Properties", "PolicyDocument", "Statement", "0"]);
    assert_eq!(
        str_of(at(stmt, &["Principal", "Service"])),
        "s3.amazonaws.com"
    );
    assert_eq!(
        sub_text(at(stmt, &["Condition", "ArnEquals", "aws:SourceArn"])),
        format!("arn:${{AWS::Partition}}:s3:::{bucket_name}")
    );
    assert_eq!(
        at(stmt, &["Condition", "StringEquals", "aws:SourceAccount"]),
        &reference("AWS::AccountId")
    );
    let depends = resource(&t, b.logical_id)
        .get("DependsOn")
        .map(seq_of_str)
        .unwrap_or_default();
    assert!(
        depends.contains(&policy_id),
        "{} must DependsOn {policy_id}",
        b.logical_id
    );
}

fn seq_of_policy_targets(policy: &Value) -> Vec<Value> {
    at(policy, &["Properties", "Queues"])
        .as_sequence()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn functions_read_the_spec_resources() {
    let t = template();
    let s = spec();
    let env = at(&t, &["Globals", "Function", "Environment", "Variables"]);
    assert_eq!(
        at(env, &["TESSERA_BUCKET"]),
        &reference(s.bucket.logical_id)
    );
    assert_eq!(
        at(env, &["TESSERA_JOBS_TABLE"]),
        &reference(s.table.logical_id)
    );
    // `Ref` of a queue is its URL.
    assert_eq!(
        at(env, &["TESSERA_CHUNK_QUEUE_URL"]),
        &reference(s.chunk_tasks.logical_id)
    );
    // Every function knows the agent queue, as every function of the local stack does (the
    // chunk function sends continuations there; the agent functions send turns).
    assert_eq!(
        at(env, &["TESSERA_AGENT_QUEUE_URL"]),
        &reference(s.agent_tasks.logical_id)
    );
    let ttl = num(at(env, &["TESSERA_PRESIGN_TTL_SECS"]));
    assert!((1..=tessera_shared::config::MAX_PRESIGN_TTL_SECS).contains(&ttl));

    // Parameter defaults are the code's defaults, so an undecorated deploy behaves like local.
    let default = |name: &str| num(at(&t, &["Parameters", name, "Default"]));
    assert_eq!(
        default("ChunkSize"),
        tessera_shared::config::DEFAULT_CHUNK_SIZE
    );
    assert_eq!(
        default("MaxUploadBytes"),
        tessera_shared::config::DEFAULT_MAX_UPLOAD_BYTES
    );

    let g = at(&t, &["Globals", "Function"]);
    assert_eq!(str_of(at(g, &["Runtime"])), "provided.al2023");
    assert_eq!(str_of(at(g, &["Handler"])), "bootstrap");
    let mut binaries: Vec<&str> = resources_of(&t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            assert_eq!(
                str_of(at(f, &["Metadata", "BuildMethod"])),
                "rust-cargolambda",
                "{id}"
            );
            str_of(at(f, &["Metadata", "BuildProperties", "Binary"]))
        })
        .collect();
    binaries.sort();
    assert_eq!(
        binaries,
        [
            "tessera-agent",
            "tessera-agent-worker",
            "tessera-api",
            "tessera-authorizer",
            "tessera-chunk",
            "tessera-chunk-dlq",
            "tessera-planner",
            "tessera-planner-dlq",
            "tessera-status",
            "tessera-status-stream",
            "tessera-status-ws"
        ]
    );
}

#[test]
fn http_routes_are_authorised_except_health_and_openapi() {
    let t = template();
    let api = props(&t, "HttpApi");
    assert_eq!(str_of(at(api, &["Auth", "DefaultAuthorizer"])), "JwtAuth");
    let jwt = at(api, &["Auth", "Authorizers", "JwtAuth"]);
    assert_eq!(
        str_of(at(jwt, &["IdentitySource"])),
        "$request.header.Authorization"
    );
    assert_eq!(
        at(jwt, &["JwtConfiguration", "issuer"]),
        &reference("JwtIssuer")
    );

    let mut routes: Vec<(String, bool)> = function_events(&t, "HttpApi")
        .into_iter()
        .map(|(_, ev)| {
            let p = at(ev, &["Properties"]);
            assert_eq!(at(p, &["ApiId"]), &reference("HttpApi"));
            let open = p
                .get("Auth")
                .and_then(|a| a.get("Authorizer"))
                .and_then(Value::as_str)
                == Some("NONE");
            (
                format!(
                    "{} {}",
                    str_of(at(p, &["Method"])),
                    str_of(at(p, &["Path"]))
                ),
                open,
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("DELETE /v1/references/{key+}".to_string(), false),
            ("DELETE /v1/uploads/{job}".to_string(), false),
            ("DELETE /v1/workflows/{id}".to_string(), false),
            ("GET /v1/health".to_string(), true),
            ("GET /v1/jobs".to_string(), false),
            ("GET /v1/jobs/{id}".to_string(), false),
            ("GET /v1/jobs/{id}/exports/{export_id}".to_string(), false),
            ("GET /v1/jobs/{id}/profile".to_string(), false),
            ("GET /v1/jobs/{id}/queries/{query_id}".to_string(), false),
            ("GET /v1/openapi.json".to_string(), true),
            ("GET /v1/references".to_string(), false),
            ("GET /v1/rules/dry-runs/{id}".to_string(), false),
            ("GET /v1/sessions/{id}".to_string(), false),
            ("GET /v1/uploads/{job}/parts".to_string(), false),
            ("GET /v1/usage".to_string(), false),
            ("GET /v1/workflows".to_string(), false),
            ("GET /v1/workflows/{id}".to_string(), false),
            (
                "GET /v1/workflows/{id}/versions/{version}".to_string(),
                false
            ),
            ("POST /v1/jobs/{id}/cancel".to_string(), false),
            ("POST /v1/jobs/{id}/exports".to_string(), false),
            ("POST /v1/jobs/{id}/queries".to_string(), false),
            ("POST /v1/jobs/{id}/retry".to_string(), false),
            ("POST /v1/references".to_string(), false),
            ("POST /v1/rules/dry-runs".to_string(), false),
            ("POST /v1/rules/generate".to_string(), false),
            ("POST /v1/sessions".to_string(), false),
            ("POST /v1/sessions/{id}/messages".to_string(), false),
            ("POST /v1/uploads".to_string(), false),
            ("POST /v1/uploads/{job}/complete".to_string(), false),
            ("POST /v1/workflows".to_string(), false),
            ("POST /v1/workflows/validate".to_string(), false),
            ("PUT /v1/workflows/{id}".to_string(), false),
        ]
    );
}

/// Every policy statement anywhere in the template (function policies, queue policies, roles).
fn statements(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                if k.as_str() == Some("Statement") {
                    match child {
                        Value::Sequence(s) => out.extend(s.iter().cloned()),
                        other => out.push(other.clone()),
                    }
                } else {
                    statements(child, out);
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|c| statements(c, out)),
        _ => {}
    }
}

#[test]
fn iam_statements_are_least_privilege() {
    let t = template();
    let mut all = Vec::new();
    statements(&t, &mut all);
    // The four functions' statements plus the queue policy: a walk that finds nothing is a bug.
    assert!(all.len() >= 10, "found only {} statements", all.len());
    for st in &all {
        let sid = st.get("Sid").and_then(Value::as_str).unwrap_or("<no Sid>");
        assert!(
            st.get("NotAction").is_none() && st.get("NotResource").is_none(),
            "{sid}: NotAction/NotResource"
        );
        let actions = seq_of_str(at(st, &["Action"]));
        assert!(!actions.is_empty(), "{sid}: no actions");
        for a in actions {
            assert!(!a.contains('*'), "{sid}: wildcard action {a}");
        }
        if st.get("Effect").and_then(Value::as_str) == Some("Allow") {
            let resources = match at(st, &["Resource"]) {
                Value::Sequence(s) => s.clone(),
                one => vec![one.clone()],
            };
            for r in resources {
                assert_ne!(r.as_str(), Some("*"), "{sid}: unscoped resource");
            }
        }
    }
}

/// A statement resource as a short readable name: `JobsTable`, `JobsTable/index/by_owner`,
/// `DataBucket/uploads/*`, `ChunkTasksQueue`.
fn resource_name(r: &Value) -> String {
    if let Some(att) = r.get("Fn::GetAtt") {
        assert_eq!(
            str_of(at(att, &["1"])),
            "Arn",
            "only ARNs are policy resources"
        );
        return str_of(at(att, &["0"])).to_string();
    }
    let sub = sub_text(r);
    // Bedrock models: `bedrock:<region>:<account>:<type>/<id>`, as written.
    if let Some(rest) = sub.strip_prefix("arn:${AWS::Partition}:bedrock:") {
        return format!("bedrock:{rest}");
    }
    // WebSocket management: `arn:...:execute-api:<region>:<account>:${Api}/<stage>/POST/@connections/*`.
    if let Some(api) =
        sub.strip_prefix("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${")
    {
        let (var, rest) = api.split_once('}').expect("closing brace");
        return format!("{var}{rest}");
    }
    let (var, rest) = sub
        .strip_prefix("${")
        .and_then(|s| s.split_once(".Arn}"))
        .unwrap_or_else(|| panic!("resource {sub} is not ${{Res.Arn}}..."));
    format!("{var}{rest}")
}

/// A condition's value as text: a string, or the text of a `!Sub`.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => sub_text(other).to_string(),
    }
}

/// ` when <operator> <key>=<value>` for each condition of a statement (empty without any).
fn conditions(st: &Value) -> String {
    let Some(c) = st.get("Condition") else {
        return String::new();
    };
    let mut out = String::new();
    for (op, keys) in c.as_mapping().expect("Condition is a mapping") {
        for (k, v) in keys.as_mapping().expect("a condition operator maps keys") {
            out.push_str(&format!(
                " when {} {}={}",
                str_of(op),
                str_of(k),
                value_text(v)
            ));
        }
    }
    out
}

/// A function's policies with the condition each depends on: a plain policy (`None`), or
/// `!If [Cond, policy, !Ref AWS::NoValue]` (granted only when `Cond` holds, nothing otherwise).
fn policies_of(id: &str, f: &Value) -> Vec<(Option<String>, Value)> {
    at(f, &["Properties", "Policies"])
        .as_sequence()
        .expect("Policies is a list")
        .iter()
        .map(|p| match p.get("Fn::If") {
            Some(branches) => {
                assert_eq!(
                    at(branches, &["2"]),
                    &reference("AWS::NoValue"),
                    "{id}: a conditional policy must grant nothing when its condition is false"
                );
                (
                    Some(str_of(at(branches, &["0"])).to_string()),
                    at(branches, &["1"]).clone(),
                )
            }
            None => (None, p.clone()),
        })
        .collect()
}

/// What each function may do, as `action resource` lines (with ` when ...` for a statement's
/// conditions and ` if Cond` for a policy that exists only under a template condition).
/// Changing a permission means changing this list too, so a grant is always a deliberate,
/// reviewed decision (docs/deploy.md and docs/agent.md say why).
#[test]
fn function_permissions_are_exactly_these() {
    let t = template();
    let profile_arn = "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/${ModelId}";
    let bedrock = [
        "bedrock:InvokeModel bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/${ModelId} if HasModel".to_string(),
        "bedrock:InvokeModel bedrock:*::foundation-model/${ModelId} if HasModel".to_string(),
        format!("bedrock:InvokeModel bedrock:*::foundation-model/* when StringEquals bedrock:InferenceProfileArn={profile_arn} if HasModel"),
    ];
    let agent: Vec<String> = [
        "dynamodb:GetItem JobsTable",
        "dynamodb:PutItem JobsTable",
        "dynamodb:Query JobsTable",
        "dynamodb:UpdateItem JobsTable",
        "s3:GetObject DataBucket/results/*",
        "sqs:SendMessage AgentTasksQueue",
        "sqs:SendMessage ChunkTasksQueue",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(bedrock.iter().cloned())
    .collect();
    let agent_worker: Vec<String> = [
        "dynamodb:GetItem JobsTable",
        "dynamodb:PutItem JobsTable",
        "dynamodb:Query JobsTable",
        "dynamodb:UpdateItem JobsTable",
        "s3:DeleteObject DataBucket/results/*/queries/*",
        "s3:GetObject DataBucket/results/*",
        "s3:GetObject DataBucket/uploads/*",
        "s3:PutObject DataBucket/results/*/queries/*",
        "s3:PutObject DataBucket/results/*/sessions/*",
        "sqs:SendMessage AgentTasksQueue",
        "sqs:SendMessage ChunkTasksQueue",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(bedrock.iter().cloned())
    .collect();
    let agent: Vec<&str> = agent.iter().map(String::as_str).collect();
    let agent_worker: Vec<&str> = agent_worker.iter().map(String::as_str).collect();
    let expected: &[(&str, &[&str])] = &[
        ("AgentFunction", &agent),
        ("AgentWorkerFunction", &agent_worker),
        (
            "ApiFunction",
            &[
                "dynamodb:BatchGetItem JobsTable",
                "dynamodb:GetItem JobsTable",
                "dynamodb:PutItem JobsTable",
                "dynamodb:Query JobsTable",
                "dynamodb:Query JobsTable/index/by_owner",
                "dynamodb:UpdateItem JobsTable",
                "s3:AbortMultipartUpload DataBucket/results/*/exports/*",
                "s3:AbortMultipartUpload DataBucket/uploads/*",
                "s3:DeleteObject DataBucket/refs/*",
                "s3:DeleteObject DataBucket/results/*",
                "s3:GetObject DataBucket/refs/*",
                "s3:GetObject DataBucket/results/*",
                "s3:GetObject DataBucket/uploads/*",
                "s3:ListBucket DataBucket when StringLike s3:prefix=refs/*",
                "s3:ListMultipartUploadParts DataBucket/uploads/*",
                "s3:PutObject DataBucket/refs/*",
                "s3:PutObject DataBucket/results/*/exports/*",
                "s3:PutObject DataBucket/results/*/queries/*",
                "s3:PutObject DataBucket/uploads/*",
                "sqs:SendMessage ChunkTasksQueue",
            ],
        ),
        (
            "ChunkDeadLetterFunction",
            &[
                "dynamodb:ConditionCheckItem JobsTable",
                "dynamodb:GetItem JobsTable",
                "dynamodb:UpdateItem JobsTable",
            ],
        ),
        (
            "ChunkFunction",
            &[
                "bedrock:InvokeModel bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/${ModelId} if HasModel",
                "bedrock:InvokeModel bedrock:*::foundation-model/${ModelId} if HasModel",
                "bedrock:InvokeModel bedrock:*::foundation-model/* when StringEquals bedrock:InferenceProfileArn=arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/${ModelId} if HasModel",
                "dynamodb:BatchGetItem JobsTable",
                "dynamodb:GetItem JobsTable",
                "dynamodb:PutItem JobsTable",
                "dynamodb:Query JobsTable",
                "dynamodb:UpdateItem JobsTable",
                "s3:AbortMultipartUpload DataBucket/results/*",
                "s3:DeleteObject DataBucket/results/*",
                "s3:GetObject DataBucket/refs/*",
                "s3:GetObject DataBucket/results/*",
                "s3:GetObject DataBucket/uploads/*",
                "s3:ListMultipartUploadParts DataBucket/results/*",
                "s3:PutObject DataBucket/results/*",
                "sqs:SendMessage AgentTasksQueue",
            ],
        ),
        (
            "PlannerDeadLetterFunction",
            &[
                "dynamodb:ConditionCheckItem JobsTable",
                "dynamodb:GetItem JobsTable",
                "dynamodb:UpdateItem JobsTable",
            ],
        ),
        (
            "PlannerFunction",
            &[
                "dynamodb:BatchGetItem JobsTable",
                "dynamodb:GetItem JobsTable",
                "dynamodb:UpdateItem JobsTable",
                "s3:AbortMultipartUpload DataBucket/results/*",
                "s3:DeleteObject DataBucket/results/*",
                "s3:GetObject DataBucket/refs/*",
                "s3:GetObject DataBucket/results/*",
                "s3:GetObject DataBucket/uploads/*",
                "s3:ListMultipartUploadParts DataBucket/results/*",
                "s3:PutObject DataBucket/results/*",
                "sqs:SendMessage ChunkTasksQueue",
            ],
        ),
        (
            "StatusFunction",
            &[
                "dynamodb:BatchGetItem JobsTable",
                "dynamodb:GetItem JobsTable",
            ],
        ),
        (
            "StatusStreamFunction",
            &[
                "dynamodb:BatchGetItem JobsTable",
                "dynamodb:DeleteItem JobsTable",
                "dynamodb:GetItem JobsTable",
                "dynamodb:Query JobsTable",
                "dynamodb:UpdateItem JobsTable",
                "execute-api:ManageConnections WebSocketApi/live/POST/@connections/*",
            ],
        ),
        (
            "StatusWsFunction",
            &[
                "dynamodb:BatchGetItem JobsTable",
                "dynamodb:DeleteItem JobsTable",
                "dynamodb:GetItem JobsTable",
                "dynamodb:PutItem JobsTable",
                "dynamodb:UpdateItem JobsTable",
                "execute-api:ManageConnections WebSocketApi/live/POST/@connections/*",
            ],
        ),
        // The $connect authorizer calls no AWS API: it only fetches the issuer's public keys.
        ("WsAuthorizerFunction", &[]),
    ];
    let mut actual = Vec::new();
    for (id, f) in resources_of(&t, "AWS::Serverless::Function") {
        let mut lines = Vec::new();
        for (condition, p) in policies_of(id, f) {
            // Only inline statements: a managed policy or SAM policy template would grant
            // actions this test cannot see.
            let stmts = p
                .get("Statement")
                .unwrap_or_else(|| panic!("{id}: policy without Statement: {p:?}"));
            let only_if = condition.map(|c| format!(" if {c}")).unwrap_or_default();
            for st in stmts.as_sequence().expect("Statement is a list") {
                assert_eq!(str_of(at(st, &["Effect"])), "Allow");
                let resources: Vec<String> = match at(st, &["Resource"]) {
                    Value::Sequence(s) => s.iter().map(resource_name).collect(),
                    one => vec![resource_name(one)],
                };
                let when = conditions(st);
                for a in seq_of_str(at(st, &["Action"])) {
                    lines.extend(resources.iter().map(|r| format!("{a} {r}{when}{only_if}")));
                }
            }
        }
        lines.sort();
        lines.dedup();
        actual.push((id.to_string(), lines));
    }
    actual.sort();
    let expected: Vec<(String, Vec<String>)> = expected
        .iter()
        .map(|(id, l)| {
            let mut lines: Vec<String> = l.iter().map(|s| s.to_string()).collect();
            lines.sort();
            (id.to_string(), lines)
        })
        .collect();
    assert_eq!(actual, expected);
}

/// `$connect` is authorised by the Lambda REQUEST authorizer with the `token` query parameter as
/// its identity source; the authorizer verifies tokens of the HTTP API's issuer and audience; API
/// Gateway may invoke it only as this API's authorizer; the other routes carry no authorizer
/// (a WebSocket API authorises at connect time).
#[test]
fn websocket_connect_uses_the_lambda_authorizer() {
    let t = template();
    let routes = resources_of(&t, "AWS::ApiGatewayV2::Route");
    let mut seen = Vec::new();
    for (id, r) in routes {
        let p = at(r, &["Properties"]);
        let key = str_of(at(p, &["RouteKey"]));
        seen.push(key.to_string());
        if key == "$connect" {
            assert_eq!(str_of(at(p, &["AuthorizationType"])), "CUSTOM", "{id}");
            assert_eq!(at(p, &["AuthorizerId"]), &reference("WebSocketAuthorizer"));
        } else {
            assert!(
                p.get("AuthorizerId").is_none()
                    && p.get("AuthorizationType")
                        .and_then(Value::as_str)
                        .unwrap_or("NONE")
                        == "NONE",
                "{id}: only $connect is authorised"
            );
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "$connect",
            "$default",
            "$disconnect",
            "subscribe",
            "unsubscribe"
        ]
    );

    let a = props(&t, "WebSocketAuthorizer");
    assert_eq!(
        str_of(at(resource(&t, "WebSocketAuthorizer"), &["Type"])),
        "AWS::ApiGatewayV2::Authorizer"
    );
    assert_eq!(at(a, &["ApiId"]), &reference("WebSocketApi"));
    assert_eq!(str_of(at(a, &["AuthorizerType"])), "REQUEST");
    assert_eq!(
        seq_of_str(at(a, &["IdentitySource"])),
        ["route.request.querystring.token"]
    );
    assert_eq!(
        sub_text(at(a, &["AuthorizerUri"])),
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${WsAuthorizerFunction.Arn}/invocations"
    );

    let f = props(&t, "WsAuthorizerFunction");
    assert_eq!(
        at(f, &["Environment", "Variables", "TESSERA_JWT_ISSUER"]),
        &reference("JwtIssuer")
    );
    assert_eq!(
        at(f, &["Environment", "Variables", "TESSERA_JWT_AUDIENCE"]),
        &reference("JwtAudience")
    );
    // The same issuer and audience as the HTTP API's JWT authorizer.
    let jwt = at(
        props(&t, "HttpApi"),
        &["Auth", "Authorizers", "JwtAuth", "JwtConfiguration"],
    );
    assert_eq!(at(jwt, &["issuer"]), &reference("JwtIssuer"));
    assert_eq!(at(jwt, &["audience", "0"]), &reference("JwtAudience"));

    // Exactly one permission lets API Gateway invoke the authorizer, and only as this authorizer.
    let perms: Vec<_> = resources_of(&t, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, r)| {
            at(r, &["Properties", "FunctionName"]) == &reference("WsAuthorizerFunction")
        })
        .collect();
    assert_eq!(perms.len(), 1, "one invoke permission for the authorizer");
    let p = at(perms[0].1, &["Properties"]);
    assert_eq!(str_of(at(p, &["Action"])), "lambda:InvokeFunction");
    assert_eq!(str_of(at(p, &["Principal"])), "apigateway.amazonaws.com");
    assert_eq!(
        sub_text(at(p, &["SourceArn"])),
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/authorizers/${WebSocketAuthorizer}"
    );
}

/// The stream's event source mapping admits exactly the records the status function acts on:
/// job items (`sk = META`), the jobs' shard counters (`sk = COUNTER`, progress since the
/// counters are sharded: docs/websocket.md § *Hot key*) and query records (`sk` prefix
/// `QUERY#`; the handler drops their range items).
#[test]
fn status_stream_filter_admits_job_items_and_shard_counters() {
    let t = template();
    let ev = function_events(&t, "DynamoDB");
    assert_eq!(ev.len(), 1, "one stream consumer");
    let (func, ev) = ev[0];
    assert_eq!(func, "StatusStreamFunction");
    let mut keys: Vec<String> = at(ev, &["Properties", "FilterCriteria", "Filters"])
        .as_sequence()
        .expect("Filters is a list")
        .iter()
        .map(|f| {
            let p: serde_json::Value =
                serde_json::from_str(str_of(at(f, &["Pattern"]))).expect("pattern is JSON");
            let sk = &p["dynamodb"]["Keys"]["sk"]["S"];
            assert_eq!(sk.as_array().map(Vec::len), Some(1), "{p}");
            match sk[0].as_str() {
                Some(exact) => exact.to_string(),
                None => format!("prefix {}", sk[0]["prefix"].as_str().expect("a prefix")),
            }
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            tessera_shared::store::jobs::COUNTER_SK,
            "META",
            "prefix MSG#",
            "prefix QUERY#"
        ]
    );
}

/// A browser calls every route, so the HTTP API's CORS must allow every method a route uses
/// (PUT was missing once: workflow updates failed from the page's origin).
#[test]
fn cors_allows_every_route_method() {
    let t = template();
    let allowed = seq_of_str(at(
        props(&t, "HttpApi"),
        &["CorsConfiguration", "AllowMethods"],
    ));
    assert!(allowed.contains(&"OPTIONS"), "preflight: {allowed:?}");
    for (id, ev) in function_events(&t, "HttpApi") {
        let method = str_of(at(ev, &["Properties", "Method"]));
        assert!(
            allowed.contains(&method),
            "{id} serves {method} but CORS allows only {allowed:?}"
        );
    }
}

/// Every dead-letter queue (a queue some redrive policy targets) has a consumer (an SQS event
/// of a function) or an alarm on its visible messages that notifies someone: messages left in a
/// DLQ nobody reads are lost work.
#[test]
fn every_dead_letter_queue_is_consumed_or_alarmed() {
    let t = template();
    let dlqs: Vec<&str> = resources_of(&t, "AWS::SQS::Queue")
        .into_iter()
        .filter_map(|(_, q)| q.get("Properties")?.get("RedrivePolicy"))
        .map(|r| {
            let target = at(r, &["deadLetterTargetArn"]);
            resources_of(&t, "AWS::SQS::Queue")
                .into_iter()
                .map(|(id, _)| id)
                .find(|id| target == &get_att(id, "Arn"))
                .unwrap_or_else(|| panic!("redrive target {target:?} is not a queue here"))
        })
        .collect();
    assert_eq!(
        dlqs.len(),
        3,
        "upload events, chunk tasks and agent tasks: {dlqs:?}"
    );
    let alarms = resources_of(&t, "AWS::CloudWatch::Alarm");
    for dlq in dlqs {
        let consumed = function_events(&t, "SQS")
            .iter()
            .any(|(_, ev)| at(ev, &["Properties", "Queue"]) == &get_att(dlq, "Arn"));
        let alarmed = alarms.iter().any(|(_, a)| {
            let p = at(a, &["Properties"]);
            str_of(at(p, &["MetricName"])) == "ApproximateNumberOfMessagesVisible"
                && at(&at(p, &["Dimensions"])[0], &["Value"]) == &get_att(dlq, "QueueName")
                && !at(p, &["AlarmActions"])
                    .as_sequence()
                    .expect("AlarmActions is a list")
                    .is_empty()
        });
        assert!(alarmed, "{dlq}: no alarm on its visible messages");
        if dlq == "ChunkTasksDLQ" || dlq == "UploadEventsDLQ" {
            assert!(consumed, "{dlq}: its consumer fails the jobs");
        }
    }
}

/// The agent's model is a parameter, empty by default (no model: profile suggestions); the
/// agent functions read it as `TESSERA_MODEL_ID`; `HasModel` is exactly "the parameter is not
/// empty"; and no function but the agent's touches Bedrock, and only under `HasModel`
/// (`function_permissions_are_exactly_these` pins the model ARNs themselves).
#[test]
fn bedrock_is_granted_only_on_the_configured_model() {
    let t = template();
    let p = at(&t, &["Parameters", "ModelId"]);
    assert_eq!(str_of(at(p, &["Type"])), "String");
    assert_eq!(
        str_of(at(p, &["Default"])),
        "",
        "no model unless one is chosen"
    );
    // An id, not an ARN and not a pattern: the grants below put it into ARNs.
    let pattern = str_of(at(p, &["AllowedPattern"]));
    assert!(
        !pattern.contains('*') || pattern.ends_with("]*$"),
        "{pattern}"
    );
    assert!(!pattern.contains('/'), "{pattern}");

    let cond = at(&t, &["Conditions", "HasModel"]);
    let equals = at(cond, &["Fn::Not", "0", "Fn::Equals"]);
    assert_eq!(at(equals, &["0"]), &reference("ModelId"));
    assert_eq!(str_of(at(equals, &["1"])), "");

    for (id, f) in resources_of(&t, "AWS::Serverless::Function") {
        let model_env = f
            .get("Properties")
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(|v| v.get("TESSERA_MODEL_ID"));
        let agent = matches!(id, "AgentFunction" | "AgentWorkerFunction");
        // The chunk workers grade `model` sentiment steps; the planner prices their estimate
        // (the model id only, no permission).
        let grader = id == "ChunkFunction";
        if agent || grader || id == "PlannerFunction" {
            assert_eq!(model_env, Some(&reference("ModelId")), "{id}");
        } else {
            assert!(model_env.is_none(), "{id} has no use for a model");
        }
        for (condition, policy) in policies_of(id, f) {
            let mut stmts = Vec::new();
            statements(&policy, &mut stmts);
            for st in stmts {
                let bedrock = seq_of_str(at(&st, &["Action"]))
                    .iter()
                    .any(|a| a.starts_with("bedrock:"));
                if !bedrock {
                    continue;
                }
                assert!(agent || grader, "{id} may not call Bedrock");
                assert_eq!(condition.as_deref(), Some("HasModel"), "{id}");
                assert_eq!(seq_of_str(at(&st, &["Action"])), ["bedrock:InvokeModel"]);
                // A resource that is not the configured model itself (every foundation model,
                // in any Region) is reachable only through the configured inference profile.
                let resources = match at(&st, &["Resource"]) {
                    Value::Sequence(s) => s.clone(),
                    one => vec![one.clone()],
                };
                for r in resources {
                    let arn = sub_text(&r);
                    if arn.ends_with("/${ModelId}") {
                        continue;
                    }
                    assert!(arn.ends_with("::foundation-model/*"), "{id}: {arn}");
                    let via = at(
                        &st,
                        &["Condition", "StringEquals", "bedrock:InferenceProfileArn"],
                    );
                    assert!(
                        sub_text(via).ends_with(":inference-profile/${ModelId}"),
                        "{id}: {via:?}"
                    );
                }
            }
        }
    }
}
