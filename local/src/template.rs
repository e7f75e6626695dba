//! Reads the SAM template (`infra/template.yaml`) so the local stack runs exactly the functions and
//! HTTP routes that get deployed, instead of a second, hand-kept route table that could drift.
//!
//! The template is parsed with `serde_norway`; CloudFormation short-form intrinsics (`!Ref`, `!Sub`,
//! `!GetAtt`, ...) come through as tagged values and are left untouched in [`SamTemplate::resource`].
//! Functions and their `HttpApi` events are validated once, in [`SamTemplate::parse`], so that
//! [`SamTemplate::functions`] and [`SamTemplate::http_routes`] cannot fail later.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cors::{CorsConfig, CorsConfigError};
use http::Method;
use percent_encoding::percent_decode_str;
use serde_norway::{Mapping, Value};

const SERVERLESS_FUNCTION_TYPE: &str = "AWS::Serverless::Function";
const HTTP_API_TYPE: &str = "AWS::Serverless::HttpApi";
const HTTP_API_EVENT_TYPE: &str = "HttpApi";
/// SAM's catch-all method for an `HttpApi` event (`Method: ANY` or `any`).
const ANY_METHOD: &str = "ANY";

/// Why a template could not be read or does not describe functions the local stack can run.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read SAM template {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SAM template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("SAM template has no `Resources` mapping")]
    MissingResources,
    #[error("function {function}: {problem}")]
    InvalidFunction { function: String, problem: String },
}

/// One `AWS::Serverless::Function` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDef {
    /// CloudFormation logical id, e.g. `GetFileFunction`.
    pub logical_id: String,
    /// Cargo binary built for it (`Metadata.BuildProperties.Binary`), e.g. `get-file`.
    pub binary: String,
    /// The `Type` of each entry under `Properties.Events`, in template order (e.g. `HttpApi`, `S3`).
    pub event_types: Vec<String>,
}

/// One route of the HTTP API, from an `HttpApi` event of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// Upper-cased method; SAM's `ANY` is kept as the extension method `ANY` and matches every method.
    pub method: Method,
    /// Route path as written in the template, e.g. `/v1/files/{file_id}`.
    pub path: String,
    /// Logical id of the function that serves the route.
    pub function: String,
    /// Cargo binary (and crate) name of that function, e.g. `get-file`.
    pub binary: String,
}

/// A parsed SAM template.
#[derive(Debug, Clone)]
pub struct SamTemplate {
    document: Value,
    functions: Vec<FunctionDef>,
    routes: Vec<HttpRoute>,
}

impl SamTemplate {
    /// Reads and parses the template at `path`.
    pub fn load(path: &Path) -> Result<SamTemplate, TemplateError> {
        let yaml = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&yaml)
    }

    /// Parses template text and validates every `AWS::Serverless::Function` and its `HttpApi` events.
    pub fn parse(yaml: &str) -> Result<SamTemplate, TemplateError> {
        let document: Value = serde_norway::from_str(yaml)?;
        let resources = document
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or(TemplateError::MissingResources)?;

        let mut functions = Vec::new();
        let mut routes = Vec::new();
        for (logical_id, resource) in resources {
            let Some(logical_id) = logical_id.as_str() else {
                continue;
            };
            if resource.get("Type").and_then(Value::as_str) != Some(SERVERLESS_FUNCTION_TYPE) {
                continue;
            }
            let (function, function_routes) = read_function(logical_id, resource)?;
            functions.push(function);
            routes.extend(function_routes);
        }
        // A function named as another's on-failure destination is invoked by Lambda itself, with
        // the failed invocation's record: that is its event.
        let targets: Vec<String> = resources
            .values()
            .filter_map(on_failure_lambda_destination)
            .collect();
        for function in &mut functions {
            if targets.contains(&function.logical_id) {
                function.event_types.push(DESTINATION_EVENT_TYPE.to_owned());
            }
        }
        Ok(SamTemplate {
            document,
            functions,
            routes,
        })
    }

    /// Every `HttpApi` event of every function, in template order.
    pub fn http_routes(&self) -> Vec<HttpRoute> {
        self.routes.clone()
    }

    /// Every `AWS::Serverless::Function`, in template order.
    pub fn functions(&self) -> Vec<FunctionDef> {
        self.functions.clone()
    }

    /// The `CorsConfiguration` of the template's HTTP API (`AWS::Serverless::HttpApi`), parameters
    /// resolved from `parameters` or their defaults; `None` when no API configures CORS.
    pub fn http_api_cors(
        &self,
        parameters: &HashMap<String, String>,
    ) -> Result<Option<CorsConfig>, CorsConfigError> {
        let Some(resources) = self.document.get("Resources").and_then(Value::as_mapping) else {
            return Ok(None);
        };
        for (logical_id, resource) in resources {
            if resource.get("Type").and_then(Value::as_str) != Some(HTTP_API_TYPE) {
                continue;
            }
            let Some(logical_id) = logical_id.as_str() else {
                continue;
            };
            if let Some(cors) = CorsConfig::from_template(&self.document, logical_id, parameters)? {
                return Ok(Some(cors));
            }
        }
        Ok(None)
    }

    /// The raw resource with this logical id (intrinsics left as tagged values).
    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.document.get("Resources")?.get(logical_id)
    }
}

