//! The whole API on one machine: DynamoDB Local, the S3 endpoint, the process-upload function wired
//! to its events, and the gateway in front of the route handlers.
//!
//! The handlers are the very functions the Lambda binaries run (`<crate>::handle`); only the
//! transport differs. S3 events reach `process_upload::handle` the way an asynchronous Lambda
//! invocation would: after the upload's response, retried on failure.

use crate::authorizer::{JwtAuthorizer, JwtAuthorizerConfig};
use crate::dynamodb::{
    DynamoDbLocal, DynamoDbLocalOptions, FILES_TABLE_LOGICAL_ID, LOCAL_ACCESS_KEY_ID, LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY, TableDefinition, create_table, local_client, template_path,
};
use crate::gateway::{
    Gateway, GatewayHandle, RouteHandler, StaticDir, StaticDocument, route_handler,
};
use crate::s3::{ObjectCreatedListener, S3Endpoint, S3EndpointConfig};
use crate::s3_lifecycle::LifecycleRule;
use crate::streams::{StreamHandler, StreamPoller};
use crate::template::SamTemplate;
use aws_lambda_events::s3::S3Event;
use lambda_http::{Body, Request, Response};
use shared::{App, Config};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where the stack's DynamoDB comes from.
#[derive(Debug, Clone)]
pub enum DynamoDbSource {
    /// Start DynamoDB Local as a child process.
    Start(DynamoDbLocalOptions),
    /// Use one that is already running (the test script starts one for all tests).
    Existing { endpoint_url: String },
}

/// Everything the stack needs to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub gateway_addr: SocketAddr,
    pub s3_addr: SocketAddr,
    pub dynamodb: DynamoDbSource,
    /// Folder of the S3 endpoint's objects.
    pub s3_root: PathBuf,
    pub jwt: JwtAuthorizerConfig,
    /// The functions' configuration (table, bucket, tenant claim, limits).
    pub config: Config,
    /// Delays between the retries of a failed S3-event invocation. AWS retries an asynchronous
    /// invocation twice, after about 1 and 2 minutes; locally the same count, shorter waits.
    pub event_retry_delays: Vec<Duration>,
    /// Template parameter values (as `sam deploy --parameter-overrides`), e.g. `CorsAllowedOrigin`;
    /// the others take their `Default`.
    pub template_parameters: HashMap<String, String>,
    /// Whether the template's DynamoDB stream event source mappings poll (on AWS a mapping can be
    /// disabled too); tests that inspect a half-finished state turn them off.
    pub stream_mappings_enabled: bool,
}

impl StackOptions {
    /// Options for a local run: fixed ports from `gateway_port`, `s3_port`, fresh names.
    pub fn local(
        gateway_port: u16,
        s3_port: u16,
        s3_root: PathBuf,
        dynamodb: DynamoDbSource,
    ) -> Self {
        StackOptions {
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], gateway_port)),
            s3_addr: SocketAddr::from(([127, 0, 0, 1], s3_port)),
            dynamodb,
            s3_root,
            jwt: JwtAuthorizerConfig::local_from_env(),
            config: local_config("files-local", "files-local"),
            event_retry_delays: vec![Duration::from_millis(200), Duration::from_secs(1)],
            template_parameters: HashMap::new(),
            stream_mappings_enabled: true,
        }
    }
}

/// The bucket's logical id in infra/template.yaml.
pub const FILES_BUCKET_LOGICAL_ID: &str = "FilesBucket";

/// `FILES_CURSOR_SECRET` of the local stack (a development value, public by design).
pub const LOCAL_CURSOR_SECRET: &str = "local-development-cursor-secret-not-for-production";

/// The functions' configuration for a local stack.
pub fn local_config(table_name: &str, bucket_name: &str) -> Config {
    let lookup = |name: &str| match name {
        "FILES_TABLE_NAME" => Some(table_name.to_string()),
        "FILES_BUCKET_NAME" => Some(bucket_name.to_string()),
        "FILES_S3_FORCE_PATH_STYLE" => Some("true".to_string()),
        // A fixed development key, so that cursors survive a restart of the local stack. Never
        // used on AWS, where the template generates one in Secrets Manager.
        "FILES_CURSOR_SECRET" => Some(
            std::env::var("FILES_CURSOR_SECRET")
                .unwrap_or_else(|_| LOCAL_CURSOR_SECRET.to_string()),
        ),
        other => std::env::var(other).ok(),
    };
    Config::from_lookup(lookup).expect("the local configuration is valid")
}

