//! JSON values <-> the SDK's [`Document`] (tool inputs, tool input schemas, JSON tool results),
//! for the Bedrock adapter only.
//!
//! Numbers keep their kind: a JSON integer that fits `u64` is `PosInt`, a negative one `NegInt`,
//! anything else `Float` (the SDK writes each back the same way). A `Float` that JSON cannot hold
//! (NaN, infinities: the SDK never parses one from a reply) becomes `null`.

use std::collections::HashMap;

use aws_smithy_types::{Document, Number};
use serde_json::Value;

/// A JSON value as a Document.
pub(crate) fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            // serde_json's numbers are u64, i64 or f64: this is the f64.
            Number::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// A Document as a JSON value.
pub(crate) fn to_json(doc: &Document) -> Value {
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn numbers_keep_their_kind_both_ways() {
        let table: [(Value, Document); 8] = [
            (json!(0), Document::Number(Number::PosInt(0))),
            (json!(42), Document::Number(Number::PosInt(42))),
            (json!(u64::MAX), Document::Number(Number::PosInt(u64::MAX))),
            (json!(-1), Document::Number(Number::NegInt(-1))),
            (json!(i64::MIN), Document::Number(Number::NegInt(i64::MIN))),
            (json!(1.5), Document::Number(Number::Float(1.5))),
            (json!(-0.25), Document::Number(Number::Float(-0.25))),
            (json!(1e300), Document::Number(Number::Float(1e300))),
        ];
        for (value, doc) in table {
            assert_eq!(to_document(&value), doc, "{value}");
            assert_eq!(to_json(&doc), value, "{value}");
        }
    }

    #[test]
    fn nested_values_and_unrepresentable_floats() {
        let v = json!({"type": "object", "properties": {"col": {"enum": ["a", null, true]}},
                       "required": ["col"], "n": [1, -2, 3.5]});
        let d = to_document(&v);
        let Document::Object(map) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(map["type"], Document::String("object".into()));
        assert_eq!(
            map["n"],
            Document::Array(vec![
                Document::Number(Number::PosInt(1)),
                Document::Number(Number::NegInt(-2)),
                Document::Number(Number::Float(3.5)),
            ])
        );
        assert_eq!(to_json(&d), v);
        assert_eq!(
            to_json(&Document::Number(Number::Float(f64::NAN))),
            Value::Null
        );
        assert_eq!(
            to_json(&Document::Number(Number::Float(f64::NEG_INFINITY))),
            Value::Null
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            // Finite floats only: JSON has no others.
            (-1e15f64..1e15).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_round_trips_through_document(v in json_value()) {
            prop_assert_eq!(to_json(&to_document(&v)), v);
        }

        #[test]
        fn document_round_trips_through_json(v in json_value()) {
            let d = to_document(&v);
            prop_assert_eq!(to_document(&to_json(&d)), d);
        }
    }
}
