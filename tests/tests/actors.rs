//! Who uploaded and who changed (issue 14): `created_by` and `updated_by` on files, `created_by` on
//! each revision, as `{id, type, name?, email?}` from the token's `sub`, `principal_type` and OIDC
//! `name` / `email` claims; records written before (a bare `sub` string) still read.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{TestStack, assert_matches_schema};
use reqwest::Method;
use serde_json::{Value, json};

fn revision_authors(list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["created_by"].clone())
        .collect()
}

#[tokio::test]
async fn files_and_revisions_say_who_uploaded_and_who_changed() {
    // GIVEN a user with a name and an email, an app, and two more users of one tenant
    let t = TestStack::start().await;
    let rw = "files:read files:write";
    let alice = t.token_with_claims(
        "acme",
        "alice",
        rw,
        json!({"name": "Alice Liddell", "email": "alice@example.com"}),
    );
    let importer = t.token_with_claims(
        "acme",
        "importer",
        rw,
        json!({"principal_type": "app", "name": "Nightly import"}),
    );
    let bob = t.token_with_claims("acme", "bob", rw, json!({"email": "bob@example.com"}));
    let carol = t.token_with("acme", "carol", rw);
    let alice_actor = json!({"id": "alice", "type": "user", "name": "Alice Liddell", "email": "alice@example.com"});
    let importer_actor = json!({"id": "importer", "type": "app", "name": "Nightly import"});

    // WHEN alice uploads a file
    let body =
        json!({"name": "a.txt", "size": 3, "content_type": "text/plain", "parent": "case-1"});
    let file = t.upload(&alice, &body, b"abc").await;
    // THEN she created it and made its last change
    assert_matches_schema("GET", "/v1/files/{file_id}", 200, &file);
    assert_eq!(file["created_by"], alice_actor);
    assert_eq!(file["updated_by"], alice_actor);
    let id = file["id"].as_str().unwrap().to_string();

    // WHEN the app uploads a new revision
    let revision = json!({"file_id": id, "size": 4, "content_type": "text/plain"});
    let file = t.upload(&importer, &revision, b"abcd").await;
    // THEN the file was changed by the app, and is still alice's creation
    assert_eq!(file["created_by"], alice_actor);
    assert_eq!(file["updated_by"], importer_actor);

    // WHEN bob renames it, THEN bob changed it last
    let (status, patched) = t
        .call(
            Method::PATCH,
            &bob,
            &format!("/v1/files/{id}"),
            Some(&json!({"name": "b.txt"})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_matches_schema("PATCH", "/v1/files/{file_id}", 200, &patched);
    assert_eq!(
        patched["updated_by"],
        json!({"id": "bob", "type": "user", "email": "bob@example.com"})
    );
    assert_eq!(patched["created_by"], alice_actor);

    // WHEN carol trashes it, THEN carol; WHEN bob restores it, THEN bob
    let (status, trashed) = t
        .call(Method::POST, &carol, &format!("/v1/files/{id}/trash"), None)
        .await;
    assert_eq!(status, 200, "{trashed}");
    assert_eq!(
        trashed["updated_by"],
        json!({"id": "carol", "type": "user"})
    );
    let (status, restored) = t
        .call(Method::POST, &bob, &format!("/v1/files/{id}/restore"), None)
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["updated_by"]["id"], "bob");

    // WHEN alice restores revision 1 as revision 3
    let (status, restored) = t
        .call(
            Method::POST,
            &alice,
            &format!("/v1/files/{id}/revisions/1/restore"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{restored}");
    assert_eq!(restored["updated_by"], alice_actor);

    // THEN each revision names who uploaded (or restored) it
    let (status, list) = t
        .call(
            Method::GET,
            &carol,
            &format!("/v1/files/{id}/revisions"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_matches_schema("GET", "/v1/files/{file_id}/revisions", 200, &list);
    assert_eq!(
        revision_authors(&list),
        vec![
            alice_actor.clone(),
            importer_actor.clone(),
            alice_actor.clone()
        ]
    );
    let (status, second) = t
        .call(
            Method::GET,
            &carol,
            &format!("/v1/files/{id}/revisions/2"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["created_by"], importer_actor);

    // AND listings filter on the creator's id, and show both actors
    let (_, by_alice) = t
        .call(Method::GET, &carol, "/v1/files?created_by=alice", None)
        .await;
    assert_matches_schema("GET", "/v1/files", 200, &by_alice);
    assert_eq!(by_alice["items"][0]["id"], id.as_str());
    assert_eq!(by_alice["items"][0]["updated_by"], alice_actor);
    let (_, by_importer) = t
        .call(Method::GET, &carol, "/v1/files?created_by=importer", None)
        .await;
    assert_eq!(by_importer["items"], json!([]));
}

#[tokio::test]
async fn oversized_and_malformed_name_and_email_claims_are_bounded() {
    // GIVEN a token whose name is 10,000 characters and whose email is no address
    let t = TestStack::start().await;
    let token = t.token_with_claims(
        "acme",
        "mallory",
        "files:read files:write",
        json!({"name": format!(" {}\u{7} ", "é".repeat(10_000)), "email": "not an address"}),
    );
    let long_email = format!("{}@example.com", "a".repeat(300));
    let token_long_email = t.token_with_claims(
        "acme",
        "trent",
        "files:read files:write",
        json!({"email": long_email}),
    );

    // WHEN they upload
    let body = json!({"name": "m.txt", "size": 1, "content_type": "text/plain"});
    let file = t.upload(&token, &body, b"m").await;
    let other = t
        .upload(
            &token_long_email,
            &json!({"name": "t.txt", "size": 1, "content_type": "text/plain"}),
            b"t",
        )
        .await;

    // THEN the name is cut to 256 characters (control characters and outer spaces gone), and an
    // email that is no address, or longer than 254 characters, is left out rather than cut
    assert_matches_schema("GET", "/v1/files/{file_id}", 200, &file);
    let name = file["created_by"]["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 256);
    assert!(name.chars().all(|c| c == 'é'));
    assert!(
        file["created_by"].get("email").is_none(),
        "{}",
        file["created_by"]
    );
    assert_eq!(other["created_by"], json!({"id": "trent", "type": "user"}));
}

#[tokio::test]
async fn records_written_before_actors_had_a_type_still_read() {
    // GIVEN a file and its revision as records written before this change held them: the
    // uploader's `sub` as a string, no `updated_by`
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let body = json!({"name": "old.txt", "size": 3, "content_type": "text/plain"});
    let file = t.upload(&token, &body, b"old").await;
    let id = file["id"].as_str().unwrap().to_string();
    let client = local_stack::dynamodb::local_client(&t.stack.dynamodb_endpoint).await;
    let table = &t.stack.app.config.table_name;
    let file_pk = shared::keys::file_pk("acme", &id);
    let items = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(file_pk.clone()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut rewritten = 0;
    for item in items {
        if !item.contains_key("created_by") {
            continue;
        }
        client
            .update_item()
            .table_name(table)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .update_expression("SET created_by = :who REMOVE updated_by")
            .expression_attribute_values(":who", AttributeValue::S("alice".into()))
            .send()
            .await
            .unwrap();
        rewritten += 1;
    }
    assert_eq!(rewritten, 2, "the file record and its revision");

    // WHEN the file and its revisions are read
    let old: Value = t.get_file(&token, &id).await;
    let (_, revisions) = t
        .call(
            Method::GET,
            &token,
            &format!("/v1/files/{id}/revisions"),
            None,
        )
        .await;
    let (_, listed) = t
        .call(Method::GET, &token, "/v1/files?created_by=alice", None)
        .await;

    // THEN the string reads as a user with that id, who also made the last change
    let alice = json!({"id": "alice", "type": "user"});
    assert_matches_schema("GET", "/v1/files/{file_id}", 200, &old);
    assert_eq!(old["created_by"], alice);
    assert_eq!(old["updated_by"], alice);
    assert_eq!(revisions["items"][0]["created_by"], alice);
    assert_eq!(listed["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn an_upload_started_before_the_change_still_completes() {
    // GIVEN an upload session as sessions written before held it: the creator's `sub` string
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({"name": "late.txt", "size": 4, "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let upload_id = upload["upload_id"].as_str().unwrap();
    let client = local_stack::dynamodb::local_client(&t.stack.dynamodb_endpoint).await;
    client
        .update_item()
        .table_name(&t.stack.app.config.table_name)
        .key(
            "pk",
            AttributeValue::S(shared::keys::upload_pk("acme", upload_id)),
        )
        .key("sk", AttributeValue::S(shared::keys::UPLOAD_SK.to_string()))
        .update_expression("SET created_by = :who")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":who", AttributeValue::S("alice".into()))
        .send()
        .await
        .unwrap();

    // WHEN its content lands and is processed, and its creator asks for it
    assert_eq!(t.put_content(&upload, b"late".to_vec()).await, 200);
    let file_id = upload["file_id"].as_str().unwrap();
    let file = t.wait_for_status(&token, file_id, "ready").await;
    let (status, state) = t
        .call(
            Method::GET,
            &token,
            &format!("/v1/uploads/{upload_id}"),
            None,
        )
        .await;

    // THEN the revision names the session's creator, read as a user, and she still owns it
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["status"], "completed");
    assert_eq!(file["updated_by"], json!({"id": "alice", "type": "user"}));
    let (_, revisions) = t
        .call(
            Method::GET,
            &token,
            &format!("/v1/files/{file_id}/revisions"),
            None,
        )
        .await;
    assert_eq!(
        revisions["items"][0]["created_by"],
        json!({"id": "alice", "type": "user"})
    );
}
