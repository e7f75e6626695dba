//! A local stand-in for the API Gateway HTTP API in front of the Lambda functions (payload format
//! 2.0): it routes with the routes of the SAM template, verifies the bearer token as the JWT
//! authorizer does, builds the same `ApiGatewayV2httpRequest` event API Gateway would send, turns it
//! into a `lambda_http::Request` exactly as the Lambda runtime does, and calls the function's handler
//! in-process. Handlers therefore run unchanged, and what they see (path parameters, query, claims,
//! body encoding) matches AWS.
//!
//! CORS is answered as the template's `CorsConfiguration` says ([`crate::cors`]): preflights before
//! routing and authorization, the configured headers on every other answer to an allowed origin.
//! Besides the API, and only locally: static documents (`/openapi.yaml`, `/local/dev-token`) and
//! static files (the browser page at `/`) where no route matches.
//!
//! Gateway-generated answers use API Gateway's bodies: 404 `{"message":"Not Found"}` when no route
//! matches (wrong method included), 401 `{"message":"Unauthorized"}`, 413 for bodies over 10 MB
//! and for events over Lambda's 6,291,456-byte invocation payload,
//! 503 `{"message":"Service Unavailable"}` after the 30 s integration timeout, and 500
//! `{"message":"Internal Server Error"}` when a handler panics or fails (a failed invocation).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, IntoResponse};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::authorizer::{AuthorizedJwt, JwtAuthorizer};
use crate::cors::CorsConfig;
use crate::template::HttpRoute;

/// What a handler returns: the same future type as `lambda_http::IntoResponse`.
pub type HandlerFuture = Pin<Box<dyn Future<Output = lambda_http::Response<Body>> + Send>>;
/// A function's request handler, called in-process for each request on one of its routes.
pub type RouteHandler = Arc<dyn Fn(lambda_http::Request) -> HandlerFuture + Send + Sync>;

/// HTTP API payload limit.
pub const MAX_REQUEST_BODY_BYTES: usize = shared::http::API_GATEWAY_MAX_PAYLOAD_BYTES;
/// Lambda's synchronous invocation payload limit, on the whole event (a binary body in it is
/// base64, 4/3 of its size): a body under API Gateway's 10 MB can still be too large for the
/// function. AWS answers such a request itself, without calling the function; so does this gateway
/// (413 `{"message":"Request Entity Too Large"}`, as for bodies over 10 MB).
pub const MAX_INVOCATION_PAYLOAD_BYTES: usize = shared::http::LAMBDA_MAX_REQUEST_PAYLOAD_BYTES;
/// HTTP API maximum integration timeout.
pub const DEFAULT_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// `requestContext.apiId` of local events.
pub const LOCAL_API_ID: &str = "local";
/// `requestContext.accountId` of local events.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
/// How long `GatewayHandle::shutdown` lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A gateway that cannot be built from the routes and handlers given.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("route {route_key} needs a handler for binary {binary:?}, and none was given")]
    MissingHandler { route_key: String, binary: String },
    #[error("route {0} is declared twice")]
    DuplicateRoute(String),
}

/// Wraps an async closure returning a response into a [`RouteHandler`].
pub fn route_handler<F, Fut>(handler: F) -> RouteHandler
where
    F: Fn(lambda_http::Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = lambda_http::Response<Body>> + Send + 'static,
{
    Arc::new(move |request| Box::pin(handler(request)))
}

/// Wraps a handler with the signature `lambda_http::run` takes (`Result<impl IntoResponse, E>`) into
/// a [`RouteHandler`]. An `Err` is a failed invocation: it is logged and, as from API Gateway, the
/// client gets 500 `{"message":"Internal Server Error"}`.
pub fn lambda_handler<F, Fut, R, E>(handler: F) -> RouteHandler
where
    F: Fn(lambda_http::Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: IntoResponse,
    E: Display + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |request| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            // Converted before awaiting, so `R` itself need not be `Send`.
            let converting = match handler(request).await {
                Ok(response) => response.into_response(),
                Err(error) => {
                    tracing::error!(%error, "handler returned an error");
                    return internal_error();
                }
            };
            converting.await
        })
    })
}

struct BoundRoute {
    route: HttpRoute,
    route_key: String,
    handler: RouteHandler,
}

struct GatewayState {
    routes: Vec<BoundRoute>,
    authorizer: Arc<JwtAuthorizer>,
    integration_timeout: Duration,
    documents: Vec<StaticDocument>,
    /// The HTTP API's CORS configuration: preflights are answered before routing and authorization.
    cors: Option<CorsConfig>,
    /// Files served to `GET` where no route matches (the browser page), by URL prefix.
    static_dirs: Vec<StaticDir>,
}

