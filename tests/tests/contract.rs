//! The SAM template, the local gateway, the OpenAPI document, the function crates and the event
//! fixtures describe the same API: the same routes, each served by a crate that exists, no crate
//! without a route or an event, and a fixture event for every function.

use integration_tests::openapi;
use integration_tests::{TestStack, assert_matches_schema};
use local_stack::authorizer::{JwtAuthorizer, JwtAuthorizerConfig};
use local_stack::dynamodb::{local_client, template_path, workspace_root};
use local_stack::gateway::Gateway;
use local_stack::stack::{local_config, local_s3_client, openapi_path, route_handlers};
use local_stack::template::{FunctionDef, SamTemplate};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

fn template() -> SamTemplate {
    SamTemplate::load(&template_path()).expect("infra/template.yaml parses")
}

fn template_route_keys() -> BTreeSet<String> {
    template()
        .http_routes()
        .iter()
        .map(|route| route.route_key())
        .collect()
}

/// The crates under functions/, by folder name.
fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(workspace_root().join("functions"))
        .expect("functions/ exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn sorted(keys: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    keys.into_iter().collect()
}

#[test]
fn openapi_documents_exactly_the_routes_of_the_template() {
    let template = template_route_keys();
    let documented = sorted(openapi::route_keys());
    assert_eq!(
        documented, template,
        "infra/openapi.yaml paths (left) and infra/template.yaml HttpApi events (right) differ"
    );
}

#[tokio::test]
async fn local_gateway_serves_exactly_the_routes_of_the_template() {
    // Clients that are never called: building the gateway only binds routes to handlers.
    let app = Arc::new(shared::App::with_clients(
        local_config("contract", "contract"),
        local_client("http://127.0.0.1:9").await,
        local_s3_client("http://127.0.0.1:9"),
    ));
    let authorizer = Arc::new(
        JwtAuthorizer::new(JwtAuthorizerConfig {
            issuer: "https://issuer.example".into(),
            audiences: vec!["files-api".into()],
            hs256_secret: Some("secret".into()),
            jwks: None,
        })
        .expect("authorizer"),
    );
    let handlers = route_handlers(&app);
    // Fails if a route's binary has no handler in local/src/stack.rs.
    let gateway = Gateway::new(template().http_routes(), handlers.clone(), authorizer)
        .expect("every template route has a local handler");
    let served = sorted(gateway.routes().map(|route| route.route_key()));
    assert_eq!(served, template_route_keys());

    let routed_binaries = sorted(template().http_routes().into_iter().map(|r| r.binary));
    let handled = sorted(handlers.keys().cloned());
    assert_eq!(
        handled, routed_binaries,
        "local/src/stack.rs route_handlers (left) must be the binaries that have HttpApi routes (right)"
    );
}

#[test]
fn every_function_is_a_crate_and_every_crate_is_a_function_with_an_event() {
    let functions = template().functions();
    let binaries = sorted(functions.iter().map(|f| f.binary.clone()));
    assert_eq!(
        function_crates(),
        binaries,
        "crates under functions/ (left) and Metadata.BuildProperties.Binary of the template's functions (right) differ"
    );
    for FunctionDef {
        logical_id,
        binary,
        event_types,
    } in &functions
    {
        let crate_dir = workspace_root().join("functions").join(binary);
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "functions/{binary}/Cargo.toml must name its package {binary}: cargo lambda and SAM build the binary by that name"
        );
        assert!(
            crate_dir.join("src/main.rs").is_file(),
            "functions/{binary} has no src/main.rs (the Lambda entry point)"
        );
        assert!(
            !event_types.is_empty(),
            "{logical_id} has no event: nothing would ever invoke it"
        );
    }
}

