//! A local S3 endpoint that behaves like the parts of Amazon S3 the Files API relies on.
//!
//! Why this exists: the API hands browsers presigned S3 URLs and reacts to `ObjectCreated` events, so a
//! local stack is only useful if its S3 really verifies SigV4 signatures (headers and presigned query
//! strings, including expiry), answers CORS preflights the way a bucket CORS rule does, and emits the
//! same S3 event documents a bucket notification would. No Docker or AWS account is available, and the
//! Python emulators do not verify presigned signatures, so the endpoint is built in-process on
//! [`s3s`] (protocol, SigV4) and [`s3s_fs`] (objects stored as plain files under a data folder).
//!
//! Layers, outermost first:
//! - a hyper service ([`Front`]) that answers CORS preflights itself (s3s replies 501 to `OPTIONS`),
//!   adds CORS and request-id headers, and hands created-object events to the listener once the
//!   response has been sent;
//! - the s3s service with [`SimpleAuth`], which refuses anonymous and badly signed requests;
//! - [`EventingStore`], an [`S3`] implementation that delegates to [`FileSystem`] and records an
//!   `ObjectCreated:*` event after each successful write.
//!
//! Requests must use path-style addressing (`http://127.0.0.1:PORT/bucket/key`).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::s3::S3Event;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::auth::{Credentials, SimpleAuth};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;

use crate::s3_lifecycle::{TagSet as Tags, TagStore, parse_tagging_header};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, info, warn};

/// How long [`S3Endpoint::shutdown`] waits for open connections and pending event deliveries.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Name of the (imaginary) bucket notification configuration, reported as `s3.configurationId`.
const CONFIGURATION_ID: &str = "local-object-created";

/// Canonical-user-like id reported as the bucket owner (`s3.bucket.ownerIdentity.principalId`).
const BUCKET_OWNER_ID: &str = "A1LOCALSTACKOWNER";

/// ETag of an empty object: what S3 reports for a zero-byte "folder/" object.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

const CORS_ALLOW_METHODS: &str = "GET, PUT, HEAD, POST, DELETE";
const CORS_EXPOSE_HEADERS: &str = "ETag, x-amz-version-id";

/// Writes to one key are serialised through one of these locks (chosen by the key's hash), so
/// that a conditional write's check and its write are one step, as in S3: of two concurrent
/// `If-None-Match: *` writes of a key exactly one succeeds.
const KEY_LOCK_STRIPES: usize = 64;
const CORS_MAX_AGE: &str = "3600";

/// Settings of a local S3 endpoint.
#[derive(Clone)]
pub struct S3EndpointConfig {
    /// Address to listen on; port 0 picks a free port (see [`S3Endpoint::local_addr`]).
    pub addr: SocketAddr,
    /// Data folder: one sub-folder per bucket, one file per object. Created if missing.
    pub root: PathBuf,
    /// The only access key accepted.
    pub access_key: String,
    pub secret_key: String,
    /// Reported as `awsRegion` in events and as the buckets' location.
    pub region: String,
    /// Buckets created at start if missing.
    pub buckets: Vec<String>,
}

impl fmt::Debug for S3EndpointConfig {
    // The secret stays out of logs even though it is only a local test credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3EndpointConfig")
            .field("addr", &self.addr)
            .field("root", &self.root)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .field("buckets", &self.buckets)
            .finish()
    }
}

/// Receives the events a bucket notification would send for created objects.
#[async_trait::async_trait]
pub trait ObjectCreatedListener: Send + Sync + 'static {
    /// Called once per created object, after the write succeeded and the S3 response was sent.
    async fn object_created(&self, event: aws_lambda_events::s3::S3Event);
}

/// A running local S3 endpoint. Dropping it aborts the server; prefer [`S3Endpoint::shutdown`].
pub struct S3Endpoint {
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    deliveries: Arc<InFlight>,
    puts: Arc<AtomicUsize>,
    /// The data folder (canonical), where s3s-fs keeps multipart uploads and their parts.
    root: PathBuf,
}