/// A folder the local gateway serves as static files under `url_prefix` (only where no API route
/// matches). `/` and folder paths serve `index.html`. Only the local gateway does this.
#[derive(Debug, Clone)]
pub struct StaticDir {
    /// e.g. `/`; must start and end with `/`.
    pub url_prefix: String,
    pub dir: std::path::PathBuf,
}

/// A document the gateway serves itself to `GET`, without authorization, e.g. the
/// OpenAPI description at `/openapi.yaml`. Only the local gateway does this; it is not an API route.
#[derive(Debug, Clone)]
pub struct StaticDocument {
    /// Exact request path, e.g. `/openapi.yaml`.
    pub path: String,
    pub content_type: &'static str,
    pub body: Bytes,
}

/// The routes, their handlers and the authorizer; [`Gateway::serve`] puts them on a socket.
pub struct Gateway {
    state: GatewayState,
}

impl Gateway {
    /// Binds each route to the handler of its binary. Fails if a route's binary has no handler in
    /// `handlers` (keyed by binary name) or if a route key appears twice.
    pub fn new(
        routes: Vec<HttpRoute>,
        handlers: HashMap<String, RouteHandler>,
        authorizer: Arc<JwtAuthorizer>,
    ) -> Result<Gateway, GatewayError> {
        let mut bound: Vec<BoundRoute> = Vec::with_capacity(routes.len());
        for route in routes {
            let route_key = route.route_key();
            if bound.iter().any(|existing| existing.route_key == route_key) {
                return Err(GatewayError::DuplicateRoute(route_key));
            }
            let handler = handlers.get(&route.binary).cloned().ok_or_else(|| {
                GatewayError::MissingHandler {
                    route_key: route_key.clone(),
                    binary: route.binary.clone(),
                }
            })?;
            bound.push(BoundRoute {
                route,
                route_key,
                handler,
            });
        }
        // Most specific first, so the first match is the one API Gateway would pick.
        bound.sort_by_key(|b| std::cmp::Reverse(b.route.specificity()));
        Ok(Gateway {
            state: GatewayState {
                routes: bound,
                authorizer,
                integration_timeout: DEFAULT_INTEGRATION_TIMEOUT,
                documents: Vec::new(),
                cors: None,
                static_dirs: Vec::new(),
            },
        })
    }

    /// Replaces the 30 s integration timeout (tests use a short one).
    pub fn with_integration_timeout(mut self, timeout: Duration) -> Gateway {
        self.state.integration_timeout = timeout;
        self
    }

    /// Also serves `document` (unauthenticated) at its path.
    pub fn with_static_document(mut self, document: StaticDocument) -> Gateway {
        self.state.documents.push(document);
        self
    }

    /// Answers CORS as the HTTP API with this `CorsConfiguration` does (see [`crate::cors`]).
    pub fn with_cors(mut self, cors: Option<CorsConfig>) -> Gateway {
        self.state.cors = cors;
        self
    }

    /// Serves the files of `dir` under `url_prefix` where no route matches.
    pub fn with_static_dir(mut self, dir: StaticDir) -> Gateway {
        self.state.static_dirs.push(dir);
        self
    }

    /// The routes served, most specific first.
    pub fn routes(&self) -> impl Iterator<Item = &HttpRoute> {
        self.state.routes.iter().map(|bound| &bound.route)
    }

    /// Listens on `addr` (port 0 picks a free port) and serves until the handle is shut down or dropped.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<GatewayHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop_sender, stop_receiver) = watch::channel(false);
        let state = Arc::new(self.state);
        let server_task = tokio::spawn(accept_loop(listener, state, stop_receiver));
        tracing::info!(%local_addr, "local API gateway listening");
        Ok(GatewayHandle {
            local_addr,
            stop_sender,
            server_task,
        })
    }
}

/// A running gateway. Dropping it stops accepting connections, like [`GatewayHandle::shutdown`]
/// without waiting.
pub struct GatewayHandle {
    local_addr: SocketAddr,
    stop_sender: watch::Sender<bool>,
    server_task: JoinHandle<()>,
}

