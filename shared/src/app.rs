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
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https_client())
            .load()
            .await;
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
            objects: ObjectStorage::new(s3, config.bucket_name.clone())
                .with_copy_sizes(config.single_copy_max_bytes, config.copy_part_bytes)
                .with_copy_parts_in_flight(config.copy_parts_in_flight),
            config,
        }
    }
}

/// The SDK's HTTPS client: hyper with rustls on ring, trusting the system's root certificates.
///
/// The SDK's own default (`default-https-client`) is rustls on aws-lc, which adds 2.4 MB to every
/// function (among it AES-GCM for AVX-512, ML-DSA, P-521); ring takes about a tenth of that
/// (BENCHMARKS.md, "Artifact sizes"). What ring lacks is the post-quantum hybrid key exchange
/// (X25519MLKEM768) and a FIPS mode; the requests here are small JSON, so its AES-GCM speed does
/// not matter. The cipher suites are the SDK's default list.
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Whether a lookup may return a file that is in the trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trashed {
    Exclude,
    Include,
}

impl App {
    /// The principal's tenant's file `file_id`; 404 for a missing file, a file of another tenant
    /// (the key is tenant-scoped, so it is simply not found), a file in a parent a limited token
    /// does not name (`Principal::may_see`: the same 404) and, unless included, a trashed one.
    pub async fn file_of(
        &self,
        principal: &crate::principal::Principal,
        file_id: &str,
        trashed: Trashed,
    ) -> Result<crate::domain::FileRecord, crate::ApiError> {
        self.files
            .get_file(&principal.tenant_id, file_id)
            .await?
            .filter(|f| principal.may_see(f))
            .filter(|f| trashed == Trashed::Include || f.trashed_at.is_none())
            .ok_or(crate::ApiError::NotFound("file"))
    }

    /// The principal's tenant's upload session `upload_id`; 404 when there is none and, for a
    /// token limited to some parents, when its file is not one the token may see (or is gone:
    /// then nothing says its parent). Only limited tokens pay the extra read of the file.
    pub async fn upload_of(
        &self,
        principal: &crate::principal::Principal,
        upload_id: &str,
    ) -> Result<crate::domain::UploadSession, crate::ApiError> {
        let not_found = || crate::ApiError::NotFound("upload");
        let session = self
            .files
            .get_upload(&principal.tenant_id, upload_id)
            .await?
            .ok_or_else(not_found)?;
        if principal.parents.is_some() {
            self.files
                .get_file(&principal.tenant_id, &session.file_id)
                .await?
                .filter(|f| principal.may_see(f))
                .ok_or_else(not_found)?;
        }
        Ok(session)
    }
}
