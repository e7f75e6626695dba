//! What the S3 endpoint's test files share: an endpoint of their own on a free port in a temporary
//! folder, its S3 events on a channel, and aws-sdk-s3 clients for it.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::s3::S3Event;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use local_stack::s3::{ObjectCreatedListener, S3Endpoint, S3EndpointConfig};
use tokio::sync::mpsc;

pub const ACCESS_KEY: &str = "AKIDLOCALTEST";
pub const SECRET_KEY: &str = "local-test-secret-key";
pub const BUCKET: &str = "files";

struct Collector(mpsc::UnboundedSender<S3Event>);

#[async_trait::async_trait]
impl ObjectCreatedListener for Collector {
    async fn object_created(&self, event: S3Event) {
        let _ = self.0.send(event);
    }
}

/// A running endpoint with the bucket [`BUCKET`], the events it emits, a client signing with the
/// right secret, and the folder it stores in (deleted when dropped).
pub struct Endpoint {
    pub endpoint: S3Endpoint,
    pub events: mpsc::UnboundedReceiver<S3Event>,
    pub s3: aws_sdk_s3::Client,
    pub dir: tempfile::TempDir,
}

impl Endpoint {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let endpoint = S3Endpoint::start(
            S3EndpointConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                root: dir.path().join("s3-data"),
                access_key: ACCESS_KEY.into(),
                secret_key: SECRET_KEY.into(),
                region: "us-east-1".into(),
                buckets: vec![BUCKET.into()],
            },
            Arc::new(Collector(tx)),
        )
        .await
        .unwrap();
        assert_ne!(endpoint.local_addr().port(), 0);
        let s3 = client(&endpoint.endpoint_url(), SECRET_KEY);
        Endpoint {
            endpoint,
            events,
            s3,
            dir,
        }
    }
}

/// The next S3 event, within 10 s.
pub async fn next_event(events: &mut mpsc::UnboundedReceiver<S3Event>) -> S3Event {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no S3 event within 10 s")
        .expect("event channel closed")
}

/// A path-style client of the endpoint at `endpoint_url`, signing with `secret`.
pub fn client(endpoint_url: &str, secret: &str) -> aws_sdk_s3::Client {
    let credentials =
        aws_credential_types::Credentials::new(ACCESS_KEY, secret, None, None, "test");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(endpoint_url)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