/// A running stack; dropping it stops everything.
pub struct LocalStack {
    pub app: Arc<App>,
    pub gateway: GatewayHandle,
    pub s3: S3Endpoint,
    pub dynamodb_endpoint: String,
    dynamodb: Option<DynamoDbLocal>,
    /// A client of the S3 endpoint for the stack's own checks (one, so connections are reused).
    s3_client: aws_sdk_s3::Client,
    /// The template's DynamoDB stream event source mappings, polling.
    _stream_pollers: Vec<StreamPoller>,
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> Result<LocalStack, BoxError> {
        let template = SamTemplate::load(&template_path())?;

        let (dynamodb, dynamodb_endpoint) = match &options.dynamodb {
            DynamoDbSource::Start(opts) => {
                let local = DynamoDbLocal::start(opts.clone()).await?;
                let endpoint = local.endpoint_url();
                (Some(local), endpoint)
            }
            DynamoDbSource::Existing { endpoint_url } => (None, endpoint_url.clone()),
        };
        let dynamodb_client = local_client(&dynamodb_endpoint).await;
        let table = TableDefinition::from_template_file(&template_path(), FILES_TABLE_LOGICAL_ID)?;
        create_table(&dynamodb_client, &options.config.table_name, &table).await?;

        // The S3 endpoint must be up before the App's S3 client can point at it, and the listener
        // needs the App: hand the App to the listener once both exist.
        let listener = Arc::new(ProcessUploadListener {
            app: tokio::sync::OnceCell::new(),
            retry_delays: options.event_retry_delays.clone(),
        });
        let s3 = S3Endpoint::start(
            S3EndpointConfig {
                addr: options.s3_addr,
                root: options.s3_root.clone(),
                access_key: LOCAL_ACCESS_KEY_ID.to_string(),
                secret_key: LOCAL_SECRET_ACCESS_KEY.to_string(),
                region: LOCAL_REGION.to_string(),
                buckets: vec![options.config.bucket_name.clone()],
            },
            listener.clone(),
        )
        .await?;
        let s3_client = local_s3_client(&s3.endpoint_url());
        let app = Arc::new(App::with_clients(
            options.config.clone(),
            dynamodb_client,
            s3_client,
        ));
        let _ = listener.app.set(app.clone());

        let authorizer = Arc::new(JwtAuthorizer::new(options.jwt.clone())?);
        let mut gateway = Gateway::new(template.http_routes(), route_handlers(&app), authorizer)?
            .with_static_document(openapi_document()?)
            .with_cors(template.http_api_cors(&options.template_parameters)?)
            .with_static_dir(StaticDir {
                url_prefix: "/".to_string(),
                dir: web_root(),
            });
        if let Some(dev_token) = dev_token_document(&options.jwt, &options.config.tenant_claim) {
            gateway = gateway.with_static_document(dev_token);
        }
        let gateway = gateway.serve(options.gateway_addr).await?;

        let mut stream_pollers = Vec::new();
        let mappings = template.stream_mappings()?;
        for mapping in mappings
            .into_iter()
            .filter(|_| options.stream_mappings_enabled)
        {
            if mapping.table != FILES_TABLE_LOGICAL_ID {
                return Err(format!("no local table for stream mapping {mapping:?}").into());
            }
            let handler = stream_handler(&app, &mapping.binary)?;
            stream_pollers.push(
                StreamPoller::start(
                    &dynamodb_endpoint,
                    &options.config.table_name,
                    mapping,
                    handler,
                    options
                        .event_retry_delays
                        .first()
                        .copied()
                        .unwrap_or(Duration::from_millis(200)),
                )
                .await?,
            );
        }

        let s3_client = local_s3_client(&s3.endpoint_url());
        Ok(LocalStack {
            app,
            gateway,
            s3,
            dynamodb_endpoint,
            dynamodb,
            s3_client,
            _stream_pollers: stream_pollers,
        })
    }