impl fmt::Debug for S3Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Endpoint")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl S3Endpoint {
    /// Creates the data folder and buckets, binds the address and starts serving.
    pub async fn start(
        config: S3EndpointConfig,
        listener: Arc<dyn ObjectCreatedListener>,
    ) -> io::Result<S3Endpoint> {
        tokio::fs::create_dir_all(&config.root).await?;
        // s3s-fs canonicalizes its root; object paths computed here must match its own.
        let root = tokio::fs::canonicalize(&config.root).await?;
        for bucket in &config.buckets {
            if !is_plain_bucket_name(bucket) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid bucket name {bucket:?}"),
                ));
            }
            // s3s-fs treats every folder directly under the root as a bucket.
            tokio::fs::create_dir_all(root.join(bucket)).await?;
        }

        let fs = FileSystem::new(&root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let store = EventingStore::new(fs, root.clone(), config.region.clone());
        let mut builder = S3ServiceBuilder::new(store);
        builder.set_auth(SimpleAuth::from_single(
            config.access_key.clone(),
            config.secret_key.clone(),
        ));
        let s3 = builder.build();

        let tcp = TcpListener::bind(config.addr).await?;
        let local_addr = tcp.local_addr()?;
        let deliveries = Arc::new(InFlight::default());
        let puts = Arc::new(AtomicUsize::new(0));
        let front = Arc::new(Front {
            s3,
            listener,
            deliveries: deliveries.clone(),
            puts: puts.clone(),
            runtime: tokio::runtime::Handle::current(),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(serve(tcp, front, shutdown_rx));
        info!(%local_addr, root = %root.display(), buckets = ?config.buckets, "local S3 endpoint listening");

        Ok(S3Endpoint {
            local_addr,
            shutdown_tx,
            server: Some(server),
            deliveries,
            puts,
            root,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many PUTs of content (objects and parts; not tagging, not copies) succeeded so far:
    /// lets a test see that a resumed upload does not send again what S3 already holds.
    pub fn successful_puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }

    /// The multipart uploads the endpoint still holds (neither completed nor aborted) and every part
    /// stored for any upload, by file name: what S3 would list with ListMultipartUploads and
    /// bill as part storage. Tests check that a failed multipart copy leaves none.
    pub async fn multipart_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let Ok(mut entries) = tokio::fs::read_dir(&self.root).await else {
            return found;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let upload = name.starts_with(".upload-")
                && name.ends_with(".json")
                && !name.ends_with(".tagging.json");
            if upload || name.starts_with(".upload_id-") {
                found.push(name);
            }
        }
        found.sort();
        found
    }

    /// Waits until no event delivery is in flight (each with its retries and on-failure
    /// destination): what tests need before they check what processing left behind.
    pub async fn deliveries_idle(&self) {
        self.deliveries.idle().await
    }

    /// Base URL for SDK clients (use path-style addressing), e.g. `http://127.0.0.1:4566`.
    pub fn endpoint_url(&self) -> String {
        // A wildcard bind address is not something a client can connect to.
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.local_addr.port()))
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits (up to a grace period)
    /// for the listener calls already started.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take()
            && let Err(err) = server.await
        {
            error!(%err, "S3 endpoint server task failed");
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, self.deliveries.idle())
            .await
            .is_err()
        {
            warn!("gave up waiting for S3 event deliveries");
        }
        info!(local_addr = %self.local_addr, "local S3 endpoint stopped");
    }
}

