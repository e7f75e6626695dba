//! Load through the local stack at a constant rate, open loop (as wrk2 does): request `i` is due
//! at `start + i / rate` whether or not earlier ones have answered, and its latency counts from that
//! due time, so a stall shows up in the percentiles instead of silently lowering the rate
//! (coordinated omission). Every request has its own body where the route needs one (a new name
//! per `POST /v1/uploads`), which is what ruled out oha and hey (one fixed body) and wrk (closed
//! loop, no fixed rate).
//!
//! Scenarios, run one after the other in each round (their order rotates between rounds):
//! - `gateway 404`: an unknown path: the local gateway's HTTP floor, no authorizer, no handler;
//! - `DynamoDB GetItem`: a bare, consistent GetItem of the same file record through the SDK, straight
//!   to DynamoDB Local: what DynamoDB Local costs of a `GET /v1/files/{id}`;
//! - `GET /v1/files/{id}`: a ready file, with its presigned download URL;
//! - `DynamoDB TransactWriteItems`: what `POST /v1/uploads` writes, bare: three conditional Puts in
//!   one transaction (the name claim, a copy of a real file item with its four GSI keys, an upload
//!   session of the same size), straight to DynamoDB Local through the SDK;
//! - `POST /v1/uploads`: a new file each time (a DynamoDB transaction and a presigned PUT).

use crate::args::Args;
use crate::client::{api_client, declaration, failure, seed_file};
use crate::stats::{Samples, Table, ms};
use aws_sdk_dynamodb::types::AttributeValue::{self, S};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: files-bench load --url http://127.0.0.1:3000 --dynamodb-endpoint http://127.0.0.1:8000
                        [--table files-local] [--rate 300] [--seconds 10] [--rounds 3]
                        [--warmup-seconds 3] [--scenario NAME ...]
Targets a running files-local (release build: cargo build --release -p local-stack --bin files-local).
Scenarios: gateway-404, dynamodb-getitem, get-file, dynamodb-transact, create-upload (default: all).";

type Op =
    Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

struct Scenario {
    key: &'static str,
    name: String,
    op: Op,
}

/// One run of one scenario.
struct Run {
    /// From each request's due time to its response.
    latency: Samples,
    /// Requests sent per second, over the run.
    achieved_rate: f64,
    errors: usize,
    first_error: Option<String>,
}

pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &[], USAGE)?;
    let url = args.required("url")?.trim_end_matches('/').to_string();
    let dynamodb_endpoint = args.required("dynamodb-endpoint")?.to_string();
    let table = args.get("table").unwrap_or("files-local").to_string();
    let rate: f64 = args.number("rate", 300.0)?;
    let seconds: f64 = args.number("seconds", 10.0)?;
    let rounds: usize = args.number("rounds", 3)?;
    let warmup: f64 = args.number("warmup-seconds", 3.0)?;
    let only: Vec<String> = args.all("scenario").to_vec();
    // One thread for the generator: it leaves the other core to the stack as far as it can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let scenarios = scenarios(&url, &dynamodb_endpoint, &table)
            .await?
            .into_iter()
            .filter(|s| only.is_empty() || only.iter().any(|o| o == s.key))
            .collect::<Vec<_>>();
        if scenarios.is_empty() {
            return Err(format!("no such scenario\n{USAGE}"));
        }
        let count = (rate * seconds).round() as usize;
        for scenario in &scenarios {
            let run = open_loop(rate, (rate * warmup).round() as usize, &scenario.op, 0).await;
            if run.errors > 0 {
                return Err(format!(
                    "{} fails during warm-up: {}",
                    scenario.name,
                    run.first_error.unwrap_or_default()
                ));
            }
        }
        let mut results: Vec<Vec<Run>> = scenarios.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            for k in 0..scenarios.len() {
                let i = (k + round) % scenarios.len();
                // Each run's requests get fresh indexes (create-upload names must not repeat).
                let offset = 1_000_000 * (round + 1);
                results[i].push(open_loop(rate, count, &scenarios[i].op, offset).await);
            }
        }
        print(&scenarios, &results, rate, seconds, rounds);
        // Failed requests make the figures meaningless (and fail the smoke run in CI).
        let failed: usize = results.iter().flatten().map(|run| run.errors).sum();
        match results
            .iter()
            .flatten()
            .find_map(|run| run.first_error.clone())
        {
            Some(first) => Err(format!("{failed} requests failed; the first: {first}")),
            None => Ok(()),
        }
    })
}

