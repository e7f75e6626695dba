//! The local gateway, over real HTTP, with the routes of infra/template.yaml and fake handlers that
//! echo what they received through `lambda_http::RequestExt`, i.e. what a real function would see.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use local_stack::authorizer::{JwtAuthorizer, JwtAuthorizerConfig, mint_hs256};
use local_stack::cors::CorsConfig;
use local_stack::gateway::{
    Gateway, GatewayError, GatewayHandle, MAX_INVOCATION_PAYLOAD_BYTES, MAX_REQUEST_BODY_BYTES,
    RouteHandler, StaticDir, route_handler,
};
use local_stack::template::{HttpRoute, SamTemplate};
use serde_json::{Value, json};

const SECRET: &str = "gateway-test-secret";
const ISSUER: &str = "https://issuer.gateway.test";
const AUDIENCE: &str = "files-api";

fn template_routes() -> Vec<HttpRoute> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    SamTemplate::load(&path)
        .expect("infra/template.yaml parses")
        .http_routes()
}

fn authorizer() -> Arc<JwtAuthorizer> {
    Arc::new(
        JwtAuthorizer::new(JwtAuthorizerConfig {
            issuer: ISSUER.into(),
            audiences: vec![AUDIENCE.into()],
            hs256_secret: Some(SECRET.into()),
            jwks: None,
        })
        .expect("config"),
    )
}

fn token_for(tenant: &str, sub: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    mint_hs256(
        SECRET,
        &json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tenant_id": tenant,
            "iat": now, "exp": now + 300, "scope": "files:read files:write",
            "groups": ["a", "b"],
        }),
    )
}

/// Answers with JSON describing the request as the handler saw it; with `x-echo-raw` it answers the
/// request body itself, with the request's content type, to check binary responses.
fn echo_handler(binary: &'static str, calls: Arc<AtomicUsize>) -> RouteHandler {
    route_handler(move |request: lambda_http::Request| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if request.headers().contains_key("x-echo-raw") {
                let content_type = request.headers().get("content-type").cloned();
                let bytes = request.body().as_ref().to_vec();
                let mut response = lambda_http::Response::new(Body::Binary(bytes));
                if let Some(content_type) = content_type {
                    response.headers_mut().insert("content-type", content_type);
                }
                return response;
            }

            let path_parameters: HashMap<String, String> = request
                .path_parameters()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let query: HashMap<String, Vec<String>> = {
                let query = request.query_string_parameters();
                query
                    .iter()
                    .map(|(k, _)| {
                        let all = query.all(k).unwrap_or_default();
                        (k.to_owned(), all.into_iter().map(str::to_owned).collect())
                    })
                    .collect()
            };
            let (claims, scopes, route_key, request_id, source_ip, stage) =
                match request.request_context_ref() {
                    Some(RequestContext::ApiGatewayV2(context)) => {
                        let jwt = context.authorizer.as_ref().and_then(|a| a.jwt.clone());
                        (
                            jwt.as_ref().map(|j| j.claims.clone()),
                            jwt.and_then(|j| j.scopes),
                            context.route_key.clone(),
                            context.request_id.clone(),
                            context.http.source_ip.clone(),
                            context.stage.clone(),
                        )
                    }
                    _ => (None, None, None, None, None, None),
                };
            let (body_kind, body_base64) = match request.body() {
                Body::Empty => ("empty", String::new()),
                Body::Text(text) => ("text", BASE64.encode(text)),
                Body::Binary(bytes) => ("binary", BASE64.encode(bytes)),
                _ => ("other", String::new()),
            };
            let description = json!({
                "binary": binary,
                "method": request.method().as_str(),
                "uri": request.uri().to_string(),
                "path_parameters": path_parameters,
                "query": query,
                "claims": claims,
                "scopes": scopes,
                "route_key": route_key,
                "request_id": request_id,
                "source_ip": source_ip,
                "stage": stage,
                "cookie": request.headers().get("cookie").and_then(|v| v.to_str().ok()),
                "x_forwarded_proto": request.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
                "body_kind": body_kind,
                "body_base64": body_base64,
            });
            let mut response = lambda_http::Response::new(Body::Text(description.to_string()));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            response
        }
    })
}

struct TestGateway {
    handle: GatewayHandle,
    client: reqwest::Client,
    calls: Arc<AtomicUsize>,
}

impl TestGateway {
    async fn start() -> TestGateway {
        Self::start_with(|_| {}, Duration::from_secs(30)).await
    }

    async fn start_with(
        customise: impl FnOnce(&mut HashMap<String, RouteHandler>),
        integration_timeout: Duration,
    ) -> TestGateway {
        Self::start_full(customise, integration_timeout, None, None).await
    }