/// One `DynamoDB` event of a function: an event source mapping on a table's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMapping {
    /// Cargo binary of the function it invokes.
    pub binary: String,
    /// Logical id of the table whose stream it reads (`Stream: !GetAtt <table>.StreamArn`).
    pub table: String,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: String,
    /// Records per invocation at most (`BatchSize`, default 100 as on AWS).
    pub batch_size: usize,
    /// Retries of a failing batch before it goes to the on-failure destination
    /// (`MaximumRetryAttempts`; -1, AWS's default, retries until the record expires).
    pub maximum_retry_attempts: i64,
    /// `FunctionResponseTypes` holds `ReportBatchItemFailures`.
    pub reports_batch_item_failures: bool,
    /// Each `FilterCriteria.Filters[].Pattern`, parsed; a record is delivered when any matches.
    pub filter_patterns: Vec<serde_json::Value>,
}

impl SamTemplate {
    /// Every `DynamoDB` event of every function.
    pub fn stream_mappings(&self) -> Result<Vec<StreamMapping>, TemplateError> {
        let mut mappings = Vec::new();
        let Some(resources) = self.document.get("Resources").and_then(Value::as_mapping) else {
            return Ok(mappings);
        };
        for function in &self.functions {
            let Some(events) = resources
                .get(function.logical_id.as_str())
                .and_then(|r| r.get("Properties"))
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            for (name, event) in events {
                if event.get("Type").and_then(Value::as_str) != Some(DYNAMODB_EVENT_TYPE) {
                    continue;
                }
                let problem = |what: &str| {
                    invalid(
                        &function.logical_id,
                        format!("DynamoDB event {}: {what}", name.as_str().unwrap_or("?")),
                    )
                };
                let properties = event
                    .get("Properties")
                    .ok_or_else(|| problem("no Properties"))?;
                let table = match properties.get("Stream") {
                    Some(Value::Tagged(tagged)) if tagged.tag == "GetAtt" => tagged
                        .value
                        .as_str()
                        .and_then(|t| t.strip_suffix(".StreamArn"))
                        .map(str::to_owned),
                    _ => None,
                }
                .ok_or_else(|| problem("Stream must be !GetAtt <table>.StreamArn"))?;
                let mut filter_patterns = Vec::new();
                if let Some(filters) = properties
                    .get("FilterCriteria")
                    .and_then(|c| c.get("Filters"))
                    .and_then(Value::as_sequence)
                {
                    for filter in filters {
                        let pattern = filter
                            .get("Pattern")
                            .and_then(Value::as_str)
                            .ok_or_else(|| problem("a filter without a Pattern string"))?;
                        let pattern: serde_json::Value = serde_json::from_str(pattern)
                            .map_err(|e| problem(&format!("a Pattern is not JSON: {e}")))?;
                        crate::event_filter::validate(&pattern)
                            .map_err(|e| problem(&format!("a Pattern is not supported: {e}")))?;
                        filter_patterns.push(pattern);
                    }
                }
                mappings.push(StreamMapping {
                    binary: function.binary.clone(),
                    table,
                    starting_position: properties
                        .get("StartingPosition")
                        .and_then(Value::as_str)
                        .ok_or_else(|| problem("no StartingPosition"))?
                        .to_owned(),
                    batch_size: properties
                        .get("BatchSize")
                        .and_then(Value::as_u64)
                        .unwrap_or(100) as usize,
                    maximum_retry_attempts: properties
                        .get("MaximumRetryAttempts")
                        .and_then(Value::as_i64)
                        .unwrap_or(-1),
                    reports_batch_item_failures: properties
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_sequence)
                        .is_some_and(|types| {
                            types
                                .iter()
                                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                        }),
                    filter_patterns,
                });
            }
        }
        Ok(mappings)
    }
}

