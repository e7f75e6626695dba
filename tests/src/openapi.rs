//! The API contract, `infra/openapi.yaml`, as the tests use it: bodies that tests send and receive
//! are validated against its JSON Schemas (OpenAPI 3.1 schemas are JSON Schema 2020-12), so the
//! document cannot drift from what the handlers really do.

use serde_json::{Value, json};
use std::sync::OnceLock;

/// The methods OpenAPI allows as keys of a path item.
pub const OPERATION_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `infra/openapi.yaml`, parsed once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let path = local_stack::stack::openapi_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
    })
}

/// Every operation of the document as `METHOD path`, e.g. `GET /v1/files/{file_id}`.
pub fn route_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for (path, item) in document()["paths"].as_object().expect("paths").iter() {
        for method in OPERATION_METHODS {
            if item.get(method).is_some() {
                keys.push(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    keys
}

/// The operation object of `method path_template`, or a panic naming what is missing.
pub fn operation(method: &str, path_template: &str) -> &'static Value {
    document()["paths"]
        .get(path_template)
        .and_then(|item| item.get(method.to_ascii_lowercase()))
        .unwrap_or_else(|| panic!("infra/openapi.yaml has no operation {method} {path_template}"))
}

/// Follows a local `$ref` (`#/components/...`) if `value` is one.
fn resolve(value: &'static Value) -> &'static Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs are supported, got {reference}"));
            resolve(
                document()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => value,
    }
}

/// The schemas of the JSON media types (`application/json`, `application/problem+json`, ...) of a
/// request body or response object.
fn json_schemas(object: &'static Value) -> Vec<&'static Value> {
    object
        .get("content")
        .and_then(Value::as_object)
        .map(|content| {
            content
                .iter()
                .filter(|(media_type, _)| media_type.ends_with("json"))
                .filter_map(|(_, media)| media.get("schema"))
                .collect()
        })
        .unwrap_or_default()
}

/// A validator for `schema`, whose `$ref`s resolve in the document.
fn validator(what: &str, schema: &Value) -> jsonschema::Validator {
    // A root that holds `components`, so `#/components/schemas/...` resolves as in the document.
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": document()["components"],
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{what}: the schema in infra/openapi.yaml is invalid: {e}"))
}

/// Validates `instance` against one of `schemas`, or panics with every schema's errors.
fn validate(what: &str, schemas: &[&Value], instance: &Value) {
    let mut failures = Vec::new();
    for schema in schemas {
        let errors: Vec<String> = validator(what, schema)
            .iter_errors(instance)
            .map(|e| format!("  at '{}': {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            return;
        }
        failures.push(errors.join("\n"));
    }
    panic!(
        "{what}: body does not match infra/openapi.yaml:\n{}\nbody: {instance:#}",
        failures.join("\n  or\n")
    );
}

/// Asserts that `body`, answered with `status` by `method path_template`, is what the OpenAPI
/// document says: the status is documented for the operation, and the body validates against one of
/// its JSON schemas. For a response without a body (302, 304, 204) pass `&Value::Null`.
pub fn assert_matches_schema(method: &str, path_template: &str, status: u16, body: &Value) {
    let what = format!("{method} {path_template} -> {status}");
    let responses = &operation(method, path_template)["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
        .map(resolve)
        .unwrap_or_else(|| panic!("{what}: status not documented in infra/openapi.yaml"));
    let schemas = json_schemas(response);
    if schemas.is_empty() {
        assert!(
            body.is_null(),
            "{what}: infra/openapi.yaml documents no body, got {body}"
        );
        return;
    }
    validate(&what, &schemas, body);
}

/// Asserts that `body`, sent to `method path_template`, is a request body the document accepts.
pub fn assert_request_matches_schema(method: &str, path_template: &str, body: &Value) {
    let what = format!("{method} {path_template} request");
    let request_body = operation(method, path_template)
        .get("requestBody")
        .map(resolve)
        .unwrap_or_else(|| panic!("{what}: infra/openapi.yaml documents no request body"));
    let schemas = json_schemas(request_body);
    assert!(!schemas.is_empty(), "{what}: no JSON schema documented");
    validate(&what, &schemas, body);
}

/// Asserts that the document rejects `body` as a request body of `method path_template`: for
/// requests the API refuses, so that the schema is known to be as strict as the handler.
pub fn assert_request_violates_schema(method: &str, path_template: &str, body: &Value) {
    let request_body = operation(method, path_template)
        .get("requestBody")
        .map(resolve)
        .expect("documented request body");
    let schemas = json_schemas(request_body);
    let accepted = schemas
        .iter()
        .any(|schema| validator(method, schema).is_valid(body));
    assert!(
        !accepted,
        "{method} {path_template}: infra/openapi.yaml accepts a body the API refuses: {body}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_file() -> Value {
        json!({
            "id": "019a8f3e6c2b7d41a2b3c4d5e6f70819", "name": "a.txt", "content_type": "text/plain",
            "size": 1, "status": "ready", "parent": null, "tags": [], "metadata": {}, "revision": 1,
            "thumbnail_status": "none", "thumbnail_reason": "not_an_image",
            "created_at": "2026-11-23T23:13:35.123Z", "created_by": {"id": "alice", "type": "user"},
            "updated_at": "2026-11-23T23:13:35.123Z", "updated_by": {"id": "alice", "type": "user"}
        })
    }

    #[test]
    fn a_body_of_the_documented_shape_passes() {
        assert_matches_schema("GET", "/v1/files/{file_id}", 200, &a_file());
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn a_missing_required_field_fails() {
        let mut file = a_file();
        file.as_object_mut().unwrap().remove("id");
        assert_matches_schema("GET", "/v1/files/{file_id}", 200, &file);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn a_badly_formatted_timestamp_fails() {
        let mut file = a_file();
        file["created_at"] = json!("yesterday");
        assert_matches_schema("GET", "/v1/files/{file_id}", 200, &file);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn an_undocumented_member_fails() {
        let mut file = a_file();
        file["owner_email"] = json!("alice@example.com");
        assert_matches_schema("GET", "/v1/files/{file_id}", 200, &file);
    }

    #[test]
    #[should_panic(expected = "status not documented")]
    fn an_undocumented_status_fails() {
        assert_matches_schema("GET", "/v1/files/{file_id}", 418, &Value::Null);
    }

    #[test]
    fn problems_are_checked_against_the_problem_schema() {
        let problem = json!({"type": "/problems/not_found", "title": "Not found", "status": 404,
                             "detail": "file not found", "code": "not_found"});
        assert_matches_schema("GET", "/v1/files/{file_id}", 404, &problem);
        let unknown_code = json!({"type": "/problems/x", "title": "X", "status": 404,
                                  "detail": "x", "code": "no_such_code"});
        let result = std::panic::catch_unwind(|| {
            assert_matches_schema("GET", "/v1/files/{file_id}", 404, &unknown_code)
        });
        assert!(result.is_err(), "an undocumented code must not pass");
    }
}