    /// Every object key in the bucket, for checks that deletes leave nothing behind.
    pub async fn list_objects(&self) -> Vec<String> {
        let client = &self.s3_client;
        let mut keys = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&self.app.config.bucket_name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_string)),
                ),
                Err(e) => panic!("listing the local bucket failed: {e}"),
            }
        }
        keys
    }

    pub fn base_url(&self) -> String {
        self.gateway.base_url()
    }

    /// Applies the bucket's lifecycle expiration rules (read from the template's `FilesBucket`) as
    /// S3 would have by `now`: every object they cover is deleted, through the S3 API. Returns the
    /// deleted keys. Tests pass a time days ahead to see what S3 would have removed by then;
    /// `files-local` runs it hourly with the real time.
    pub async fn apply_lifecycle(&self, now: std::time::SystemTime) -> Vec<String> {
        let template = SamTemplate::load(&template_path()).expect("the template loads");
        let rules = template
            .resource(FILES_BUCKET_LOGICAL_ID)
            .map(LifecycleRule::from_bucket_resource)
            .unwrap_or_default();
        let client = &self.s3_client;
        let bucket = &self.app.config.bucket_name;
        let mut objects = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.expect("listing the local bucket");
            for object in page.contents() {
                if let (Some(key), Some(modified)) = (object.key(), object.last_modified()) {
                    // Objects are never overwritten here, so LastModified is the creation time.
                    let created =
                        std::time::SystemTime::try_from(*modified).unwrap_or(std::time::UNIX_EPOCH);
                    objects.push((key.to_string(), created));
                }
            }
        }
        use futures::StreamExt;
        futures::stream::iter(objects)
            .map(|(key, created)| {
                let rules = &rules;
                async move {
                    let tags = self.object_tags(&key).await;
                    if !rules.iter().any(|r| r.expires(&key, &tags, created, now)) {
                        return None;
                    }
                    client
                        .delete_object()
                        .bucket(bucket)
                        .key(&key)
                        .send()
                        .await
                        .expect("deleting an expired object");
                    Some(key)
                }
            })
            .buffer_unordered(16)
            .filter_map(|deleted| async move { deleted })
            .collect()
            .await
    }

    /// The tags of an object (empty when it has none or does not exist).
    pub async fn object_tags(&self, key: &str) -> crate::s3_lifecycle::TagSet {
        match self
            .s3_client
            .get_object_tagging()
            .bucket(&self.app.config.bucket_name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            Err(_) => Default::default(),
        }
    }

    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.s3.shutdown().await;
        if let Some(dynamodb) = self.dynamodb {
            dynamodb.shutdown().await;
        }
    }
}

/// The browser page (`local/web/`, with Uppy from its `node_modules`), served at `/`.
pub fn web_root() -> PathBuf {
    crate::dynamodb::workspace_root().join("local/web")
}

/// `infra/openapi.yaml`, the API's contract, which the local gateway serves at `GET /openapi.yaml`.
pub fn openapi_path() -> PathBuf {
    template_path().with_file_name("openapi.yaml")
}

fn openapi_document() -> Result<StaticDocument, BoxError> {
    let path = openapi_path();
    let body = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(StaticDocument {
        path: "/openapi.yaml".to_string(),
        content_type: "application/yaml",
        body: body.into(),
    })
}

/// The tenant, subject and lifetime of the development token.
pub const DEV_TOKEN_TENANT: &str = "local";
pub const DEV_TOKEN_SUBJECT: &str = "dev";
const DEV_TOKEN_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// `GET /local/dev-token`: `{"token", "tenant", "subject", "expires_at"}`, a token for tenant
/// `local` with every scope, so that `files upload photo.jpg` works right after `scripts/run`.
///
/// Why the stack hands out a token rather than the CLI minting one: the signing secret stays in the
/// stack (a CLI that knew it would carry it to every machine it is installed on), and a stack
/// started with its own secret or with JWKS (an identity provider) just has no such document. It
/// is safe to serve without authorization because only this local gateway has it (the deployed
/// template has no such route, and the contract test checks the template's routes against the
/// OpenAPI document), it listens on 127.0.0.1, and the token only opens this stack, whose secret is
/// the development default. The CLI asks for it only when no token is configured and the API URL
/// is a loopback address. Minted at start: restarting the stack renews it.
fn dev_token_document(jwt: &JwtAuthorizerConfig, tenant_claim: &str) -> Option<StaticDocument> {
    let secret = jwt.hs256_secret.as_deref()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut claims = serde_json::json!({
        "iss": jwt.issuer,
        "aud": jwt.audiences.first().cloned().unwrap_or_default(),
        "sub": DEV_TOKEN_SUBJECT,
        "scope": "files:read files:write files:admin",
        "iat": now,
        "exp": now + DEV_TOKEN_TTL_SECONDS,
    });
    claims[tenant_claim] = serde_json::json!(DEV_TOKEN_TENANT);
    let body = serde_json::json!({
        "token": crate::authorizer::mint_hs256(secret, &claims),
        "tenant": DEV_TOKEN_TENANT,
        "subject": DEV_TOKEN_SUBJECT,
        "expires_at": now + DEV_TOKEN_TTL_SECONDS,
    });
    Some(StaticDocument {
        path: "/local/dev-token".to_string(),
        content_type: "application/json",
        body: body.to_string().into(),
    })
}

/// An S3 client for the local endpoint: path-style (addressed by IP), fixed local credentials.
pub fn local_s3_client(endpoint_url: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(LOCAL_REGION))
        .credentials_provider(crate::dynamodb::local_credentials())
        .endpoint_url(endpoint_url)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn handler<F, Fut>(app: &Arc<App>, handle: F) -> RouteHandler