impl Drop for S3Endpoint {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Accept loop: one task per connection, graceful close on shutdown.
async fn serve(tcp: TcpListener, front: Arc<Front>, mut shutdown_rx: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Usually EMFILE or a reset before accept: keep serving the others.
                        warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = ConnService { front: front.clone(), peer };
                let mut shutdown_rx = shutdown_rx.clone();
                connections.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    let mut conn = std::pin::pin!(conn);
                    let result = tokio::select! {
                        result = conn.as_mut() => result,
                        () = stop_requested(&mut shutdown_rx) => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(err) = result {
                        debug!(%peer, %err, "S3 connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stop_requested(&mut shutdown_rx) => break,
        }
    }
    drop(tcp);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!(
            open = connections.len(),
            "aborting S3 connections still open after the grace period"
        );
    }
}

/// Resolves once shutdown was requested, or when the endpoint was dropped without one.
async fn stop_requested(shutdown_rx: &mut watch::Receiver<bool>) {
    // The borrowed value (not Send) is dropped here, before any caller's await point.
    let _ = shutdown_rx.wait_for(|stop| *stop).await;
}

/// Per-request facts the S3 layer cannot see by itself, passed down in the request extensions.
#[derive(Clone, Debug)]
struct RequestMeta {
    request_id: String,
    host_id: String,
    source_ip: IpAddr,
}

impl RequestMeta {
    fn new(source_ip: IpAddr) -> Self {
        let id = uuid::Uuid::now_v7();
        // S3 request ids are 16 upper-case hex digits; take the random tail of a v7 UUID.
        let hex = id.simple().to_string().to_ascii_uppercase();
        let request_id = hex[hex.len() - 16..].to_owned();
        let host_id = base64::engine::general_purpose::STANDARD.encode(id.as_bytes());
        Self {
            request_id,
            host_id,
            source_ip: source_ip.to_canonical(),
        }
    }
}

/// An event recorded by [`EventingStore`], carried to [`Front`] in the response extensions.
#[derive(Clone)]
struct PendingEvent(S3Event);

/// Counts listener calls in progress so that shutdown can wait for them.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    changed: Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    async fn idle(&self) {
        loop {
            let notified = self.changed.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Shared by all connections: the s3s service plus what event delivery needs.
struct Front {
    s3: S3Service,
    listener: Arc<dyn ObjectCreatedListener>,
    deliveries: Arc<InFlight>,
    puts: Arc<AtomicUsize>,
    // Event delivery is started from a body's Drop, which may run outside a runtime context.
    runtime: tokio::runtime::Handle,
}

impl Front {
    fn deliver(&self, event: S3Event) {
        let guard = self.deliveries.enter();
        let listener = self.listener.clone();
        self.runtime.spawn(async move {
            let _guard = guard;
            listener.object_created(event).await;
        });
    }
}

/// The hyper service of one connection.
#[derive(Clone)]
struct ConnService {
    front: Arc<Front>,
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<EventBody>;
    type Error = s3s::HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let meta = RequestMeta::new(self.peer.ip());
        let origin = req.headers().get(header::ORIGIN).cloned();

        if req.method() == Method::OPTIONS {
            let resp = preflight_response(req.headers(), origin, &meta);
            return Box::pin(std::future::ready(Ok(resp)));
        }

        req.extensions_mut().insert(meta.clone());
        let front = self.front.clone();
        // PUTs of content only: not PutObjectTagging (`?tagging`), which marks objects live, nor
        // copies (`x-amz-copy-source`), which send no bytes.
        let is_put = req.method() == Method::PUT
            && !req.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p == "tagging" || p.starts_with("tagging="))
            })
            && !req.headers().contains_key("x-amz-copy-source");
        Box::pin(async move {
            let resp = front.s3.call(req.map(s3s::Body::from)).await?;
            if is_put && resp.status().is_success() {
                front.puts.fetch_add(1, Ordering::SeqCst);
            }
            let (mut parts, body) = resp.into_parts();
            let pending = parts.extensions.remove::<PendingEvent>();
            add_request_id_headers(&mut parts.headers, &meta);
            if let Some(origin) = origin {
                add_cors_headers(&mut parts.headers, origin);
            }
            let body = EventBody {
                inner: body,
                pending: pending.map(|PendingEvent(event)| (event, front)),
            };
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// Answers a CORS preflight as a bucket rule allowing any origin, any header and the usual methods would.
fn preflight_response(
    request_headers: &HeaderMap,
    origin: Option<HeaderValue>,
    meta: &RequestMeta,
) -> Response<EventBody> {
    let mut resp = Response::new(EventBody::empty());
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        origin.unwrap_or_else(|| HeaderValue::from_static("*")),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(CORS_ALLOW_METHODS),
    );
    if let Some(requested) = request_headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(CORS_MAX_AGE),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    add_request_id_headers(headers, meta);
    resp
}

fn add_cors_headers(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn add_request_id_headers(headers: &mut HeaderMap, meta: &RequestMeta) {
    // The same ids appear in the event's responseElements, as on AWS.
    if let Ok(v) = HeaderValue::from_str(&meta.request_id) {
        headers.insert(HeaderName::from_static("x-amz-request-id"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.host_id) {
        headers.insert(HeaderName::from_static("x-amz-id-2"), v);
    }
}

/// The s3s response body, plus the event to deliver once hyper is done with the response.
///
/// Hyper drops the body after writing it (or when the connection dies, in which case the object was
/// still written), so delivering from `Drop` means "after the response was sent" without delaying it.
struct EventBody {
    inner: s3s::Body,
    pending: Option<(S3Event, Arc<Front>)>,
}

impl EventBody {
    fn empty() -> Self {
        Self {
            inner: s3s::Body::empty(),
            pending: None,
        }
    }
}

impl HttpBody for EventBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for EventBody {
    fn drop(&mut self) {
        if let Some((event, front)) = self.pending.take() {
            front.deliver(event);
        }
    }
}

/// Issues S3 event sequencers: upper-case hex of equal length, increasing for each event, so that a
/// plain string comparison orders them (S3's rule for comparing sequencers of the same key).
///
/// Seeded from the clock so that values also keep increasing across restarts on the same data folder.
#[derive(Default)]
struct Sequencer {
    last: AtomicU64,
}

impl Sequencer {
    fn next(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut prev = self.last.load(Ordering::SeqCst);
        loop {
            let next = now.max(prev + 1);
            match self
                .last
                .compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return format!("{next:018X}"),
                Err(actual) => prev = actual,
            }
        }
    }
}

/// Object keys appear in S3 events form-encoded: space as `+`, every byte outside `A-Z a-z 0-9 - _ . *`
/// percent-encoded (UTF-8, upper-case hex), except that `/` is kept.
fn encode_event_key(key: &str) -> String {
    const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'*')
        .remove(b'/');
    key.split(' ')
        .map(|part| utf8_percent_encode(part, ENCODED).to_string())
        .collect::<Vec<_>>()
        .join("+")
}

/// Bucket names used to build file paths directly: no separators, no dot-only names.
fn is_plain_bucket_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != ".."
}

/// What the event needs to know about the request that created the object.
struct EventOrigin {
    meta: Option<RequestMeta>,
    principal: Option<String>,
}

impl EventOrigin {
    fn of<T>(req: &S3Request<T>) -> Self {
        Self {
            meta: req.extensions.get::<RequestMeta>().cloned(),
            principal: req
                .credentials
                .as_ref()
                .map(|c: &Credentials| format!("AWS:{}", c.access_key)),
        }
    }
}

/// Undoes a failed PutObject: s3s-fs moves the new file over the object *before* it checks
/// Content-MD5 and x-amz-checksum-*, so a rejected upload would otherwise replace (or create) the object.
struct PutRollback {
    target: PathBuf,
    /// A hard link to the previous object, if there was one.
    backup: Option<PathBuf>,
}

impl PutRollback {
    async fn prepare(root: &Path, target: PathBuf) -> Option<Self> {
        match tokio::fs::symlink_metadata(&target).await {
            Ok(meta) if meta.is_file() => {
                // Named like s3s-fs temporaries so that a crash leaves nothing it will not clean up.
                let backup = root.join(format!(
                    ".tmp.rollback-{}.internal.part",
                    uuid::Uuid::now_v7().simple()
                ));
                match tokio::fs::hard_link(&target, &backup).await {
                    Ok(()) => Some(Self {
                        target,
                        backup: Some(backup),
                    }),
                    Err(err) => {
                        warn!(%err, path = %target.display(), "cannot keep the previous object for rollback");
                        None
                    }
                }
            }
            Ok(_) => None,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Some(Self {
                target,
                backup: None,
            }),
            Err(_) => None,
        }
    }

    async fn restore(self) {
        match &self.backup {
            Some(backup) => {
                if let Err(err) = tokio::fs::rename(backup, &self.target).await {
                    error!(%err, path = %self.target.display(), "cannot restore the previous object");
                }
                // rename() between two links of the same file does nothing: drop the link explicitly.
                let _ = tokio::fs::remove_file(backup).await;
            }
            None => match tokio::fs::remove_file(&self.target).await {
                Ok(()) => {
                    debug!(path = %self.target.display(), "removed the object of a rejected upload")
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    error!(%err, path = %self.target.display(), "cannot remove a rejected upload")
                }
            },
        }
    }

    async fn discard(self) {
        if let Some(backup) = &self.backup {
            let _ = tokio::fs::remove_file(backup).await;
        }
    }
}

/// [`FileSystem`] plus event recording. Methods are written out by hand: generating them with
/// `macro_rules!` fails (E0195) because `#[async_trait]` cannot see inside the macro.
struct EventingStore {
    fs: FileSystem,
    root: PathBuf,
    region: String,
    sequencer: Sequencer,
    tags: TagStore,
    key_locks: Vec<tokio::sync::Mutex<()>>,
}

impl EventingStore {
    fn new(fs: FileSystem, root: PathBuf, region: String) -> Self {
        EventingStore {
            fs,
            tags: TagStore::new(&root),
            root,
            region,
            sequencer: Sequencer::default(),
            key_locks: (0..KEY_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    async fn lock_key(&self, bucket: &str, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (bucket, key).hash(&mut hasher);
        self.key_locks[hasher.finish() as usize % KEY_LOCK_STRIPES]
            .lock()
            .await
    }

    /// Where s3s-fs keeps an object, for keys whose path cannot escape the bucket folder.
    fn object_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        if !is_plain_bucket_name(bucket) {
            return None;
        }
        let key_path = Path::new(key);
        if !key_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return None;
        }
        Some(self.root.join(bucket).join(key_path))
    }

    async fn object_size(&self, bucket: &str, key: &str) -> u64 {
        if key.ends_with('/') {
            return 0;
        }
        let Some(path) = self.object_path(bucket, key) else {
            warn!(
                bucket,
                key, "cannot locate the object to report its size; reporting 0"
            );
            return 0;
        };
        match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(err) => {
                warn!(%err, bucket, key, "cannot read the object size; reporting 0");
                0
            }
        }
    }

    /// Builds the event exactly as S3 sends it, and checks that it parses as an [`S3Event`].
    fn object_created_event(
        &self,
        origin: &EventOrigin,
        event_name: &str,
        bucket: &str,
        key: &str,
        size: u64,
        e_tag: &str,
    ) -> Option<S3Event> {
        let mut response_elements = serde_json::Map::new();
        let mut source_ip = "127.0.0.1".to_owned();
        if let Some(meta) = &origin.meta {
            response_elements.insert("x-amz-request-id".into(), meta.request_id.clone().into());
            response_elements.insert("x-amz-id-2".into(), meta.host_id.clone().into());
            source_ip = meta.source_ip.to_string();
        }
        let value = serde_json::json!({
            "Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": self.region,
                "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "eventName": event_name,
                "userIdentity": { "principalId": origin.principal.as_deref().unwrap_or("Anonymous") },
                "requestParameters": { "sourceIPAddress": source_ip },
                "responseElements": response_elements,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": CONFIGURATION_ID,
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": { "principalId": BUCKET_OWNER_ID },
                        "arn": format!("arn:aws:s3:::{bucket}"),
                    },
                    "object": {
                        "key": encode_event_key(key),
                        "size": size,
                        "eTag": e_tag,
                        "sequencer": self.sequencer.next(),
                    },
                },
            }],
        });
        match serde_json::from_value::<S3Event>(value) {
            Ok(event) => {
                debug!(event_name, bucket, key, size, "object created");
                Some(event)
            }
            Err(err) => {
                error!(%err, "built an S3 event that does not parse; not delivering it");
                None
            }
        }
    }

    fn attach<T>(resp: &mut S3Response<T>, event: Option<S3Event>) {
        if let Some(event) = event {
            resp.extensions.insert(PendingEvent(event));
        }
    }
}

