//! Runs the real DynamoDB Local (installed by `scripts/setup-local`) and checks that the table built
//! from `infra/template.yaml` has the template's keys, indexes and TTL, that it enforces conditions
//! and serves index queries, and that a database folder survives a restart.
//!
//! Each test starts its own DynamoDB Local on a free port, so the tests can run in parallel.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, TimeToLiveStatus};
use local_stack::dynamodb::{
    AttributeType, DynamoDbLocal, DynamoDbLocalError, DynamoDbLocalOptions, FILES_TABLE_LOGICAL_ID,
    KeyType, Projection, TableDefinition, create_table, local_client, template_path,
};

const TABLE_NAME: &str = "files-test";

fn files_table() -> TableDefinition {
    TableDefinition::from_template_file(&template_path(), FILES_TABLE_LOGICAL_ID)
        .expect("FilesTable in infra/template.yaml")
}

async fn start(options: DynamoDbLocalOptions) -> DynamoDbLocal {
    DynamoDbLocal::start(options).await.unwrap_or_else(|error| {
        panic!("DynamoDB Local did not start (run scripts/setup-local): {error}")
    })
}

async fn start_in_memory() -> DynamoDbLocal {
    start(DynamoDbLocalOptions::default()).await
}

/// Resident memory of a process in KiB, from `ps`.
fn resident_kib(process_id: u32) -> Option<u64> {
    let output = std::process::Command::new("ps")
        .args(["-o", "rss=", "-p", &process_id.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn key_type_name(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Hash => "HASH",
        KeyType::Range => "RANGE",
    }
}

/// A key schema as (attribute, HASH/RANGE) pairs, in order, to compare the template with DynamoDB.
fn template_keys(key_schema: &[local_stack::dynamodb::KeySchemaElement]) -> Vec<(String, String)> {
    key_schema
        .iter()
        .map(|key| {
            (
                key.attribute_name.clone(),
                key_type_name(key.key_type).to_owned(),
            )
        })
        .collect()
}

fn described_keys(
    key_schema: &[aws_sdk_dynamodb::types::KeySchemaElement],
) -> Vec<(String, String)> {
    key_schema
        .iter()
        .map(|key| {
            (
                key.attribute_name().to_owned(),
                key.key_type().as_str().to_owned(),
            )
        })
        .collect()
}

fn template_projection(projection: &Projection) -> (String, BTreeSet<String>) {
    match projection {
        Projection::All => ("ALL".to_owned(), BTreeSet::new()),
        Projection::KeysOnly => ("KEYS_ONLY".to_owned(), BTreeSet::new()),
        Projection::Include { non_key_attributes } => (
            "INCLUDE".to_owned(),
            non_key_attributes.iter().cloned().collect(),
        ),
    }
}

fn described_projection(
    projection: Option<&aws_sdk_dynamodb::types::Projection>,
) -> (String, BTreeSet<String>) {
    let projection = projection.expect("every index has a projection");
    (
        projection
            .projection_type()
            .map(|projection_type| projection_type.as_str().to_owned())
            .unwrap_or_default(),
        projection.non_key_attributes().iter().cloned().collect(),
    )
}

/// An item that carries a value for every key attribute of the table and of all its indexes, so
/// that it appears in every index, whatever indexes the template declares.
fn item_in_every_index(
    definition: &TableDefinition,
    marker: &str,
) -> HashMap<String, AttributeValue> {
    let mut item: HashMap<String, AttributeValue> = definition
        .attribute_definitions
        .iter()
        .map(|attribute| {
            let value = match attribute.attribute_type {
                AttributeType::String => AttributeValue::S(format!("{}#{marker}", attribute.name)),
                AttributeType::Number => AttributeValue::N("42".to_owned()),
                AttributeType::Binary => {
                    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(marker.as_bytes()))
                }
            };
            (attribute.name.clone(), value)
        })
        .collect();
    item.insert("marker".to_owned(), AttributeValue::S(marker.to_owned()));
    item
}

/// The primary key of `item` under the table's key schema.
fn primary_key(
    definition: &TableDefinition,
    item: &HashMap<String, AttributeValue>,
) -> HashMap<String, AttributeValue> {
    definition
        .key_schema
        .iter()
        .map(|key| {
            (
                key.attribute_name.clone(),
                item[&key.attribute_name].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn table_from_the_template_has_its_keys_indexes_and_ttl() {
    let definition = files_table();
    let launched_at = Instant::now();
    let dynamodb = start_in_memory().await;
    eprintln!(
        "DynamoDB Local: start-to-ready {:?}, endpoint {}",
        launched_at.elapsed(),
        dynamodb.endpoint_url()
    );
    assert!(dynamodb.endpoint_url().starts_with("http://127.0.0.1:"));
    let client = local_client(&dynamodb.endpoint_url()).await;

    create_table(&client, TABLE_NAME, &definition)
        .await
        .unwrap();

    let table = client
        .describe_table()
        .table_name(TABLE_NAME)
        .send()
        .await
        .unwrap()
        .table
        .expect("DescribeTable returns the table");
    assert_eq!(
        described_keys(table.key_schema()),
        template_keys(&definition.key_schema)
    );
    let described_attributes: BTreeSet<(String, String)> = table
        .attribute_definitions()
        .iter()
        .map(|attribute| {
            (
                attribute.attribute_name().to_owned(),
                attribute.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    let template_attributes: BTreeSet<(String, String)> = definition
        .attribute_definitions
        .iter()
        .map(|attribute| {
            let attribute_type = match attribute.attribute_type {
                AttributeType::String => "S",
                AttributeType::Number => "N",
                AttributeType::Binary => "B",
            };
            (attribute.name.clone(), attribute_type.to_owned())
        })
        .collect();
    assert_eq!(described_attributes, template_attributes);
    assert_eq!(
        table
            .billing_mode_summary()
            .and_then(|summary| summary.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );

    let described_indexes: HashMap<&str, _> = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            (
                index.index_name().expect("GSIs have names"),
                (
                    described_keys(index.key_schema()),
                    described_projection(index.projection()),
                ),
            )
        })
        .collect();
    assert!(
        !definition.global_secondary_indexes.is_empty(),
        "the template declares GSIs"
    );
    assert_eq!(
        described_indexes.len(),
        definition.global_secondary_indexes.len(),
        "{described_indexes:?}"
    );
    for index in &definition.global_secondary_indexes {
        assert_eq!(
            described_indexes.get(index.name.as_str()),
            Some(&(
                template_keys(&index.key_schema),
                template_projection(&index.projection)
            )),
            "GSI {}",
            index.name
        );
    }

    let ttl_attribute = definition
        .time_to_live_attribute
        .as_deref()
        .expect("the template enables TTL");
    let ttl = client
        .describe_time_to_live()
        .table_name(TABLE_NAME)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .expect("DescribeTimeToLive returns a description");
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some(ttl_attribute));

    match resident_kib(dynamodb.process_id()) {
        Some(kib) => eprintln!("DynamoDB Local: java RSS {} MiB", kib / 1024),
        None => eprintln!("DynamoDB Local: java RSS unknown (ps failed)"),
    }
    dynamodb.shutdown().await;
}

#[tokio::test]
async fn creating_the_table_twice_keeps_the_table_and_its_items() {
    let definition = files_table();
    let dynamodb = start_in_memory().await;
    let client = local_client(&dynamodb.endpoint_url()).await;
    create_table(&client, TABLE_NAME, &definition)
        .await
        .unwrap();
    let item = item_in_every_index(&definition, "kept");
    client
        .put_item()
        .table_name(TABLE_NAME)
        .set_item(Some(item.clone()))
        .send()
        .await
        .unwrap();

    create_table(&client, TABLE_NAME, &definition)
        .await
        .expect("creating an existing table is not an error");

    let stored = client
        .get_item()
        .table_name(TABLE_NAME)
        .set_key(Some(primary_key(&definition, &item)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item written before the second create_table is still there");
    assert_eq!(
        stored.get("marker"),
        Some(&AttributeValue::S("kept".to_owned()))
    );
    let tables = client.list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), [TABLE_NAME]);
}

#[tokio::test]
async fn a_failed_condition_is_conditional_check_failed_and_each_gsi_finds_the_item() {
    let definition = files_table();
    let dynamodb = start_in_memory().await;
    let client = local_client(&dynamodb.endpoint_url()).await;
    create_table(&client, TABLE_NAME, &definition)
        .await
        .unwrap();
    let item = item_in_every_index(&definition, "first");
    let hash_key = &definition
        .key_schema
        .iter()
        .find(|key| key.key_type == KeyType::Hash)
        .expect("the table has a hash key")
        .attribute_name;
    let put_if_new = |item: HashMap<String, AttributeValue>| {
        client
            .put_item()
            .table_name(TABLE_NAME)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#hash_key)")
            .expression_attribute_names("#hash_key", hash_key)
            .send()
    };

    put_if_new(item.clone())
        .await
        .expect("the first put creates the item");
    let mut same_key = item.clone();
    same_key.insert("marker".to_owned(), AttributeValue::S("second".to_owned()));
    let refused = put_if_new(same_key)
        .await
        .expect_err("a second put on the same key must fail its condition");
    assert!(
        refused
            .as_service_error()
            .is_some_and(|error| error.is_conditional_check_failed_exception()),
        "{refused:?}"
    );

    for index in &definition.global_secondary_indexes {
        // Every HASH attribute takes part in the key condition (GSIs may have several).
        let hash_keys: Vec<&str> = index
            .key_schema
            .iter()
            .filter(|key| key.key_type == KeyType::Hash)
            .map(|key| key.attribute_name.as_str())
            .collect();
        let mut query = client
            .query()
            .table_name(TABLE_NAME)
            .index_name(&index.name);
        let mut conditions = Vec::new();
        for (position, attribute_name) in hash_keys.iter().enumerate() {
            conditions.push(format!("#k{position} = :v{position}"));
            query = query
                .expression_attribute_names(format!("#k{position}"), *attribute_name)
                .expression_attribute_values(
                    format!(":v{position}"),
                    item[*attribute_name].clone(),
                );
        }
        let found = query
            .key_condition_expression(conditions.join(" AND "))
            .send()
            .await
            .unwrap_or_else(|error| panic!("query on {}: {error:?}", index.name));
        assert_eq!(found.items().len(), 1, "GSI {}: {found:?}", index.name);
        assert_eq!(
            found.items()[0].get(hash_key.as_str()),
            item.get(hash_key.as_str()),
            "GSI {}",
            index.name
        );
        if index.projection == Projection::All {
            // The refused put must not have replaced the item.
            assert_eq!(
                found.items()[0].get("marker"),
                Some(&AttributeValue::S("first".to_owned())),
                "GSI {}",
                index.name
            );
        }
    }
}

#[tokio::test]
async fn a_database_folder_survives_a_restart() {
    let definition = files_table();
    let database_dir = tempfile::tempdir().unwrap();
    let options = DynamoDbLocalOptions {
        port: 0,
        db_path: Some(database_dir.path().join("dynamodb")),
    };
    let item = item_in_every_index(&definition, "persisted");

    let first_run = start(options.clone()).await;
    let client = local_client(&first_run.endpoint_url()).await;
    create_table(&client, TABLE_NAME, &definition)
        .await
        .unwrap();
    client
        .put_item()
        .table_name(TABLE_NAME)
        .set_item(Some(item.clone()))
        .send()
        .await
        .unwrap();
    first_run.shutdown().await;
    let database_files: Vec<_> = std::fs::read_dir(database_dir.path().join("dynamodb"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert!(
        !database_files.is_empty(),
        "DynamoDB Local wrote nothing to the database folder"
    );

    let second_run = start(options).await;
    let client = local_client(&second_run.endpoint_url()).await;
    let stored = client
        .get_item()
        .table_name(TABLE_NAME)
        .set_key(Some(primary_key(&definition, &item)))
        .send()
        .await
        .unwrap()
        .item
        .expect("the item written before the restart is still there");
    assert_eq!(
        stored.get("marker"),
        Some(&AttributeValue::S("persisted".to_owned()))
    );
    // TTL settings are part of what persists.
    let ttl = client
        .describe_time_to_live()
        .table_name(TABLE_NAME)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|description| description.time_to_live_status()),
        Some(&TimeToLiveStatus::Enabled)
    );
}

#[tokio::test]
async fn dropping_the_handle_kills_java() {
    let dynamodb = start_in_memory().await;
    let process_id = dynamodb.process_id();
    let port = dynamodb.port();
    drop(dynamodb);
    // Drop kills and reaps java, so its /proc entry is gone at once.
    assert!(
        !std::path::Path::new(&format!("/proc/{process_id}")).exists(),
        "java {process_id} still exists after drop"
    );
    let connected = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    assert!(
        !matches!(connected, Ok(Ok(_))),
        "port {port} still accepts connections"
    );
}

#[tokio::test]
async fn a_fixed_port_that_is_taken_is_reported_with_java_output() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let result = DynamoDbLocal::start(DynamoDbLocalOptions {
        port,
        db_path: None,
    })
    .await;
    let Err(DynamoDbLocalError::Exited { output, .. }) = &result else {
        panic!("expected Exited, got {result:?}");
    };
    assert!(output.contains("Failed to bind"), "{output}");
}