impl GatewayHandle {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<ip>:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting connections and waits (up to 5 s) for in-flight requests to finish.
    pub async fn shutdown(self) {
        let _ = self.stop_sender.send(true);
        if let Err(error) = self.server_task.await {
            tracing::warn!(%error, "gateway task ended abnormally");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<GatewayState>,
    mut stop_receiver: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    loop {
        tokio::select! {
            // Also fires when the handle is dropped (the sender goes away).
            _ = stop_receiver.changed() => break,
            accepted = listener.accept() => {
                let (stream, remote_addr) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Per-connection failures (e.g. the peer reset before accept); keep serving.
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                let service = hyper::service::service_fn(move |request| {
                    let state = Arc::clone(&state);
                    async move {
                        Ok::<_, Infallible>(state.handle(request, remote_addr, local_port).await)
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after the shutdown grace period");
    }
}

type GatewayResponse = http::Response<Full<Bytes>>;

/// The outcome of one request, with what the log line needs besides the response.
struct Dispatched<'a> {
    response: lambda_http::Response<Body>,
    /// Key of the matched route; `None` for 404.
    route_key: Option<&'a str>,
    /// Why the authorizer refused the token (401 only); never sent to the client.
    auth_failure: Option<&'static str>,
}

impl<'a> Dispatched<'a> {
    fn answer(response: lambda_http::Response<Body>, route_key: Option<&'a str>) -> Self {
        Dispatched {
            response,
            route_key,
            auth_failure: None,
        }
    }
}

/// An answer API Gateway itself produces: `{"message": ...}` as JSON.
fn gateway_message_response(status: StatusCode, message: &str) -> lambda_http::Response<Body> {
    let mut response =
        lambda_http::Response::new(Body::Text(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl GatewayState {
    async fn handle(
        &self,
        request: http::Request<Incoming>,
        remote_addr: SocketAddr,
        local_port: u16,
    ) -> GatewayResponse {
        let started = Instant::now();
        let request_id = uuid::Uuid::now_v7().to_string();
        let method = request.method().clone();
        let raw_path = request.uri().path().to_owned();

        let (
            Dispatched {
                mut response,
                route_key,
                auth_failure,
            },
            request_headers,
        ) = match &self.cors {
            // API Gateway answers preflights itself, whatever the path, before the authorizer.
            Some(cors) if CorsConfig::is_preflight(&method, request.headers()) => {
                let mut response = lambda_http::Response::new(Body::Empty);
                *response.status_mut() = StatusCode::NO_CONTENT;
                *response.headers_mut() = cors.preflight_headers(request.headers());
                (Dispatched::answer(response, Some("CORS preflight")), None)
            }
            _ => {
                let headers = self.cors.as_ref().map(|_| request.headers().clone());
                let dispatched = self
                    .dispatch(request, remote_addr, local_port, &request_id)
                    .await;
                (dispatched, headers)
            }
        };
        if let (Some(cors), Some(request_headers)) = (&self.cors, &request_headers) {
            cors.apply_to_response(request_headers, response.headers_mut());
        }

        let status = response.status();
        let elapsed_ms = started.elapsed().as_millis();
        tracing::info!(
            %method,
            path = %raw_path,
            status = status.as_u16(),
            ms = elapsed_ms as u64,
            route = route_key.unwrap_or("-"),
            auth_failure = auth_failure.unwrap_or("-"),
            %request_id,
            "request"
        );
        into_hyper_response(response, &request_id)
    }

    async fn dispatch(
        &self,
        request: http::Request<Incoming>,
        remote_addr: SocketAddr,
        local_port: u16,
        request_id: &str,
    ) -> Dispatched<'_> {
        if let Some(document) = self.static_document(request.method(), request.uri().path()) {
            return Dispatched::answer(document, None);
        }
        let Some((bound, path_parameters)) =
            self.find_route(request.method(), request.uri().path())
        else {
            if let Some(file) = self
                .static_file(request.method(), request.uri().path())
                .await
            {
                return Dispatched::answer(file, None);
            }
            return Dispatched::answer(
                gateway_message_response(StatusCode::NOT_FOUND, "Not Found"),
                None,
            );
        };
        let route_key = Some(bound.route_key.as_str());

        let authorization = request
            .headers()
            .get(AUTHORIZATION)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let jwt = match self.authorizer.authorize(authorization.as_deref()) {
            Ok(jwt) => jwt,
            Err(error) => {
                let mut response =
                    gateway_message_response(StatusCode::UNAUTHORIZED, "Unauthorized");
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
                return Dispatched {
                    response,
                    route_key,
                    auth_failure: Some(error.reason()),
                };
            }
        };

        // lambda_http builds the handler's URI from the Host header; one it cannot parse would make
        // the conversion panic, and API Gateway would not have routed such a request anyway.
        if let Some(host) = request.headers().get(HOST)
            && host
                .to_str()
                .ok()
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .is_none()
        {
            return Dispatched::answer(
                gateway_message_response(StatusCode::BAD_REQUEST, "Bad Request"),
                route_key,
            );
        }

        let (parts, body) = request.into_parts();
        let declared_length = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > MAX_REQUEST_BODY_BYTES as u64) {
            return Dispatched::answer(payload_too_large(), route_key);
        }
        let body = match Limited::new(body, MAX_REQUEST_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Dispatched::answer(payload_too_large(), route_key);
            }
            Err(error) => {
                tracing::debug!(%error, "reading the request body failed");
                return Dispatched::answer(
                    gateway_message_response(StatusCode::BAD_REQUEST, "Bad Request"),
                    route_key,
                );
            }
        };

        let event = EventInput {
            parts: &parts,
            body: &body,
            route_key: &bound.route_key,
            path_parameters,
            jwt,
            remote_addr,
            local_port,
            request_id,
        };
        // Lambda refuses an invocation whose event (the JSON, base64 body included) is over its
        // synchronous payload limit: measured on the serialized event, as Lambda measures it.
        let event = match serde_json::to_vec(&event.to_json()) {
            Ok(payload) if payload.len() > MAX_INVOCATION_PAYLOAD_BYTES => {
                tracing::info!(
                    bytes = payload.len(),
                    limit = MAX_INVOCATION_PAYLOAD_BYTES,
                    "event over Lambda's invocation payload limit"
                );
                return Dispatched::answer(payload_too_large(), route_key);
            }
            Ok(payload) => serde_json::from_slice::<ApiGatewayV2httpRequest>(&payload),
            Err(error) => Err(error),
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "could not build the API Gateway event");
                return Dispatched::answer(internal_error(), route_key);
            }
        };

        Dispatched::answer(self.invoke(bound, event).await, route_key)
    }

    fn static_document(&self, method: &Method, path: &str) -> Option<lambda_http::Response<Body>> {
        if method != Method::GET {
            return None;
        }
        let document = self.documents.iter().find(|d| d.path == path)?;
        let mut response = lambda_http::Response::new(Body::Binary(document.body.to_vec()));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(document.content_type),
        );
        Some(response)
    }

    /// A file of a static folder, for `GET`/`HEAD` of a path under its prefix.
    async fn static_file(
        &self,
        method: &Method,
        path: &str,
    ) -> Option<lambda_http::Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let decoded = percent_decode_str(path).decode_utf8().ok()?;
        for dir in &self.static_dirs {
            let Some(rest) = decoded.strip_prefix(dir.url_prefix.as_str()) else {
                continue;
            };
            // Only plain names: no `..`, no hidden files, no absolute paths.
            if rest
                .split('/')
                .any(|segment| segment.starts_with('.') || segment.contains('\\'))
            {
                return None;
            }
            let mut file = dir.dir.join(rest);
            if rest.is_empty() || rest.ends_with('/') {
                file = file.join("index.html");
            }
            let Ok(bytes) = tokio::fs::read(&file).await else {
                continue;
            };
            let mut response = lambda_http::Response::new(if method == Method::HEAD {
                Body::Empty
            } else {
                Body::Binary(bytes)
            });
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(static_content_type(&file)),
            );
            // The page and its scripts change while developing: always revalidate.
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            return Some(response);
        }
        None
    }

    fn find_route(
        &self,
        method: &Method,
        path: &str,
    ) -> Option<(&BoundRoute, HashMap<String, String>)> {
        self.routes.iter().find_map(|bound| {
            if !bound.route.matches_method(method) {
                return None;
            }
            bound.route.match_path(path).map(|params| (bound, params))
        })
    }

    /// Runs the handler on its own task, so that a panic becomes a 500 (as a crashed invocation
    /// does) instead of a dropped connection, and a slow one can be abandoned at the timeout.
    async fn invoke(
        &self,
        bound: &BoundRoute,
        event: ApiGatewayV2httpRequest,
    ) -> lambda_http::Response<Body> {
        let handler = Arc::clone(&bound.handler);
        let mut invocation = tokio::spawn(async move {
            let request: lambda_http::Request = LambdaRequest::ApiGatewayV2(event).into();
            handler(request).await
        });
        match tokio::time::timeout(self.integration_timeout, &mut invocation).await {
            Ok(Ok(response)) => response,
            Ok(Err(join_error)) => {
                tracing::error!(error = %join_error, route = %bound.route_key, "handler panicked");
                internal_error()
            }
            Err(_elapsed) => {
                invocation.abort();
                tracing::warn!(route = %bound.route_key, timeout = ?self.integration_timeout, "integration timed out");
                gateway_message_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
        }
    }
}

fn static_content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn payload_too_large() -> lambda_http::Response<Body> {
    gateway_message_response(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
}

fn internal_error() -> lambda_http::Response<Body> {
    gateway_message_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

fn into_hyper_response(response: lambda_http::Response<Body>, request_id: &str) -> GatewayResponse {
    let (mut parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(binary) => Bytes::from(binary),
        // `Body` is non-exhaustive; any future variant still has its bytes.
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    // The handler's own length could disagree with the body; hyper computes the right one.
    parts.headers.remove(CONTENT_LENGTH);
    if let Ok(value) = HeaderValue::from_str(request_id) {
        parts.headers.insert("apigw-requestid", value);
    }
    http::Response::from_parts(parts, Full::new(bytes))
}

/// Everything needed to write the payload-2.0 event for one request.
struct EventInput<'a> {
    parts: &'a http::request::Parts,
    body: &'a Bytes,
    route_key: &'a str,
    path_parameters: HashMap<String, String>,
    jwt: AuthorizedJwt,
    remote_addr: SocketAddr,
    local_port: u16,
    request_id: &'a str,
}

impl EventInput<'_> {
    /// The event as API Gateway serialises it (camelCase JSON). It is built as JSON and then
    /// deserialised, so it goes through the same serde code as an event the Lambda runtime receives.
    fn to_json(&self) -> Value {
        let headers = &self.parts.headers;
        let raw_query = self.parts.uri.query().unwrap_or_default();
        // HTTP APIs hand the path to the integration percent-decoded (rawPath and http.path alike);
        // path parameters are decoded too. The query string stays raw in rawQueryString.
        let decoded_path = percent_decode_str(self.parts.uri.path())
            .decode_utf8_lossy()
            .into_owned();
        let now = chrono::Utc::now();
        let source_ip = self.remote_addr.ip().to_string();
        let domain_name = headers
            .get(HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse::<http::uri::Authority>().ok())
            .map(|authority| authority.host().to_owned())
            .unwrap_or_else(|| "localhost".to_owned());
        let domain_prefix = domain_name
            .split('.')
            .next()
            .unwrap_or(&domain_name)
            .to_owned();
        let user_agent = headers
            .get(USER_AGENT)
            .map(|ua| String::from_utf8_lossy(ua.as_bytes()).into_owned())
            .unwrap_or_default();

        let mut event = Map::new();
        event.insert("version".into(), json!("2.0"));
        event.insert("routeKey".into(), json!(self.route_key));
        event.insert("rawPath".into(), json!(decoded_path));
        event.insert("rawQueryString".into(), json!(raw_query));
        if let Some(cookies) = cookies(headers) {
            event.insert("cookies".into(), json!(cookies));
        }
        event.insert(
            "headers".into(),
            Value::Object(event_headers(headers, &source_ip, self.local_port)),
        );
        let query_parameters = query_string_parameters(raw_query);
        if !query_parameters.is_empty() {
            event.insert("queryStringParameters".into(), json!(query_parameters));
        }
        if !self.path_parameters.is_empty() {
            event.insert("pathParameters".into(), json!(self.path_parameters));
        }
        event.insert(
            "requestContext".into(),
            json!({
                "accountId": LOCAL_ACCOUNT_ID,
                "apiId": LOCAL_API_ID,
                "authorizer": {
                    "jwt": {
                        "claims": self.jwt.claims,
                        "scopes": self.jwt.scopes,
                    }
                },
                "domainName": domain_name,
                "domainPrefix": domain_prefix,
                "http": {
                    "method": self.parts.method.as_str(),
                    "path": decoded_path,
                    "protocol": protocol_name(self.parts.version),
                    "sourceIp": source_ip,
                    "userAgent": user_agent,
                },
                "requestId": self.request_id,
                "routeKey": self.route_key,
                "stage": "$default",
                "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
                "timeEpoch": now.timestamp_millis(),
            }),
        );
        if !self.body.is_empty() {
            let (body, is_base64_encoded) = event_body(headers, self.body);
            event.insert("body".into(), json!(body));
            event.insert("isBase64Encoded".into(), json!(is_base64_encoded));
        } else {
            event.insert("isBase64Encoded".into(), json!(false));
        }
        Value::Object(event)
    }
}

fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Headers as API Gateway passes them: lower-case names, repeated headers joined with `,`, the
/// `Cookie` header moved out to `cookies`, and the `X-Forwarded-*` headers set by the gateway.
fn event_headers(headers: &HeaderMap, source_ip: &str, local_port: u16) -> Map<String, Value> {
    let mut joined = Map::new();
    for name in headers.keys() {
        if name == COOKIE {
            continue;
        }
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        joined.insert(name.as_str().to_owned(), json!(values.join(",")));
    }
    // API Gateway appends the caller's address to any X-Forwarded-For it received.
    let forwarded_for = match joined.get("x-forwarded-for").and_then(Value::as_str) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {source_ip}"),
        _ => source_ip.to_owned(),
    };
    joined.insert("x-forwarded-for".into(), json!(forwarded_for));
    joined.insert("x-forwarded-port".into(), json!(local_port.to_string()));
    // Overwritten, not passed through: lambda_http builds the handler's URI from this scheme.
    joined.insert("x-forwarded-proto".into(), json!("http"));
    joined
}

fn cookies(headers: &HeaderMap) -> Option<Vec<String>> {
    let cookies: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(';')
                .map(|cookie| cookie.trim().to_owned())
                .filter(|cookie| !cookie.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    (!cookies.is_empty()).then_some(cookies)
}

/// `queryStringParameters`: form-decoded names and values, repeated names joined with `,`.
fn query_string_parameters(raw_query: &str) -> HashMap<String, String> {
    let decode = |text: &str| {
        percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut parameters: HashMap<String, String> = HashMap::new();
    for pair in raw_query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode(name), decode(value));
        parameters
            .entry(name)
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    parameters
}

/// Text content types go to the function as text, everything else (and text that is not UTF-8) as
/// base64 with `isBase64Encoded`.
fn event_body(headers: &HeaderMap, body: &Bytes) -> (String, bool) {
    let is_text_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_text_content_type);
    match std::str::from_utf8(body) {
        Ok(text) if is_text_type => (text.to_owned(), false),
        _ => (BASE64.encode(body), true),
    }
}

fn is_text_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json" | "application/xml" | "application/javascript" | "application/yaml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded_and_repeated_names_joined() {
        let parameters = query_string_parameters("a=1&b=x%20y&a=2&c=p+q&flag&=v");
        assert_eq!(parameters["a"], "1,2");
        assert_eq!(parameters["b"], "x y");
        assert_eq!(parameters["c"], "p q");
        assert_eq!(parameters["flag"], "");
        assert_eq!(parameters[""], "v");
        assert!(query_string_parameters("").is_empty());
    }

    #[test]
    fn headers_are_joined_and_cookies_moved_out() {
        let mut headers = HeaderMap::new();
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.append(COOKIE, HeaderValue::from_static("s=1; t=2"));
        headers.append("x-forwarded-proto", HeaderValue::from_static("gopher"));
        let joined = event_headers(&headers, "10.0.0.1", 3000);
        assert_eq!(joined["x-multi"], "a,b");
        assert!(!joined.contains_key("cookie"));
        assert_eq!(joined["x-forwarded-for"], "10.0.0.1");
        assert_eq!(joined["x-forwarded-proto"], "http");
        assert_eq!(
            cookies(&headers),
            Some(vec!["s=1".to_owned(), "t=2".to_owned()])
        );
    }

    #[test]
    fn only_text_content_types_are_passed_as_text() {
        assert!(is_text_content_type("application/json; charset=utf-8"));
        assert!(is_text_content_type("text/plain"));
        assert!(is_text_content_type("application/problem+json"));
        assert!(!is_text_content_type("application/octet-stream"));
        assert!(!is_text_content_type("image/png"));
        // Forms carry files: base64, as API Gateway passes them (POST /v1/files).
        assert!(!is_text_content_type("multipart/form-data; boundary=x"));

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            event_body(&headers, &Bytes::from_static(b"hi")),
            ("hi".to_owned(), false)
        );
        assert_eq!(
            event_body(&headers, &Bytes::from_static(&[0xff, 0xfe])),
            ("//4=".to_owned(), true)
        );
        // No content type at all: base64, like any non-text type.
        assert!(event_body(&HeaderMap::new(), &Bytes::from_static(b"hi")).1);
    }
}