/// The SAM event type of a DynamoDB stream event source mapping.
pub const DYNAMODB_EVENT_TYPE: &str = "DynamoDB";

/// The event type given to a function that is another's `OnFailure` destination.
pub const DESTINATION_EVENT_TYPE: &str = "OnFailureDestination";

/// `EventInvokeConfig.DestinationConfig.OnFailure` of type `Lambda`: the logical id in its
/// `!GetAtt <id>.Arn`.
fn on_failure_lambda_destination(resource: &Value) -> Option<String> {
    let on_failure = resource
        .get("Properties")?
        .get("EventInvokeConfig")?
        .get("DestinationConfig")?
        .get("OnFailure")?;
    if on_failure.get("Type")?.as_str()? != "Lambda" {
        return None;
    }
    match on_failure.get("Destination")? {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
            let target = tagged.value.as_str()?;
            Some(target.strip_suffix(".Arn").unwrap_or(target).to_owned())
        }
        _ => None,
    }
}

fn invalid(function: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::InvalidFunction {
        function: function.to_owned(),
        problem: problem.into(),
    }
}

fn read_function(
    logical_id: &str,
    resource: &Value,
) -> Result<(FunctionDef, Vec<HttpRoute>), TemplateError> {
    // Every function here is built from the workspace root (`CodeUri: ..`), where cargo-lambda cannot
    // guess the binary: the template must name it, and that name is how handlers are looked up locally.
    let binary = resource
        .get("Metadata")
        .and_then(|metadata| metadata.get("BuildProperties"))
        .and_then(|build| build.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                logical_id,
                "Metadata.BuildProperties.Binary must be a string",
            )
        })?
        .to_owned();

    let empty_events = Mapping::new();
    let events = match resource
        .get("Properties")
        .and_then(|properties| properties.get("Events"))
    {
        None | Some(Value::Null) => &empty_events,
        Some(Value::Mapping(events)) => events,
        Some(_) => return Err(invalid(logical_id, "Properties.Events must be a mapping")),
    };

    let mut event_types = Vec::new();
    let mut routes = Vec::new();
    for (event_name, event) in events {
        let event_name = event_name.as_str().unwrap_or("?");
        let event_type = event
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(logical_id, format!("event {event_name} has no Type")))?;
        event_types.push(event_type.to_owned());
        if event_type == HTTP_API_EVENT_TYPE {
            routes.push(read_http_api_event(logical_id, &binary, event_name, event)?);
        }
    }

    let function = FunctionDef {
        logical_id: logical_id.to_owned(),
        binary,
        event_types,
    };
    Ok((function, routes))
}

fn read_http_api_event(
    logical_id: &str,
    binary: &str,
    event_name: &str,
    event: &Value,
) -> Result<HttpRoute, TemplateError> {
    let properties = event.get("Properties");
    // An HttpApi event without Path and Method is SAM's `$default` route; the Files API has none and
    // the local gateway would have to treat it as a catch-all, so reject it until it is needed.
    let path = properties
        .and_then(|p| p.get("Path"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                logical_id,
                format!("HttpApi event {event_name}: Properties.Path must be a plain string"),
            )
        })?;
    let method = properties
        .and_then(|p| p.get("Method"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                logical_id,
                format!("HttpApi event {event_name}: Properties.Method must be a plain string"),
            )
        })?;
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
        invalid(
            logical_id,
            format!("HttpApi event {event_name}: invalid method {method:?}"),
        )
    })?;
    parse_route_path(path).map_err(|problem| {
        invalid(
            logical_id,
            format!("HttpApi event {event_name}: path {path:?}: {problem}"),
        )
    })?;
    Ok(HttpRoute {
        method,
        path: path.to_owned(),
        function: logical_id.to_owned(),
        binary: binary.to_owned(),
    })
}