#[test]
fn route_parameters_are_documented_as_path_parameters() {
    for route in template().http_routes() {
        let item = &openapi::document()["paths"][&route.path];
        let operation = openapi::operation(route.method.as_str(), &route.path);
        let declared: BTreeSet<String> = [item.get("parameters"), operation.get("parameters")]
            .into_iter()
            .flatten()
            .flat_map(|list| list.as_array().cloned().unwrap_or_default())
            .map(|p| resolve(&p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("parameter name").to_string())
            .collect();
        let in_path: BTreeSet<String> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|s| s.trim_end_matches('+').to_string())
            .collect();
        assert_eq!(declared, in_path, "{}", route.route_key());
        let responses = operation["responses"].as_object().expect("responses");
        for status in ["401", "500"] {
            assert!(
                responses.contains_key(status),
                "{} documents no {status}",
                route.route_key()
            );
        }
    }
}

fn resolve(value: &Value) -> Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => openapi::document()
            .pointer(reference.trim_start_matches('#'))
            .cloned()
            .unwrap_or_else(|| panic!("dangling $ref {reference}")),
        None => value.clone(),
    }
}

/// `events/<binary>.json` exists for every function and is an event of its kind, so that
/// `sam local invoke` and `cargo lambda invoke` can run each of them as it is.
#[test]
fn every_function_has_a_fixture_event_of_its_kind() {
    let template = template();
    for function in template.functions() {
        let path = workspace_root()
            .join("events")
            .join(format!("{}.json", function.binary));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: no fixture event at events/{}.json: {e}",
                function.logical_id, function.binary
            )
        });
        let routes: Vec<String> = template
            .http_routes()
            .iter()
            .filter(|r| r.binary == function.binary)
            .map(|r| r.route_key())
            .collect();
        if !routes.is_empty() {
            let event: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: not an HTTP API event: {e}", path.display()));
            let route_key = event.route_key.clone().unwrap_or_default();
            assert!(
                routes.contains(&route_key),
                "{}: routeKey {route_key:?} is not one of {routes:?}",
                path.display()
            );
            assert_eq!(event.version.as_deref(), Some("2.0"), "{}", path.display());
        } else if function.event_types.iter().any(|t| t == "S3") {
            let event: aws_lambda_events::s3::S3Event = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not an S3 event: {e}", path.display()));
            assert!(!event.records.is_empty(), "{}", path.display());
        } else if function
            .event_types
            .iter()
            .any(|t| t == local_stack::template::DESTINATION_EVENT_TYPE)
        {
            let record: process_upload_failed::InvocationRecord = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not an invocation record: {e}", path.display()));
            assert!(
                !record.request_payload.records.is_empty(),
                "{}",
                path.display()
            );
        } else if function
            .event_types
            .iter()
            .any(|t| t == local_stack::template::DYNAMODB_EVENT_TYPE)
        {
            let event: aws_lambda_events::dynamodb::Event = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not a DynamoDB stream event: {e}", path.display()));
            assert!(!event.records.is_empty(), "{}", path.display());
            // And the template's filter delivers it: the fixture is what the function really gets.
            let record: serde_json::Value =
                serde_json::from_str::<serde_json::Value>(&text).unwrap()["Records"][0].clone();
            for mapping in template.stream_mappings().unwrap() {
                if mapping.binary == function.binary {
                    assert!(
                        mapping
                            .filter_patterns
                            .iter()
                            .any(|p| local_stack::event_filter::matches(p, &record)),
                        "{}: the template's FilterCriteria would drop it",
                        path.display()
                    );
                }
            }
        } else {
            panic!(
                "{}: no check for events of {:?}",
                path.display(),
                function.event_types
            );
        }
    }
}

#[test]
fn fixture_request_bodies_match_the_contract() {
    for route in template().http_routes() {
        let path = workspace_root()
            .join("events")
            .join(format!("{}.json", route.binary));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // reported by every_function_has_a_fixture_event_of_its_kind
        };
        let event: Value = serde_json::from_str(&text).expect("JSON");
        if event["routeKey"] != route.route_key().as_str() {
            continue;
        }
        let content_type = event["headers"]["content-type"]
            .as_str()
            .unwrap_or_default();
        if content_type.starts_with("multipart/form-data") {
            // A form is binary: API Gateway passes it base64-encoded (POST /v1/files).
            assert_eq!(event["isBase64Encoded"], true, "{}", path.display());
            let body = event["body"].as_str().unwrap_or_default();
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body)
                .unwrap_or_else(|e| panic!("{}: body is not base64: {e}", path.display()));
            continue;
        }
        if let Some(body) = event["body"].as_str().filter(|b| !b.is_empty()) {
            assert_eq!(event["isBase64Encoded"], false, "{}", path.display());
            let body: Value = serde_json::from_str(body).expect("JSON body");
            openapi::assert_request_matches_schema(route.method.as_str(), &route.path, &body);
        }
    }
}