    async fn start_full(
        customise: impl FnOnce(&mut HashMap<String, RouteHandler>),
        integration_timeout: Duration,
        cors: Option<CorsConfig>,
        static_dir: Option<StaticDir>,
    ) -> TestGateway {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut handlers = HashMap::new();
        for binary in ["create-upload", "get-file", "download-file"] {
            handlers.insert(binary.to_owned(), echo_handler(binary, Arc::clone(&calls)));
        }
        customise(&mut handlers);
        // Every HTTP route of the template needs a handler; routes added later get the echo too.
        for route in template_routes() {
            handlers
                .entry(route.binary.clone())
                .or_insert_with(|| echo_handler("other", Arc::clone(&calls)));
        }
        let mut gateway = Gateway::new(template_routes(), handlers, authorizer())
            .expect("gateway")
            .with_integration_timeout(integration_timeout)
            .with_cors(cors);
        if let Some(dir) = static_dir {
            gateway = gateway.with_static_dir(dir);
        }
        let handle = gateway
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .expect("serve");
        TestGateway {
            handle,
            client: reqwest::Client::new(),
            calls,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.handle.base_url(), path_and_query)
    }

    async fn get_authorized(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(self.url(path_and_query))
            .bearer_auth(token_for("acme", "alice"))
            .send()
            .await
            .expect("request")
    }
}