where
    F: Fn(Arc<App>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let app = app.clone();
    route_handler(move |req| handle(app.clone(), req))
}

/// Every route function, by its binary name (as the template's `BuildProperties.Binary` names it).
pub fn route_handlers(app: &Arc<App>) -> HashMap<String, RouteHandler> {
    let routes: [(&str, RouteHandler); 17] = [
        ("create-upload", handler(app, create_upload::handle)),
        ("create-file", handler(app, create_file::handle)),
        ("complete-upload", handler(app, complete_upload::handle)),
        ("abort-upload", handler(app, abort_upload::handle)),
        ("get-upload", handler(app, get_upload::handle)),
        ("get-file", handler(app, get_file::handle)),
        ("list-files", handler(app, list_files::handle)),
        ("download-file", handler(app, download_file::handle)),
        ("get-thumbnail", handler(app, get_thumbnail::handle)),
        ("update-file", handler(app, update_file::handle)),
        ("trash-file", handler(app, trash_file::handle)),
        ("restore-file", handler(app, restore_file::handle)),
        ("delete-file", handler(app, delete_file::handle)),
        ("list-revisions", handler(app, list_revisions::handle)),
        ("get-revision", handler(app, get_revision::handle)),
        ("restore-revision", handler(app, restore_revision::handle)),
        ("delete-revision", handler(app, delete_revision::handle)),
    ];
    routes
        .into_iter()
        .map(|(binary, handler)| (binary.to_string(), handler))
        .collect()
}

/// The function a stream mapping of the template invokes, by binary name. Its budget is what
/// Lambda gives it: the template's 900 s timeout, less `shared::lambda::STREAM_SAFETY_MARGIN`.
fn stream_handler(app: &Arc<App>, binary: &str) -> Result<StreamHandler, BoxError> {
    match binary {
        "finish-deletes" => {
            let app = app.clone();
            Ok(Arc::new(move |event| {
                let app = app.clone();
                Box::pin(async move {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(900)
                        - shared::lambda::STREAM_SAFETY_MARGIN;
                    finish_deletes::handle(app, event, deadline).await
                })
            }))
        }
        other => Err(format!("no local handler for the stream function {other}").into()),
    }
}

/// Delivers S3 events to `process_upload::handle`, retrying failures as Lambda does for
/// asynchronous invocations; an event that fails every attempt goes, as an invocation record, to
/// the function's on-failure destination (`process_upload_failed::handle`, retried the same way;
/// on AWS its own failures go to the failures queue).
struct ProcessUploadListener {
    app: tokio::sync::OnceCell<Arc<App>>,
    retry_delays: Vec<Duration>,
}

impl ProcessUploadListener {
    async fn deliver_failure(&self, app: &Arc<App>, event: S3Event) {
        let attempts = self.retry_delays.len() as u32 + 1;
        let record = process_upload_failed::InvocationRecord {
            request_context: process_upload_failed::RequestContext {
                request_id: uuid::Uuid::new_v4().to_string(),
                condition: "RetriesExhausted".to_string(),
                approximate_invoke_count: attempts,
            },
            request_payload: event,
        };
        let mut delays = self.retry_delays.iter();
        loop {
            match process_upload_failed::handle(app.clone(), record.clone()).await {
                Ok(()) => return,
                Err(error) => match delays.next() {
                    Some(delay) => tokio::time::sleep(*delay).await,
                    None => {
                        tracing::error!(%error, "process-upload-failed failed on every attempt; record dropped (on AWS: the failures queue)");
                        return;
                    }
                },
            }
        }
    }
}

#[async_trait::async_trait]
impl ObjectCreatedListener for ProcessUploadListener {
    async fn object_created(&self, event: S3Event) {
        let Some(app) = self.app.get() else {
            tracing::warn!("S3 event before the stack was ready; dropped");
            return;
        };
        // The bucket notification in infra/template.yaml only fires for keys under `uploads/`
        // (thumbnails/ must never trigger the function); the local endpoint emits for every key.
        let under_uploads = event.records.iter().all(|r| {
            r.s3.object
                .key
                .as_deref()
                .is_some_and(|k| k.starts_with(shared::keys::UPLOAD_PREFIX))
        });
        if !under_uploads {
            return;
        }
        let mut delays = self.retry_delays.iter();
        loop {
            match process_upload::handle(app.clone(), event.clone()).await {
                Ok(()) => return,
                Err(error) => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(%error, ?delay, "process-upload failed; retrying");
                        tokio::time::sleep(*delay).await;
                    }
                    None => {
                        tracing::error!(%error, "process-upload failed on every attempt; invoking its on-failure destination");
                        self.deliver_failure(app, event).await;
                        return;
                    }
                },
            }
        }
    }
}