fn print(scenarios: &[Scenario], results: &[Vec<Run>], rate: f64, seconds: f64, rounds: usize) {
    println!(
        "open-loop load at {rate} requests/s for {seconds} s, {rounds} rounds; latency from each request's due time (ms)"
    );
    println!(
        "each figure is the median over the rounds; `worst p99` and `max` are over all rounds"
    );
    let mut table = Table::new(&[
        "scenario",
        "achieved/s",
        "errors",
        "p50",
        "p90",
        "p99",
        "worst p99",
        "max",
    ]);
    for (scenario, runs) in scenarios.iter().zip(results) {
        let median_of =
            |f: &dyn Fn(&Run) -> Duration| Samples::new(runs.iter().map(f).collect()).median();
        let mut rates: Vec<f64> = runs.iter().map(|r| r.achieved_rate).collect();
        rates.sort_by(f64::total_cmp);
        let worst_p99 = runs
            .iter()
            .map(|r| r.latency.percentile(99.0))
            .max()
            .unwrap_or_default();
        let max = runs
            .iter()
            .map(|r| r.latency.max())
            .max()
            .unwrap_or_default();
        let errors: usize = runs.iter().map(|r| r.errors).sum();
        table.row(vec![
            scenario.name.clone(),
            format!("{:.0}", rates.get(rates.len() / 2).copied().unwrap_or(0.0)),
            errors.to_string(),
            ms(median_of(&|r| r.latency.median())),
            ms(median_of(&|r| r.latency.percentile(90.0))),
            ms(median_of(&|r| r.latency.percentile(99.0))),
            ms(worst_p99),
            ms(max),
        ]);
    }
    table.print();
    for (scenario, runs) in scenarios.iter().zip(results) {
        let p99s: Vec<String> = runs
            .iter()
            .map(|r| ms(r.latency.percentile(99.0)))
            .collect();
        println!("{}: p99 by round: {}", scenario.name, p99s.join(" / "));
    }
    for (scenario, runs) in scenarios.iter().zip(results) {
        if let Some(error) = runs.iter().find_map(|r| r.first_error.as_ref()) {
            println!("{}: first error: {error}", scenario.name);
        }
    }
}