async fn json_body(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn path_parameters_are_decoded_and_routed_to_the_template_function() {
    let gateway = TestGateway::start().await;

    let response = gateway.get_authorized("/v1/files/a%20b%2Fc").await;
    assert_eq!(response.status(), 200);
    let request_id_header = response
        .headers()
        .get("apigw-requestid")
        .expect("apigw-requestid header")
        .to_str()
        .unwrap()
        .to_owned();
    let seen = json_body(response).await;
    assert_eq!(seen["binary"], "get-file");
    assert_eq!(seen["path_parameters"]["file_id"], "a b/c");
    assert_eq!(seen["route_key"], "GET /v1/files/{file_id}");
    assert_eq!(seen["request_id"], request_id_header.as_str());
    assert_eq!(seen["source_ip"], "127.0.0.1");
    assert_eq!(seen["stage"], "$default");
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["x_forwarded_proto"], "http");

    let seen = json_body(gateway.get_authorized("/v1/files/f-1/content").await).await;
    assert_eq!(seen["binary"], "download-file");
    assert_eq!(seen["path_parameters"]["file_id"], "f-1");
    assert_eq!(seen["route_key"], "GET /v1/files/{file_id}/content");

    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn query_string_reaches_the_handler() {
    let gateway = TestGateway::start().await;
    let seen = json_body(
        gateway
            .get_authorized("/v1/files/f1?tag=a&tag=b&name=hello%20world&plus=x+y")
            .await,
    )
    .await;
    assert_eq!(seen["query"]["tag"], json!(["a", "b"]));
    assert_eq!(seen["query"]["name"], json!(["hello world"]));
    assert_eq!(seen["query"]["plus"], json!(["x y"]));
    assert!(
        seen["uri"]
            .as_str()
            .unwrap()
            .ends_with("/v1/files/f1?tag=a&tag=b&name=hello%20world&plus=x+y"),
        "{}",
        seen["uri"]
    );
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn jwt_claims_and_scopes_reach_the_handler() {
    let gateway = TestGateway::start().await;
    let seen = json_body(gateway.get_authorized("/v1/files/f1").await).await;
    assert_eq!(seen["claims"]["sub"], "alice");
    assert_eq!(seen["claims"]["tenant_id"], "acme");
    assert_eq!(seen["claims"]["iss"], ISSUER);
    assert_eq!(seen["claims"]["groups"], "[a b]");
    assert!(
        seen["claims"]["exp"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert_eq!(seen["scopes"], json!(["files:read", "files:write"]));
    gateway.handle.shutdown().await;
}

async fn assert_unauthorized(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    assert!(response.headers().contains_key("apigw-requestid"));
    // The reason is for the log only, never the client.
    assert_eq!(
        json_body(response).await,
        json!({"message": "Unauthorized"})
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_and_never_reach_the_handler() {
    let gateway = TestGateway::start().await;

    let no_token = gateway
        .client
        .get(gateway.url("/v1/files/f1"))
        .send()
        .await
        .unwrap();
    assert_unauthorized(no_token).await;

    let wrong_secret = mint_hs256(
        "not-the-secret",
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": jsonwebtoken::get_current_timestamp() + 60}),
    );
    let bad_signature = gateway
        .client
        .get(gateway.url("/v1/files/f1"))
        .bearer_auth(wrong_secret)
        .send()
        .await
        .unwrap();
    assert_unauthorized(bad_signature).await;

    let garbage = gateway
        .client
        .post(gateway.url("/v1/uploads"))
        .header("authorization", "Bearer garbage")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_unauthorized(garbage).await;

    assert_eq!(gateway.calls.load(Ordering::SeqCst), 0);
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_404_before_authorization() {
    let gateway = TestGateway::start().await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/nothing-here"),
        // Not routes (GET /v1/files and DELETE /v1/files/{file_id} are, since listing and deletes).
        (reqwest::Method::GET, "/v1/filez"),
        (reqwest::Method::GET, "/v1/files/f1/content/extra"),
        (reqwest::Method::PUT, "/v1/files/f1"),
        (reqwest::Method::GET, "/v1/uploads"),
    ] {
        // With and without a token: routing comes first, as in API Gateway.
        for token in [None, Some(token_for("acme", "alice"))] {
            let mut request = gateway.client.request(method.clone(), gateway.url(path));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 404, "{method} {path}");
            assert_eq!(json_body(response).await, json!({"message": "Not Found"}));
        }
    }
    assert_eq!(gateway.calls.load(Ordering::SeqCst), 0);
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn binary_body_round_trips_byte_for_byte() {
    let gateway = TestGateway::start().await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(4096).collect();

    // The handler sees the bytes (sent base64-encoded in the event, decoded by lambda_http).
    let seen = json_body(
        gateway
            .client
            .post(gateway.url("/v1/uploads"))
            .bearer_auth(token_for("acme", "alice"))
            .header("content-type", "application/octet-stream")
            .body(payload.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["body_kind"], "binary");
    assert_eq!(
        BASE64
            .decode(seen["body_base64"].as_str().unwrap())
            .unwrap(),
        payload
    );

    // And a binary response comes back unchanged.
    let response = gateway
        .client
        .post(gateway.url("/v1/uploads"))
        .bearer_auth(token_for("acme", "alice"))
        .header("content-type", "application/octet-stream")
        .header("x-echo-raw", "1")
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), payload);
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn json_body_arrives_as_text_and_cookies_as_a_cookie_header() {
    let gateway = TestGateway::start().await;
    let body = r#"{"name":"report.pdf","size":12}"#;
    let seen = json_body(
        gateway
            .client
            .post(gateway.url("/v1/uploads"))
            .bearer_auth(token_for("acme", "alice"))
            .header("content-type", "application/json")
            .header("cookie", "a=1; b=2")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["body_kind"], "text");
    assert_eq!(
        BASE64
            .decode(seen["body_base64"].as_str().unwrap())
            .unwrap(),
        body.as_bytes()
    );
    assert_eq!(seen["cookie"], "a=1; b=2");
    assert_eq!(seen["route_key"], "POST /v1/uploads");
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn bodies_over_10_mb_are_refused_with_413() {
    let gateway = TestGateway::start().await;
    let response = gateway
        .client
        .post(gateway.url("/v1/uploads"))
        .bearer_auth(token_for("acme", "alice"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; MAX_REQUEST_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(gateway.calls.load(Ordering::SeqCst), 0);

    // Under API Gateway's 10 MB but over Lambda's invocation limit once in the event (base64):
    // refused before the function too.
    let over_lambda = gateway
        .client
        .post(gateway.url("/v1/uploads"))
        .bearer_auth(token_for("acme", "alice"))
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; MAX_INVOCATION_PAYLOAD_BYTES / 4 * 3])
        .send()
        .await
        .unwrap();
    assert_eq!(over_lambda.status(), 413);
    assert_eq!(gateway.calls.load(Ordering::SeqCst), 0);

    // A body whose event fits: passed on whole.
    let fits = MAX_INVOCATION_PAYLOAD_BYTES / 4 * 3 - 64 * 1024;
    let at_limit = gateway
        .client
        .post(gateway.url("/v1/uploads"))
        .bearer_auth(token_for("acme", "alice"))
        .header("content-type", "application/octet-stream")
        .header("x-echo-raw", "1")
        .body(vec![7u8; fits])
        .send()
        .await
        .unwrap();
    assert_eq!(at_limit.status(), 200);
    assert_eq!(at_limit.bytes().await.unwrap().len(), fits);
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn slow_handlers_time_out_with_503_and_panics_give_500() {
    let gateway = TestGateway::start_with(
        |handlers| {
            handlers.insert(
                "get-file".into(),
                route_handler(|_request| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    lambda_http::Response::new(Body::Empty)
                }),
            );
            handlers.insert(
                "download-file".into(),
                route_handler(|_request| async { panic!("handler bug") }),
            );
        },
        Duration::from_millis(300),
    )
    .await;

    let slow = gateway.get_authorized("/v1/files/f1").await;
    assert_eq!(slow.status(), 503);
    assert_eq!(
        json_body(slow).await,
        json!({"message": "Service Unavailable"})
    );

    let panicking = gateway.get_authorized("/v1/files/f1/content").await;
    assert_eq!(panicking.status(), 500);
    assert_eq!(
        json_body(panicking).await,
        json!({"message": "Internal Server Error"})
    );
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn gateway_new_fails_when_a_route_has_no_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut handlers: HashMap<String, RouteHandler> = HashMap::new();
    for route in template_routes() {
        handlers.insert(route.binary.clone(), echo_handler("x", Arc::clone(&calls)));
    }
    handlers.remove("get-file");
    match Gateway::new(template_routes(), handlers, authorizer()) {
        Err(GatewayError::MissingHandler { binary, route_key }) => {
            assert_eq!(binary, "get-file");
            assert_eq!(route_key, "GET /v1/files/{file_id}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a route without a handler must be refused"),
    }
}

fn template() -> SamTemplate {
    SamTemplate::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"))
        .expect("infra/template.yaml parses")
}

/// The template's CORS configuration, deployed with `CorsAllowedOrigin=<origin>`.
fn template_cors(origin: Option<&str>) -> CorsConfig {
    let parameters: HashMap<String, String> = origin
        .map(|o| HashMap::from([("CorsAllowedOrigin".to_string(), o.to_string())]))
        .unwrap_or_default();
    template()
        .http_api_cors(&parameters)
        .expect("CorsConfiguration resolves")
        .expect("the HTTP API configures CORS")
}

const APP_ORIGIN: &str = "https://app.example.com";

async fn cors_gateway(origin: Option<&str>) -> TestGateway {
    TestGateway::start_full(
        |handlers| {
            // A function that sets its own CORS headers: API Gateway ignores them.
            handlers.insert(
                "list-files".to_owned(),
                route_handler(|_request| async {
                    let mut response = lambda_http::Response::new(Body::Text("{}".into()));
                    let headers = response.headers_mut();
                    headers.insert(
                        "access-control-allow-origin",
                        "https://evil.test".parse().unwrap(),
                    );
                    headers.insert("etag", "\"e1\"".parse().unwrap());
                    response
                }),
            );
        },
        Duration::from_secs(30),
        Some(template_cors(origin)),
        None,
    )
    .await
}

async fn preflight(
    gateway: &TestGateway,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> reqwest::Response {
    let mut request = gateway
        .client
        .request(reqwest::Method::OPTIONS, gateway.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(headers) = headers {
        request = request.header("access-control-request-headers", headers);
    }
    request.send().await.expect("preflight")
}

fn cors_headers(response: &reqwest::Response) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
    found.sort();
    found
}

#[test]
fn the_cors_configuration_is_read_from_the_template_with_its_parameters() {
    let default = template_cors(None);
    assert_eq!(
        default.allow_origins,
        vec!["*"],
        "CorsAllowedOrigin defaults to *"
    );
    assert_eq!(
        default.allow_methods,
        vec!["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    );
    assert_eq!(
        default.allow_headers,
        vec!["authorization", "content-type", "if-match", "if-none-match"]
    );
    assert_eq!(
        default.expose_headers,
        vec!["etag", "location", "thumbnail-status"]
    );
    assert_eq!(default.max_age, Some(3600));
    assert!(!default.allow_credentials);
    assert_eq!(
        template_cors(Some(APP_ORIGIN)).allow_origins,
        vec![APP_ORIGIN]
    );
}

#[tokio::test]
async fn preflights_are_answered_as_the_template_says_without_a_token_or_a_route() {
    let gateway = cors_gateway(Some(APP_ORIGIN)).await;

    // GIVEN an allowed origin, method and headers, WHEN the browser asks before a POST with a
    // bearer token, THEN API Gateway answers itself: 204 with the configured lists, no JWT needed.
    let response = preflight(
        &gateway,
        "/v1/uploads",
        APP_ORIGIN,
        "POST",
        Some("Authorization, Content-Type"),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        cors_headers(&response),
        vec![
            (
                "access-control-allow-headers".into(),
                "authorization,content-type,if-match,if-none-match".into()
            ),
            (
                "access-control-allow-methods".into(),
                "GET,POST,PUT,PATCH,DELETE,OPTIONS".into()
            ),
            ("access-control-allow-origin".into(), APP_ORIGIN.into()),
            ("access-control-max-age".into(), "3600".into()),
        ]
    );
    assert!(response.bytes().await.unwrap().is_empty());
    // A route with parameters, and a path with no route at all: the same answer.
    for path in ["/v1/uploads/u1", "/v1/no-such-route"] {
        let response = preflight(&gateway, path, APP_ORIGIN, "DELETE", None).await;
        assert_eq!(response.status(), 204, "{path}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            APP_ORIGIN
        );
    }

    // Another origin, a method or a header that is not allowed: 204 without any CORS header, so
    // the browser refuses the real request.
    for (origin, method, headers) in [
        ("https://evil.example.com", "POST", None),
        ("http://app.example.com", "GET", None),
        (APP_ORIGIN, "TRACE", None),
        (APP_ORIGIN, "POST", Some("authorization, x-custom")),
    ] {
        let response = preflight(&gateway, "/v1/uploads", origin, method, headers).await;
        assert_eq!(response.status(), 204, "{origin} {method} {headers:?}");
        assert!(
            cors_headers(&response).is_empty(),
            "{origin} {method} {headers:?}"
        );
    }

    // An OPTIONS that is not a preflight (no Access-Control-Request-Method) is routed as usual:
    // there is no OPTIONS route.
    let response = gateway
        .client
        .request(reqwest::Method::OPTIONS, gateway.url("/v1/uploads"))
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        gateway.calls.load(Ordering::SeqCst),
        0,
        "no preflight reached a function"
    );
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn responses_to_allowed_origins_carry_allow_origin_and_the_exposed_headers() {
    let gateway = cors_gateway(Some(APP_ORIGIN)).await;
    let get = |origin: Option<&'static str>, token: bool| {
        let mut request = gateway.client.get(gateway.url("/v1/files"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if token {
            request = request.bearer_auth(token_for("acme", "alice"));
        }
        request.send()
    };

    let response = get(Some(APP_ORIGIN), true).await.unwrap();
    assert_eq!(response.status(), 200);
    // The function's own CORS header is replaced by the configured ones.
    assert_eq!(
        cors_headers(&response),
        vec![
            ("access-control-allow-origin".into(), APP_ORIGIN.into()),
            (
                "access-control-expose-headers".into(),
                "etag,location,thumbnail-status".into()
            ),
        ]
    );
    assert_eq!(response.headers()["vary"], "Origin");
    assert_eq!(response.headers()["etag"], "\"e1\"");

    // A browser can read the 401 too (and so tell an expired token from a network error).
    let unauthorized = get(Some(APP_ORIGIN), false).await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(
        unauthorized.headers()["access-control-allow-origin"],
        APP_ORIGIN
    );

    // No Origin, or another one: no CORS headers at all (not even the function's).
    for origin in [None, Some("https://evil.example.com")] {
        let response = get(origin, true).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(cors_headers(&response).is_empty(), "{origin:?}");
    }
    gateway.handle.shutdown().await;

    // With the default `*`, any origin gets `*`.
    let gateway = cors_gateway(None).await;
    let response = gateway
        .client
        .get(gateway.url("/v1/files"))
        .header("origin", "http://127.0.0.1:5173")
        .bearer_auth(token_for("acme", "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let response = preflight(
        &gateway,
        "/v1/files",
        "http://127.0.0.1:5173",
        "GET",
        Some("authorization"),
    )
    .await;
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    gateway.handle.shutdown().await;
}

#[tokio::test]
async fn static_files_are_served_where_no_route_matches_and_never_outside_their_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><p>page</p>").unwrap();
    std::fs::create_dir(dir.path().join("js")).unwrap();
    std::fs::write(dir.path().join("js/app.js"), "export {}").unwrap();
    std::fs::write(dir.path().join(".secret"), "no").unwrap();
    let gateway = TestGateway::start_full(
        |_| {},
        Duration::from_secs(30),
        None,
        Some(StaticDir {
            url_prefix: "/".into(),
            dir: dir.path().to_path_buf(),
        }),
    )
    .await;
    let get = |path: &'static str| gateway.client.get(gateway.url(path)).send();

    let page = get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("page"));
    let script = get("/js/app.js").await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    for path in [
        "/.secret",
        "/js/../.secret",
        "/%2e%2e/etc/passwd",
        "/missing.js",
    ] {
        assert_eq!(get(path).await.unwrap().status(), 404, "{path}");
    }
    // API routes win: this is a route, so it needs a token.
    assert_eq!(get("/v1/files").await.unwrap().status(), 401);
    gateway.handle.shutdown().await;
}