/// The tags of an `x-amz-tagging` header; S3 answers 400 InvalidTag to one it cannot parse.
fn tags_of_header(header: Option<&str>) -> S3Result<Tags> {
    match header {
        None => Ok(Tags::new()),
        Some(value) => parse_tagging_header(value)
            .ok_or_else(|| s3s::s3_error!(InvalidTag, "the x-amz-tagging header is not valid")),
    }
}

fn io_error(e: io::Error) -> s3s::S3Error {
    s3s::s3_error!(e, InternalError)
}

/// `If-None-Match: *` on CopyObject (s3s 0.14 does not parse the header for this operation).
fn wants_new_key<T>(req: &S3Request<T>) -> bool {
    req.headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == b"*")
}

impl EventingStore {
    /// S3 refuses a part list whose ETags are not those of the uploaded parts (`InvalidPart`);
    /// s3s-fs does not check them, so clients that send wrong ETags would pass here and fail on AWS.
    async fn check_part_etags(&self, input: &CompleteMultipartUploadInput) -> S3Result<()> {
        use s3s::crypto::{Checksum, Md5};
        let parts = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for part in parts {
            let (Some(number), Some(given)) = (part.part_number, part.e_tag.as_ref()) else {
                return Err(s3s::s3_error!(
                    InvalidPart,
                    "every part needs a number and an ETag"
                ));
            };
            // s3s-fs keeps parts as `<root>/.upload_id-<id>.part-<n>`.
            let path = self
                .root
                .join(format!(".upload_id-{}.part-{number}", input.upload_id));
            let Ok(mut file) = tokio::fs::File::open(&path).await else {
                return Err(s3s::s3_error!(
                    InvalidPart,
                    "part {number} was not uploaded"
                ));
            };
            let mut md5 = Md5::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                use tokio::io::AsyncReadExt;
                let read = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| s3s::s3_error!(e, InternalError))?;
                if read == 0 {
                    break;
                }
                md5.update(&buf[..read]);
            }
            let actual: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
            if given.value() != actual {
                return Err(s3s::s3_error!(
                    InvalidPart,
                    "part {number} has another ETag"
                ));
            }
        }
        Ok(())
    }
}