async fn open_loop(rate: f64, count: usize, op: &Op, offset: usize) -> Run {
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let request = op(offset + i);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = request.await;
            (due, sent, Instant::now(), result)
        }));
    }
    let mut latency = Vec::with_capacity(count);
    let (mut first_sent, mut last_sent) = (None::<Instant>, None::<Instant>);
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok((due, sent, done, result)) => {
                latency.push(done - due);
                first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
                last_sent = Some(last_sent.map_or(sent, |l| l.max(sent)));
                if let Err(e) = result {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let span = match (first_sent, last_sent) {
        (Some(f), Some(l)) if l > f => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    Run {
        latency: Samples::new(latency),
        achieved_rate: if span > 0.0 {
            (count.saturating_sub(1)) as f64 / span
        } else {
            0.0
        },
        errors,
        first_error,
    }
}

async fn scenarios(
    url: &str,
    dynamodb_endpoint: &str,
    table: &str,
) -> Result<Vec<Scenario>, String> {
    let tenant = "bench-load";
    // The API scenarios go through files-client without retries (crate::client::api_client): a
    // failure counts as an error, never as a retried, slower request.
    let api = api_client(url, tenant)?;
    let seed_name = format!("load-{}.txt", uuid::Uuid::now_v7().simple());
    let file_id = seed_file(
        &api,
        &seed_name,
        b"hello, files\n".to_vec(),
        "text/plain",
        false,
    )
    .await?;

    // No API call: the gateway's floor, below any client.
    let not_found: Op = {
        let (http, url) = (reqwest::Client::new(), format!("{url}/v1/no-such-route"));
        Arc::new(move |_| {
            let request = http.get(&url).send();
            Box::pin(async move { expect(request.await, 404).await })
        })
    };
    let get_item: Op = {
        let client = crate::handlers::local_dynamodb_client(dynamodb_endpoint);
        let table = table.to_string();
        let pk = shared::keys::file_pk(tenant, &file_id);
        Arc::new(move |_| {
            let request = client
                .get_item()
                .table_name(&table)
                .key("pk", S(pk.clone()))
                .key("sk", S(shared::keys::FILE_SK.into()))
                .consistent_read(true)
                .send();
            Box::pin(async move {
                match request.await {
                    Ok(out) if out.item.is_some() => Ok(()),
                    Ok(_) => Err("GetItem found no item".to_string()),
                    Err(e) => Err(format!("GetItem: {e:?}")),
                }
            })
        })
    };
    let get_file: Op = {
        let (api, file_id) = (api.clone(), file_id.clone());
        Arc::new(move |_| {
            let (api, file_id) = (api.clone(), file_id.clone());
            Box::pin(async move {
                api.get_file(&file_id, false)
                    .await
                    .map(|_| ())
                    .map_err(failure)
            })
        })
    };
    let transact: Op = {
        let client = crate::handlers::local_dynamodb_client(dynamodb_endpoint);
        let table = table.to_string();
        let file_item = client
            .get_item()
            .table_name(&table)
            .key("pk", S(shared::keys::file_pk(tenant, &file_id)))
            .key("sk", S(shared::keys::FILE_SK.into()))
            .send()
            .await
            .map_err(|e| format!("GetItem: {e:?}"))?
            .item
            .ok_or("the seeded file has no item")?;
        let run = uuid::Uuid::now_v7().simple().to_string();
        Arc::new(move |i| {
            let id = format!("{run}-{i}");
            let put = |item: HashMap<String, AttributeValue>| {
                let put = Put::builder()
                    .table_name(&table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .expect("table, item and condition are set");
                TransactWriteItem::builder().put(put).build()
            };
            let mut file = file_item.clone();
            file.insert("pk".into(), S(shared::keys::file_pk(tenant, &id)));
            let mut upload = file_item.clone();
            upload.insert("pk".into(), S(shared::keys::upload_pk(tenant, &id)));
            upload.insert("sk".into(), S(shared::keys::UPLOAD_SK.into()));
            for gsi in [
                "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "gsi4pk", "gsi4sk",
            ] {
                upload.remove(gsi);
            }
            let claim = HashMap::from([
                (
                    "pk".to_string(),
                    S(shared::keys::name_claim_pk(tenant, None)),
                ),
                (
                    "sk".to_string(),
                    S(shared::keys::name_claim_sk(&format!("anchor-{id}.txt"))),
                ),
                ("file_id".to_string(), S(id.clone())),
            ]);
            let request = client
                .transact_write_items()
                .transact_items(put(claim))
                .transact_items(put(file))
                .transact_items(put(upload))
                .send();
            Box::pin(async move {
                request
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("TransactWriteItems: {e:?}"))
            })
        })
    };
    let create_upload: Op = {
        let run = uuid::Uuid::now_v7().simple().to_string();
        Arc::new(move |i| {
            let api = api.clone();
            let body = declaration(
                &format!("load-{run}-{i}.txt"),
                b"hello, files\n",
                "text/plain",
            );
            Box::pin(async move { api.create_upload(&body).await.map(|_| ()).map_err(failure) })
        })
    };
    Ok(vec![
        Scenario {
            key: "gateway-404",
            name: "gateway 404 (anchor: HTTP + gateway, no handler)".into(),
            op: not_found,
        },
        Scenario {
            key: "dynamodb-getitem",
            name: "DynamoDB Local GetItem (anchor: bare SDK call)".into(),
            op: get_item,
        },
        Scenario {
            key: "get-file",
            name: "GET /v1/files/{id}".into(),
            op: get_file,
        },
        Scenario {
            key: "dynamodb-transact",
            name: "DynamoDB Local TransactWriteItems, 3 Puts (anchor: bare SDK call)".into(),
            op: transact,
        },
        Scenario {
            key: "create-upload",
            name: "POST /v1/uploads".into(),
            op: create_upload,
        },
    ])
}

async fn expect(response: reqwest::Result<reqwest::Response>, status: u16) -> Result<(), String> {
    let response = response.map_err(|e| e.to_string())?;
    let got = response.status().as_u16();
    // Read the whole body: the response is not over before it is.
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if got != status {
        return Err(format!(
            "status {got} (expected {status}): {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(())
}
