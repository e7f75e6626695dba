//! Lambda event filtering (`FilterCriteria` of an event source mapping), as the local stack needs
//! it: the filter rule syntax of AWS's "Control which events Lambda sends to your function",
//! evaluated against the record's JSON exactly as Lambda sees it.
//!
//! Supported: nested objects; leaf arrays of literal values (strings, numbers, booleans, null),
//! any of which may match; and the `exists` and `prefix` operators. Any other operator is refused
//! when the template is read ([`validate`]), so that a pattern this code would misjudge never runs.
//! Matching follows AWS's rules: a leaf matches when the record's value (or, for an array value,
//! any of its elements) equals one of the listed values; `{"exists": false}` matches an absent
//! field; `exists` applies to leaves only.

use serde_json::Value;

/// Why a pattern cannot be evaluated here.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("a pattern must be a JSON object")]
    NotAnObject,
    #[error("{path}: a leaf must be an array of values")]
    LeafNotAnArray { path: String },
    #[error("{path}: operator {operator:?} is not supported locally")]
    UnsupportedOperator { path: String, operator: String },
}

/// Checks that every rule of `pattern` is one [`matches`] evaluates.
pub fn validate(pattern: &Value) -> Result<(), PatternError> {
    let Value::Object(fields) = pattern else {
        return Err(PatternError::NotAnObject);
    };
    for (key, rule) in fields {
        validate_rule(key, rule)?;
    }
    Ok(())
}

fn validate_rule(path: &str, rule: &Value) -> Result<(), PatternError> {
    match rule {
        Value::Object(fields) => {
            for (key, inner) in fields {
                validate_rule(&format!("{path}.{key}"), inner)?;
            }
            Ok(())
        }
        Value::Array(values) => {
            for value in values {
                if let Value::Object(operator) = value {
                    let supported = operator.len() == 1
                        && matches!(
                            operator.iter().next(),
                            Some((name, Value::Bool(_))) if name == "exists"
                        )
                        || operator.len() == 1
                            && matches!(
                                operator.iter().next(),
                                Some((name, Value::String(_))) if name == "prefix"
                            );
                    if !supported {
                        return Err(PatternError::UnsupportedOperator {
                            path: path.to_string(),
                            operator: Value::Object(operator.clone()).to_string(),
                        });
                    }
                }
            }
            Ok(())
        }
        _ => Err(PatternError::LeafNotAnArray {
            path: path.to_string(),
        }),
    }
}

/// Whether `record` matches `pattern` (one that [`validate`] accepted).
pub fn matches(pattern: &Value, record: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields
        .iter()
        .all(|(key, rule)| matches_rule(rule, record.get(key)))
}

fn matches_rule(rule: &Value, value: Option<&Value>) -> bool {
    match rule {
        Value::Object(fields) => match value {
            Some(Value::Object(_)) => fields
                .iter()
                .all(|(key, inner)| matches_rule(inner, value.and_then(|v| v.get(key)))),
            _ => false,
        },
        Value::Array(alternatives) => alternatives.iter().any(|alternative| match alternative {
            Value::Object(operator) => match operator.iter().next() {
                Some((name, Value::Bool(wanted))) if name == "exists" => {
                    // Leaves only: an object is not a value that exists for the rule.
                    let present = matches!(value, Some(v) if !v.is_object());
                    present == *wanted
                }
                Some((name, Value::String(prefix))) if name == "prefix" => {
                    any_leaf(value, |v| v.as_str().is_some_and(|s| s.starts_with(prefix)))
                }
                _ => false,
            },
            literal => any_leaf(value, |v| equal(v, literal)),
        }),
        _ => false,
    }
}

/// The value, or any element of an array value, satisfies `test`.
fn any_leaf(value: Option<&Value>, test: impl Fn(&Value) -> bool) -> bool {
    match value {
        Some(Value::Array(items)) => items.iter().any(test),
        Some(v) => test(v),
        None => false,
    }
}

/// Numbers compare by value (`1` matches `1.0`), everything else exactly.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn marker_pattern() -> Value {
        json!({"eventName": ["INSERT", "MODIFY"],
               "dynamodb": {"Keys": {"sk": {"S": ["FILE"]}},
                            "NewImage": {"deleting_since": {"N": [{"exists": true}]}}}})
    }

    fn record(event_name: &str, sk: &str, new_image: Value) -> Value {
        json!({"eventName": event_name,
               "dynamodb": {"Keys": {"pk": {"S": "T#a#F#1"}, "sk": {"S": sk}}, "NewImage": new_image}})
    }

    #[test]
    fn the_templates_marker_pattern_selects_markers_only() {
        let pattern = marker_pattern();
        validate(&pattern).unwrap();
        let marker = json!({"deleting_since": {"N": "1700000000"}, "sk": {"S": "FILE"}});
        assert!(matches(&pattern, &record("MODIFY", "FILE", marker.clone())));
        assert!(matches(&pattern, &record("INSERT", "FILE", marker.clone())));
        // The marker's removal, a live file, a revision: not delivered.
        assert!(!matches(
            &pattern,
            &record("REMOVE", "FILE", marker.clone())
        ));
        assert!(!matches(
            &pattern,
            &record("MODIFY", "FILE", json!({"name": {"S": "a"}}))
        ));
        assert!(!matches(&pattern, &record("MODIFY", "REV#0001", marker)));
        // No NewImage at all (a KEYS_ONLY stream): no match.
        assert!(!matches(
            &pattern,
            &json!({"eventName": "MODIFY", "dynamodb": {"Keys": {"sk": {"S": "FILE"}}}})
        ));
    }

    #[test]
    fn exists_false_prefix_numbers_and_arrays_follow_aws_rules() {
        let absent = json!({"a": [{"exists": false}]});
        assert!(matches(&absent, &json!({"b": 1})));
        assert!(!matches(&absent, &json!({"a": 1})));
        let prefix = json!({"key": [{"prefix": "uploads/"}]});
        assert!(matches(&prefix, &json!({"key": "uploads/x"})));
        assert!(!matches(&prefix, &json!({"key": "thumbnails/x"})));
        assert!(matches(&json!({"n": [1]}), &json!({"n": 1.0})));
        assert!(matches(
            &json!({"tags": ["x"]}),
            &json!({"tags": ["y", "x"]})
        ));
    }

    #[test]
    fn operators_it_cannot_evaluate_are_refused() {
        assert!(validate(&json!({"a": [{"anything-but": ["x"]}]})).is_err());
        assert!(validate(&json!({"a": [{"numeric": [">", 1]}]})).is_err());
        assert!(validate(&json!({"a": "not an array"})).is_err());
        assert!(validate(&json!(["x"])).is_err());
    }
}