/// S3's part numbers are 1 to 10,000.
const MAX_PART_NUMBER: i32 = 10_000;
/// Every part but the last must be at least 5 MiB (S3: `EntityTooSmall` at completion).
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// `bytes=first-last` of `x-amz-copy-source-range` (both offsets required, as S3 requires them).
fn parse_copy_source_range(value: &str) -> Option<(u64, u64)> {
    let (first, last) = value.strip_prefix("bytes=")?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(last) {
        return None;
    }
    Some((first.parse().ok()?, last.parse().ok()?))
}

impl EventingStore {
    /// Whether s3s-fs still holds the multipart upload (not completed, not aborted).
    async fn upload_exists(&self, upload_id: &str) -> bool {
        // s3s-fs names upload ids as UUIDs; anything else cannot be one of its uploads.
        uuid::Uuid::parse_str(upload_id).is_ok()
            && tokio::fs::try_exists(self.root.join(format!(".upload-{upload_id}.json")))
                .await
                .unwrap_or(false)
    }

    /// S3 checks the part list at completion, before it changes anything: part numbers in
    /// ascending order (`InvalidPartOrder`), every part but the last at least 5 MiB
    /// (`EntityTooSmall`); the upload stays as it was, to be completed with a right list or
    /// aborted. s3s-fs checks sizes only while it assembles the object, after it has already
    /// dropped the upload and some of its parts, and wants consecutive numbers from 1.
    async fn check_part_sizes(&self, input: &CompleteMultipartUploadInput) -> S3Result<()> {
        let parts = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let numbers: Vec<i32> = parts.iter().filter_map(|p| p.part_number).collect();
        if numbers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(s3s::s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order"
            ));
        }
        let Some((_, all_but_last)) = numbers.split_last() else {
            return Ok(());
        };
        for number in all_but_last {
            let path = self
                .root
                .join(format!(".upload_id-{}.part-{number}", input.upload_id));
            let size = tokio::fs::metadata(&path)
                .await
                .map(|m| m.len())
                .map_err(io_error)?;
            if size < MIN_PART_BYTES {
                return Err(s3s::s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size"
                ));
            }
        }
        if numbers.first() != Some(&1) || numbers.windows(2).any(|w| w[1] != w[0] + 1) {
            // S3 takes gaps (1, 3, 7); s3s-fs does not. Nothing here sends them: say so plainly.
            return Err(s3s::s3_error!(
                NotImplemented,
                "the local S3 endpoint completes only consecutive part numbers from 1"
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3 for EventingStore {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let mut resp = self.fs.get_bucket_location(req).await?;
        // S3 reports us-east-1 as an empty location constraint; s3s-fs always does.
        if self.region != "us-east-1" {
            resp.output.location_constraint =
                Some(BucketLocationConstraint::from(self.region.clone()));
        }
        Ok(resp)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    // Response overrides (response-content-disposition, response-content-type, response-cache-control, ...)
    // are applied by s3s itself from GetObjectInput, and ranges by s3s-fs: nothing to add here.
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    /// Also serves browser POST uploads: s3s's default `post_object` calls this with method POST.
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let origin = EventOrigin::of(&req);
        let event_name = if req.method == Method::POST {
            "ObjectCreated:Post"
        } else {
            "ObjectCreated:Put"
        };
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let tags = tags_of_header(req.input.tagging.as_deref())?;
        let _write = self.lock_key(&bucket, &key).await;
        let rollback = match self.object_path(&bucket, &key) {
            Some(path) if !key.ends_with('/') => PutRollback::prepare(&self.root, path).await,
            _ => None,
        };

        let result = self.fs.put_object(req).await;
        let mut resp = match result {
            Ok(resp) => {
                if let Some(rollback) = rollback {
                    rollback.discard().await;
                }
                resp
            }
            Err(err) => {
                if let Some(rollback) = rollback {
                    rollback.restore().await;
                }
                return Err(err);
            }
        };

        // A new object has exactly the tags its PUT gave (none without x-amz-tagging).
        self.tags
            .set(&bucket, &key, &tags)
            .await
            .map_err(io_error)?;
        let e_tag = resp
            .output
            .e_tag
            .as_ref()
            .map_or_else(|| EMPTY_MD5.to_owned(), |t| t.value().to_owned());
        let size = self.object_size(&bucket, &key).await;
        let event = self.object_created_event(&origin, event_name, &bucket, &key, size, &e_tag);
        Self::attach(&mut resp, event);
        Ok(resp)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let _write = self.lock_key(&bucket, &key).await;
        let resp = self.fs.delete_object(req).await?;
        self.tags.remove(&bucket, &key).await.map_err(io_error)?;
        Ok(resp)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let keys: Vec<String> = req
            .input
            .delete
            .objects
            .iter()
            .map(|o| o.key.clone())
            .collect();
        let resp = self.fs.delete_objects(req).await?;
        for key in keys {
            self.tags.remove(&bucket, &key).await.map_err(io_error)?;
        }
        Ok(resp)
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = &req.input;
        let _write = self.lock_key(&input.bucket, &input.key).await;
        if !self
            .object_path(&input.bucket, &input.key)
            .is_some_and(|p| p.is_file())
        {
            return Err(s3s::s3_error!(NoSuchKey));
        }
        let mut tags = Tags::new();
        for tag in &input.tagging.tag_set {
            let (Some(key), Some(value)) = (&tag.key, &tag.value) else {
                return Err(s3s::s3_error!(InvalidTag, "a tag needs a key and a value"));
            };
            if tags.insert(key.clone(), value.clone()).is_some() {
                return Err(s3s::s3_error!(InvalidTag, "tag keys must be unique"));
            }
        }
        if tags.len() > 10 {
            return Err(s3s::s3_error!(InvalidTag, "at most 10 tags per object"));
        }
        self.tags
            .set(&input.bucket, &input.key, &tags)
            .await
            .map_err(io_error)?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = &req.input;
        if !self
            .object_path(&input.bucket, &input.key)
            .is_some_and(|p| p.is_file())
        {
            return Err(s3s::s3_error!(NoSuchKey));
        }
        let tags = self
            .tags
            .get(&input.bucket, &input.key)
            .await
            .map_err(io_error)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tags
                .into_iter()
                .map(|(key, value)| Tag {
                    key: Some(key),
                    value: Some(value),
                })
                .collect(),
            version_id: None,
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let origin = EventOrigin::of(&req);
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let replace_tags = req
            .input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        let tags = if replace_tags {
            tags_of_header(req.input.tagging.as_deref())?
        } else if let CopySource::Bucket {
            bucket: source_bucket,
            key: source_key,
            ..
        } = &req.input.copy_source
        {
            // COPY, the default: the copy has the source's tags.
            self.tags
                .get(source_bucket, source_key)
                .await
                .map_err(io_error)?
        } else {
            Tags::new()
        };
        let _write = self.lock_key(&bucket, &key).await;
        if wants_new_key(&req) && self.object_path(&bucket, &key).is_some_and(|p| p.exists()) {
            return Err(s3s::s3_error!(PreconditionFailed, "Object already exists"));
        }
        let mut resp = self.fs.copy_object(req).await?;
        self.tags
            .set(&bucket, &key, &tags)
            .await
            .map_err(io_error)?;

        let e_tag = resp
            .output
            .copy_object_result
            .as_ref()
            .and_then(|r| r.e_tag.as_ref())
            .map_or_else(String::new, |t| t.value().to_owned());
        let size = self.object_size(&bucket, &key).await;
        let event =
            self.object_created_event(&origin, "ObjectCreated:Copy", &bucket, &key, size, &e_tag);
        Self::attach(&mut resp, event);
        Ok(resp)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let tags = tags_of_header(req.input.tagging.as_deref())?;
        let resp = self.fs.create_multipart_upload(req).await?;
        if let Some(upload_id) = &resp.output.upload_id {
            self.tags
                .set_for_upload(upload_id, &tags)
                .await
                .map_err(io_error)?;
        }
        Ok(resp)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    /// UploadPartCopy as S3 answers it where s3s-fs does not: an unknown (completed, aborted)
    /// upload is `NoSuchUpload` (s3s-fs: AccessDenied); part numbers are 1 to 10,000; a range must
    /// be `bytes=first-last`, both zero-based and inclusive, within the source (s3s-fs also takes
    /// `bytes=first-`, which S3 refuses). A missing source is `NoSuchKey` (s3s-fs).
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = &req.input;
        if !self.upload_exists(&input.upload_id).await {
            return Err(s3s::s3_error!(NoSuchUpload));
        }
        if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
            return Err(s3s::s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        if let Some(range) = &input.copy_source_range {
            let Some((first, last)) = parse_copy_source_range(range) else {
                return Err(s3s::s3_error!(
                    InvalidArgument,
                    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
                ));
            };
            let size = match &input.copy_source {
                CopySource::Bucket { bucket, key, .. } => match self.object_path(bucket, key) {
                    Some(path) => match tokio::fs::metadata(&path).await {
                        Ok(meta) if meta.is_file() => Some(meta.len()),
                        _ => None,
                    },
                    None => None,
                },
                _ => None,
            };
            let Some(size) = size else {
                return Err(s3s::s3_error!(NoSuchKey));
            };
            if first > last || last >= size {
                return Err(s3s::s3_error!(
                    InvalidArgument,
                    "Range specified is not valid for source object of size: {size}"
                ));
            }
        }
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let upload_id = req.input.upload_id.clone();
        let marker: i32 = req.input.part_number_marker.unwrap_or(0);
        let max_parts = req.input.max_parts.filter(|m| *m > 0).unwrap_or(1000) as usize;
        // s3s-fs lists an unknown (aborted, completed) upload as empty; S3 answers NoSuchUpload.
        if !self.root.join(format!(".upload-{upload_id}.json")).exists() {
            return Err(s3s::s3_error!(NoSuchUpload));
        }
        let mut resp = self.fs.list_parts(req).await?;
        // s3s-fs lists parts unordered, unpaginated and without ETags; S3 answers them in order,
        // 1,000 per page at most, each with its ETag (the MD5 of the part, as check_part_etags reads it).
        let mut parts = resp.output.parts.take().unwrap_or_default();
        parts.retain(|p| p.part_number.is_some_and(|n| n > marker));
        parts.sort_by_key(|p| p.part_number);
        let truncated = parts.len() > max_parts;
        parts.truncate(max_parts);
        for part in &mut parts {
            let number = part.part_number.unwrap_or_default();
            let path = self
                .root
                .join(format!(".upload_id-{upload_id}.part-{number}"));
            if let Ok(bytes) = tokio::fs::read(&path).await {
                use s3s::crypto::{Checksum, Md5};
                let mut md5 = Md5::new();
                md5.update(&bytes);
                let hex: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
                part.e_tag = Some(s3s::dto::ETag::Strong(hex));
            }
        }
        resp.output.is_truncated = Some(truncated);
        resp.output.next_part_number_marker = match (truncated, parts.last()) {
            (true, Some(last)) => last.part_number,
            _ => None,
        };
        resp.output.max_parts = Some(max_parts as i32);
        resp.output.parts = Some(parts);
        Ok(resp)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let origin = EventOrigin::of(&req);
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let upload_id = req.input.upload_id.clone();
        // S3 answers NoSuchUpload for an upload id it does not know (completed, aborted by a client
        // or by the lifecycle rule); s3s-fs would answer AccessDenied, check_part_etags InvalidPart.
        let session = self.root.join(format!(".upload-{upload_id}.json"));
        if !tokio::fs::try_exists(&session).await.unwrap_or(false) {
            return Err(s3s::s3_error!(NoSuchUpload));
        }
        self.check_part_etags(&req.input).await?;
        self.check_part_sizes(&req.input).await?;
        let _write = self.lock_key(&bucket, &key).await;
        let mut resp = self.fs.complete_multipart_upload(req).await?;

        // s3s-fs returns its result as a keep-alive future (already written by now); resolve it to
        // learn the ETag and so that a failure is reported as an error instead of inside a 200.
        if let Some(future) = resp.output.future.take() {
            resp.output = future.await?;
        }
        // The object gets the tags its CreateMultipartUpload asked for.
        let tags = self
            .tags
            .take_for_upload(&upload_id)
            .await
            .map_err(io_error)?;
        self.tags
            .set(&bucket, &key, &tags)
            .await
            .map_err(io_error)?;
        let e_tag = resp
            .output
            .e_tag
            .as_ref()
            .map_or_else(String::new, |t| t.value().to_owned());
        let size = self.object_size(&bucket, &key).await;
        let event = self.object_created_event(
            &origin,
            "ObjectCreated:CompleteMultipartUpload",
            &bucket,
            &key,
            size,
            &e_tag,
        );
        Self::attach(&mut resp, event);
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let upload_id = req.input.upload_id.clone();
        // S3 answers NoSuchUpload for an upload it does not know (s3s-fs: AccessDenied).
        if !self.upload_exists(&upload_id).await {
            return Err(s3s::s3_error!(NoSuchUpload));
        }
        let resp = self.fs.abort_multipart_upload(req).await?;
        self.tags
            .take_for_upload(&upload_id)
            .await
            .map_err(io_error)?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_form_encoded_with_slashes_kept() {
        assert_eq!(
            encode_event_key("uploads/red flower.jpg"),
            "uploads/red+flower.jpg"
        );
        assert_eq!(
            encode_event_key("été 2024/a+b=c.txt"),
            "%C3%A9t%C3%A9+2024/a%2Bb%3Dc.txt"
        );
        assert_eq!(encode_event_key("a-b_c.d*e~f"), "a-b_c.d*e%7Ef");
        assert_eq!(encode_event_key("100%"), "100%25");
    }

    #[test]
    fn sequencers_increase_as_equal_length_strings() {
        let seq = Sequencer::default();
        let values: Vec<String> = (0..1000).map(|_| seq.next()).collect();
        for pair in values.windows(2) {
            assert_eq!(pair[0].len(), pair[1].len());
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        assert!(
            values[0]
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
    }

    #[test]
    fn built_event_has_the_s3_shape() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventingStore::new(
            FileSystem::new(dir.path()).unwrap(),
            dir.path().to_owned(),
            "eu-west-3".into(),
        );
        let origin = EventOrigin {
            meta: Some(RequestMeta::new("::ffff:10.0.0.7".parse().unwrap())),
            principal: Some("AWS:AKIDLOCAL".into()),
        };
        let event = store
            .object_created_event(
                &origin,
                "ObjectCreated:Put",
                "files",
                "a b/ü.txt",
                12,
                "abc",
            )
            .unwrap();
        let json = serde_json::to_value(&event).unwrap();
        let record = &json["Records"][0];
        assert_eq!(record["eventVersion"], "2.1");
        assert_eq!(record["eventSource"], "aws:s3");
        assert_eq!(record["awsRegion"], "eu-west-3");
        assert_eq!(record["userIdentity"]["principalId"], "AWS:AKIDLOCAL");
        assert_eq!(record["requestParameters"]["sourceIPAddress"], "10.0.0.7");
        assert_eq!(
            record["responseElements"]["x-amz-request-id"]
                .as_str()
                .unwrap()
                .len(),
            16
        );
        assert_eq!(record["s3"]["s3SchemaVersion"], "1.0");
        assert_eq!(record["s3"]["bucket"]["arn"], "arn:aws:s3:::files");
        assert_eq!(record["s3"]["object"]["key"], "a+b/%C3%BC.txt");
        assert_eq!(record["s3"]["object"]["size"], 12);
        assert_eq!(record["s3"]["object"]["eTag"], "abc");
    }
}