#[tokio::test]
async fn the_local_stack_serves_the_contract_without_a_token() {
    let t = TestStack::start().await;
    let resp = t.http.get(t.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    let served = resp.bytes().await.unwrap();
    let on_disk = std::fs::read(openapi_path()).unwrap();
    assert_eq!(served.as_ref(), on_disk.as_slice());

    // Anything else without a token is still refused by the authorizer, as on AWS...
    let resp = t
        .http
        .get(t.url("/v1/files/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_matches_schema("GET", "/v1/files/{file_id}", 401, &body);
}

/// `sam local` only overrides the variables that the template declares (globally or on a function);
/// anything else in `infra/env.local.json` would be silently dropped.
#[test]
fn env_local_json_only_sets_variables_the_template_declares() {
    let text = std::fs::read_to_string(template_path()).expect("template");
    let document: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let variable_names = |environment: Option<&serde_norway::Value>| -> BTreeSet<String> {
        environment
            .and_then(|e| e.get("Variables"))
            .and_then(|v| v.as_mapping())
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut declared = variable_names(
        document
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment")),
    );
    for function in template().functions() {
        let resource = template()
            .resource(&function.logical_id)
            .cloned()
            .expect("resource");
        declared.extend(variable_names(
            resource
                .get("Properties")
                .and_then(|p| p.get("Environment")),
        ));
    }
    let env_local: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("infra/env.local.json"))
            .expect("env.local.json"),
    )
    .expect("JSON");
    for name in env_local["Parameters"]
        .as_object()
        .expect("Parameters")
        .keys()
    {
        assert!(
            declared.contains(name),
            "infra/env.local.json sets {name}, which no function of the template declares: sam local would ignore it"
        );
    }
    for required in ["FILES_TABLE_NAME", "FILES_BUCKET_NAME"] {
        assert!(
            declared.contains(required),
            "the template does not set {required}"
        );
    }
}

/// An upload session lasts as long as the bucket keeps its incomplete multipart upload: longer, and
/// `GET /v1/uploads/{id}` would sign URLs for parts S3 already dropped; shorter, and a resumable
/// upload would be given up while S3 still holds (and bills) its parts.
#[test]
fn upload_sessions_last_as_long_as_the_bucket_keeps_incomplete_multipart_uploads() {
    let bucket = template()
        .resource("FilesBucket")
        .cloned()
        .expect("FilesBucket");
    let rules = bucket
        .get("Properties")
        .and_then(|p| p.get("LifecycleConfiguration"))
        .and_then(|l| l.get("Rules"))
        .and_then(|r| r.as_sequence())
        .expect("FilesBucket has lifecycle rules");
    let days: Vec<u64> = rules
        .iter()
        .filter_map(|rule| rule.get("AbortIncompleteMultipartUpload"))
        .filter_map(|abort| abort.get("DaysAfterInitiation"))
        .filter_map(|days| days.as_u64())
        .collect();
    assert_eq!(
        days,
        vec![shared::domain::upload::UPLOAD_SESSION_LIFETIME_DAYS],
        "the bucket's abort-incomplete-multipart-uploads rule (left) and UPLOAD_SESSION_LIFETIME_DAYS (right) differ"
    );
    let default_ttl = local_config("t", "b").upload_url_ttl;
    assert_eq!(
        shared::domain::upload::session_lifetime(default_ttl).as_secs(),
        days[0] * 24 * 3600,
        "with the default URL lifetime, a session lasts exactly the rule's days"
    );
}
