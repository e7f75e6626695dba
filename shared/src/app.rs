//! What a function builds once per cold start and reuses for every request.

use crate::config::Config;
use crate::storage::ObjectStorage;
use crate::store::FileStore;

/// The configuration and the AWS adapters, shared by all requests of one process.
#[derive(Debug, Clone)]
pub struct App {
    pub config: Config,
    pub files: FileStore,
    pub objects: ObjectStorage,
}

impl App {
    /// Reads the configuration and the SDK's standard settings (region, credentials, endpoints).
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(Self::new(config, &sdk))
    }

    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(config.s3_force_path_style)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(s3_config);
        Self::with_clients(config, dynamodb, s3)
    }

    /// For the local stack, whose S3 and DynamoDB endpoints differ.
    pub fn with_clients(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
    ) -> Self {
        App {
            files: FileStore::new(dynamodb, config.table_name.clone()),
            objects: ObjectStorage::new(s3, config.bucket_name.clone()),
            config,
        }
    }
}