/// One `/`-separated piece of a route path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteSegment<'a> {
    Literal(&'a str),
    /// `{name}`: exactly one non-empty path segment.
    Parameter(&'a str),
    /// `{name+}`: the rest of the path, one or more segments; only allowed last.
    Greedy(&'a str),
}

fn parse_route_path(path: &str) -> Result<Vec<RouteSegment<'_>>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must start with '/'".to_owned());
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let pieces: Vec<&str> = rest.split('/').collect();
    let last_index = pieces.len() - 1;
    let mut segments = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.into_iter().enumerate() {
        let segment = match piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => match name.strip_suffix('+') {
                Some(greedy_name) if index == last_index && !greedy_name.is_empty() => {
                    RouteSegment::Greedy(greedy_name)
                }
                Some(_) => return Err("a {name+} parameter must be the last segment".to_owned()),
                None if name.is_empty() => return Err("empty parameter name".to_owned()),
                None => RouteSegment::Parameter(name),
            },
            None if piece.contains(['{', '}']) => {
                return Err("a parameter must be a whole segment".to_owned());
            }
            None => RouteSegment::Literal(piece),
        };
        segments.push(segment);
    }
    Ok(segments)
}

fn decode_segment(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

impl HttpRoute {
    /// The HTTP API route key, e.g. `GET /v1/files/{file_id}`.
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether the route serves `method` (`ANY` serves them all).
    pub fn matches_method(&self, method: &Method) -> bool {
        self.method == *method || self.method.as_str() == ANY_METHOD
    }

    /// Matches a request path as sent on the wire (still percent-encoded, no query) against the route.
    /// Returns the path parameters, percent-decoded, or `None` when the path does not match.
    /// Segments are split before decoding, so `%2F` stays inside one parameter value.
    pub fn match_path(&self, path: &str) -> Option<HashMap<String, String>> {
        let route_segments = parse_route_path(&self.path).ok()?;
        let request_rest = path.strip_prefix('/')?;
        let request_segments: Vec<&str> = if request_rest.is_empty() {
            Vec::new()
        } else {
            request_rest.split('/').collect()
        };

        let mut parameters = HashMap::new();
        for (index, route_segment) in route_segments.iter().enumerate() {
            match *route_segment {
                RouteSegment::Greedy(name) => {
                    let remainder = request_segments.get(index..)?;
                    if remainder.is_empty() || remainder.iter().all(|s| s.is_empty()) {
                        return None;
                    }
                    parameters.insert(name.to_owned(), decode_segment(&remainder.join("/")));
                    return Some(parameters);
                }
                RouteSegment::Parameter(name) => {
                    let value = request_segments.get(index).filter(|s| !s.is_empty())?;
                    parameters.insert(name.to_owned(), decode_segment(value));
                }
                RouteSegment::Literal(literal) => {
                    let value = request_segments.get(index)?;
                    if decode_segment(value) != literal {
                        return None;
                    }
                }
            }
        }
        (request_segments.len() == route_segments.len()).then_some(parameters)
    }

    /// Orders routes the way API Gateway picks among several matches: more literal segments first
    /// (compared left to right), then `{param}`, then `{param+}`; an explicit method beats `ANY`.
    pub(crate) fn specificity(&self) -> (Vec<u8>, bool) {
        let segment_ranks = parse_route_path(&self.path)
            .unwrap_or_default()
            .iter()
            .map(|segment| match segment {
                RouteSegment::Literal(_) => 2,
                RouteSegment::Parameter(_) => 1,
                RouteSegment::Greedy(_) => 0,
            })
            .collect();
        (segment_ranks, self.method.as_str() != ANY_METHOD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_template() -> SamTemplate {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
        SamTemplate::load(&path).expect("infra/template.yaml parses")
    }

    fn route(method: &str, path: &str) -> HttpRoute {
        HttpRoute {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: path.to_owned(),
            function: "F".to_owned(),
            binary: "f".to_owned(),
        }
    }

    #[test]
    fn repo_template_declares_the_known_routes() {
        let routes = repo_template().http_routes();
        let keys: Vec<String> = routes.iter().map(HttpRoute::route_key).collect();
        for (key, function, binary) in [
            ("POST /v1/uploads", "CreateUploadFunction", "create-upload"),
            ("GET /v1/files/{file_id}", "GetFileFunction", "get-file"),
            (
                "GET /v1/files/{file_id}/content",
                "DownloadFileFunction",
                "download-file",
            ),
        ] {
            let found = routes
                .iter()
                .find(|r| r.route_key() == key)
                .unwrap_or_else(|| panic!("route {key} missing from {keys:?}"));
            assert_eq!(found.function, function);
            assert_eq!(found.binary, binary);
        }
        // The S3-triggered processor has no HTTP route.
        assert!(routes.iter().all(|r| r.function != "ProcessUploadFunction"));
    }

    #[test]
    fn repo_template_lists_functions_with_binaries_and_event_types() {
        let functions = repo_template().functions();
        let processor = functions
            .iter()
            .find(|f| f.logical_id == "ProcessUploadFunction")
            .expect("ProcessUploadFunction");
        assert_eq!(processor.binary, "process-upload");
        assert_eq!(processor.event_types, vec!["S3".to_owned()]);
        let get_file = functions
            .iter()
            .find(|f| f.logical_id == "GetFileFunction")
            .expect("GetFileFunction");
        assert_eq!(get_file.event_types, vec!["HttpApi".to_owned()]);
        // Non-function resources are not functions.
        assert!(functions.iter().all(|f| f.logical_id != "FilesTable"));
    }

    #[test]
    fn intrinsic_tags_stay_available_as_tagged_values() {
        let template = repo_template();
        let bucket = template.resource("FilesBucket").expect("FilesBucket");
        let Some(Value::Tagged(name)) = bucket.get("Properties").and_then(|p| p.get("BucketName"))
        else {
            panic!("BucketName should be a !Sub tagged value");
        };
        assert_eq!(name.tag, "Sub");
        assert!(template.resource("NoSuchResource").is_none());
    }

    #[test]
    fn match_path_extracts_and_decodes_parameters() {
        let get = route("GET", "/v1/files/{file_id}");
        let params = get.match_path("/v1/files/a%20b%2Fc").expect("matches");
        assert_eq!(params["file_id"], "a b/c");
        assert!(get.match_path("/v1/files/x/content").is_none());
        assert!(get.match_path("/v1/files/").is_none());
        assert!(get.match_path("/v1/files").is_none());
        assert!(get.match_path("/v1/other/x").is_none());

        let content = route("GET", "/v1/files/{file_id}/content");
        assert_eq!(
            content.match_path("/v1/files/f1/content").expect("matches")["file_id"],
            "f1"
        );
        assert!(content.match_path("/v1/files/f1/contents").is_none());

        let exact = route("POST", "/v1/uploads");
        assert_eq!(exact.match_path("/v1/uploads"), Some(HashMap::new()));
        assert!(exact.match_path("/v1/uploads/").is_none());
    }

    #[test]
    fn greedy_parameter_takes_the_rest_of_the_path() {
        let greedy = route("GET", "/v1/tree/{path+}");
        assert_eq!(
            greedy.match_path("/v1/tree/a/b%20c/d").expect("matches")["path"],
            "a/b c/d"
        );
        assert!(greedy.match_path("/v1/tree/").is_none());
        assert!(greedy.match_path("/v1/tree").is_none());
    }

    #[test]
    fn any_method_matches_everything_and_ranks_below_explicit_methods() {
        let any = route("ANY", "/v1/x");
        assert!(any.matches_method(&Method::DELETE));
        assert_eq!(any.route_key(), "ANY /v1/x");
        let get = route("GET", "/v1/x");
        assert!(!get.matches_method(&Method::POST));
        assert!(get.specificity() > any.specificity());
        assert!(
            route("GET", "/v1/files/search").specificity()
                > route("GET", "/v1/files/{id}").specificity()
        );
        assert!(
            route("GET", "/v1/files/{id}").specificity()
                > route("GET", "/v1/files/{id+}").specificity()
        );
    }

    #[test]
    fn parse_rejects_functions_it_cannot_run() {
        let missing_binary = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Api: { Type: HttpApi, Properties: { Path: /x, Method: GET } }
"#;
        assert!(matches!(
            SamTemplate::parse(missing_binary),
            Err(TemplateError::InvalidFunction { .. })
        ));

        let bad_path = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: f } }
    Properties:
      Events:
        Api: { Type: HttpApi, Properties: { Path: "/x/{a+}/y", Method: get } }
"#;
        assert!(matches!(
            SamTemplate::parse(bad_path),
            Err(TemplateError::InvalidFunction { .. })
        ));

        assert!(matches!(
            SamTemplate::parse("Description: nothing"),
            Err(TemplateError::MissingResources)
        ));
    }

    #[test]
    fn lower_case_methods_are_normalised() {
        let yaml = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: f } }
    Properties:
      Events:
        Api: { Type: HttpApi, Properties: { ApiId: !Ref Api, Path: "/x/{id}", Method: delete } }
"#;
        let routes = SamTemplate::parse(yaml).expect("parses").http_routes();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].route_key(), "DELETE /x/{id}");
    }
}
