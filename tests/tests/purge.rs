//! Permanent deletes of files with many revisions: interrupted, then resumed, they leave no item
//! under the file's partition and no object. Through the real local stack.

use integration_tests::TestStack;
use serde_json::{Value, json};

/// A request with a bearer token; answers status, headers and JSON body.
async fn call(t: &TestStack, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
    let resp = t
        .http
        .request(method, t.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every item under a file's partition (its record or marker, and its revisions).
async fn items_under_file(t: &TestStack, file_id: &str) -> usize {
    let client = local_stack::dynamodb::local_client(&t.stack.dynamodb_endpoint).await;
    let mut count = 0;
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(&t.stack.app.config.table_name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(shared::keys::file_pk("acme", file_id)),
            )
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query the file's partition");
        count += out.items().len();
        match out.last_evaluated_key {
            Some(next) if !next.is_empty() => start = Some(next),
            _ => return count,
        }
    }
}

/// A ready text file named `name` with tag `tag` and `revisions` revisions (the later ones made by
/// restoring the first: server-side copies, quick to make); answers its id.
async fn file_with_revisions(
    t: &TestStack,
    token: &str,
    name: &str,
    tag: &str,
    revisions: usize,
) -> String {
    let (_, upload) = t
        .create_upload(
            token,
            &json!({"name": name, "size": 2, "content_type": "text/plain", "tags": [tag]}),
        )
        .await;
    t.put_content(&upload, b"v1".to_vec()).await;
    let (status, file) = t
        .complete(token, upload["upload_id"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 200, "{file}");
    let id = file["id"].as_str().unwrap().to_string();
    for _ in 2..=revisions {
        let (status, body) = call(
            t,
            reqwest::Method::POST,
            &format!("/v1/files/{id}/revisions/1/restore"),
            token,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    id
}

/// Step 1 of a permanent delete (the file becomes a `deleting_since` marker), and nothing after it.
async fn mark_deleting(t: &TestStack, file_id: &str) {
    let app = &t.stack.app;
    let shared::store::FileForDelete::Live(record) = app
        .files
        .file_for_delete("acme", file_id)
        .await
        .unwrap()
        .unwrap()
    else {
        panic!("the file is live");
    };
    app.files.mark_file_deleting(&record).await.unwrap();
}

#[tokio::test]
async fn an_interrupted_permanent_delete_of_many_revisions_resumes_and_leaves_nothing() {
    use shared::purge::{Budget, Progress, REVISIONS_PER_CHUNK, purge_file};
    // Without the stream mapping, which would finish the delete while this test looks at it
    // half-done (the next test covers it).
    let t = TestStack::start_without_stream_mappings().await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    // More revisions than one chunk.
    let revisions = REVISIONS_PER_CHUNK + 30;
    let id = file_with_revisions(&t, &token, "history.txt", "kept", revisions).await;
    // Thumbnails the processor wrote without recording them (it failed in between): the delete
    // must find them by their keys, whatever the revision record says.
    let app = &t.stack.app;
    let page = app
        .files
        .list_revisions_page("acme", &id, None, 100)
        .await
        .unwrap();
    for revision in page.items.iter().step_by(7) {
        for size in shared::domain::THUMBNAIL_SIZES {
            let key = shared::keys::thumbnail_key(&revision.object_key, size);
            app.objects
                .put_bytes(&key, b"jpeg".to_vec(), "image/jpeg")
                .await
                .unwrap();
        }
    }
    assert_eq!(items_under_file(&t, &id).await, 1 + revisions);
    let objects = t.stack.list_objects().await.len();
    assert!(objects > revisions, "{objects}");

    // A delete that stops after its first chunk (its Lambda timed out, say).
    mark_deleting(&t, &id).await;
    let far = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let progress = purge_file(app, "acme", &id, Budget::until(far).at_most(1))
        .await
        .unwrap();
    assert_eq!(
        progress,
        Progress::Unfinished {
            revisions_deleted: REVISIONS_PER_CHUNK
        }
    );

    // In between, the file is gone for every reader and its name and tag are free...
    assert_eq!(t.file_status(&token, &id).await, 404);
    for path in [
        format!("/v1/files/{id}/revisions"),
        format!("/v1/files/{id}/revisions/{revisions}"),
        format!("/v1/files/{id}/content"),
    ] {
        let (status, body) = call(&t, reqwest::Method::GET, &path, &token).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, listed) = call(&t, reqwest::Method::GET, "/v1/files?tag=kept", &token).await;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{listed}"
    );
    let (status, listed) = call(&t, reqwest::Method::GET, "/v1/files", &token).await;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{listed}"
    );
    let (status, body) = call(
        &t,
        reqwest::Method::POST,
        &format!("/v1/files/{id}/revisions/1/restore"),
        &token,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = t
        .create_upload(
            &token,
            &json!({"file_id": id, "size": 4, "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 404, "no revision can be added: {body}");
    // ... and what is left is still reachable: the marker and the revisions not yet deleted.
    assert_eq!(
        items_under_file(&t, &id).await,
        1 + revisions - REVISIONS_PER_CHUNK
    );

    // A repeated DELETE resumes and finishes.
    let (status, body) = call(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}"),
        &admin,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(items_under_file(&t, &id).await, 0);
    let left = t.stack.list_objects().await;
    assert!(left.is_empty(), "objects left behind: {left:?}");
    let (status, _) = call(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}"),
        &admin,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = t
        .create_upload(
            &token,
            &json!({"name": "history.txt", "size": 1, "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 201, "the name is free: {body}");
}

/// A permanent delete whose run died right after marking the file (a crash, a timeout, a client
/// that got 202 and walked away) is finished by the table's stream: `finish-deletes`, invoked by
/// the template's event source mapping for the marker's record, purges every revision, object and
/// thumbnail, then the marker. Nobody calls DELETE again.
#[tokio::test]
async fn an_abandoned_permanent_delete_is_finished_by_the_table_stream() {
    use shared::purge::REVISIONS_PER_CHUNK;
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    // More revisions than one purge chunk.
    let revisions = REVISIONS_PER_CHUNK + 5;
    let id = file_with_revisions(&t, &token, "abandoned.txt", "t", revisions).await;
    assert_eq!(items_under_file(&t, &id).await, 1 + revisions);
    assert!(t.stack.list_objects().await.len() >= revisions);

    // Step 1 of DELETE, and nothing after it.
    mark_deleting(&t, &id).await;
    assert_eq!(t.file_status(&token, &id).await, 404);

    let waited = std::time::Instant::now();
    while items_under_file(&t, &id).await > 0 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "the stream did not finish the delete: {} items left",
            items_under_file(&t, &id).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let left = t.stack.list_objects().await;
    assert!(left.is_empty(), "objects left behind: {left:?}");
    integration_tests::orphans::OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("a permanent delete abandoned after marking");
}
