//! `agentry run AGENT "text"` (streams the answer) and `agentry runs list|show`.

use crate::apply_cmd::print_stdout;
use crate::client::{Client, describe_error};
use agentry_llm::sse::SseParser;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    /// The agent's slug.
    agent: String,
    /// The message to send.
    input: String,
    /// Continue a conversation: runs with the same thread see the earlier turns.
    #[arg(long)]
    thread: Option<String>,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    List {
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One run with its steps, as JSON.
    Show { id: String },
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_env()?;
    let mut body = json!({"input": args.input});
    if let Some(thread) = &args.thread {
        body["thread_id"] = json!(thread);
    }
    let run = client
        .json(
            client
                .request(
                    reqwest::Method::POST,
                    &format!("/agents/{}/runs", args.agent),
                )
                .json(&body),
        )
        .await?;
    let id = run["id"]
        .as_str()
        .context("the server returned no run id")?
        .to_string();
    eprintln!("run {id}");
    follow(&client, &id).await
}

/// Prints a run's events until it ends; the exit code says how it ended.
async fn follow(client: &Client, id: &str) -> anyhow::Result<ExitCode> {
    let mut last_id: Option<String> = None;
    let mut printed_text = false;
    // Reconnect with Last-Event-ID if the connection drops mid-run.
    for _attempt in 0..10 {
        let mut request = client.request(reqwest::Method::GET, &format!("/runs/{id}/events"));
        if let Some(last) = &last_id {
            request = request.header("Last-Event-ID", last);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("connection lost ({e}); reconnecting");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            bail!("{}", describe_error(status, &body));
        }
        let mut parser = SseParser::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            for event in parser.push(&chunk)? {
                if event.id.is_some() {
                    last_id = event.id.clone();
                }
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                match event.event.as_deref().unwrap_or("") {
                    "message.delta" => {
                        print_stdout(data["text"].as_str().unwrap_or(""));
                        printed_text = true;
                    }
                    "message.reset" => eprintln!("\n[the model call was interrupted and restarts]"),
                    "tool.started" => eprintln!(
                        "[tool] {} {}",
                        data["name"].as_str().unwrap_or("?"),
                        data["arguments"]
                    ),
                    "tool.completed" => match data.get("error") {
                        Some(err) => eprintln!(
                            "[tool] {} failed: {}",
                            data["name"].as_str().unwrap_or("?"),
                            err["message"].as_str().unwrap_or("")
                        ),
                        None => eprintln!(
                            "[tool] {} -> {}",
                            data["name"].as_str().unwrap_or("?"),
                            data["result"]
                        ),
                    },
                    "run.completed" => {
                        if !printed_text && let Some(out) = data["output"].as_str() {
                            print_stdout(out);
                        }
                        print_stdout("\n");
                        return Ok(ExitCode::SUCCESS);
                    }
                    "run.failed" => {
                        eprintln!(
                            "\nrun failed: {} ({})",
                            data["error"]["message"].as_str().unwrap_or(""),
                            data["error"]["code"].as_str().unwrap_or("")
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                    "run.cancelled" => {
                        eprintln!("\nrun cancelled");
                        return Ok(ExitCode::FAILURE);
                    }
                    _ => {}
                }
            }
        }
    }
    bail!("lost the event stream of run {id}; see `agentry runs show {id}`")
}

pub async fn runs(command: RunsCommand) -> anyhow::Result<ExitCode> {
    let client = Client::from_env()?;
    match command {
        RunsCommand::List {
            agent,
            status,
            limit,
        } => {
            let mut query = vec![("limit".to_string(), limit.to_string())];
            if let Some(a) = agent {
                query.push(("agent".into(), a));
            }
            if let Some(s) = status {
                query.push(("status".into(), s));
            }
            let body = client
                .json(client.request(reqwest::Method::GET, "/runs").query(&query))
                .await?;
            let mut out = format!(
                "{:<36}  {:<16}  {:<10}  {:>8}  {}\n",
                "ID", "AGENT", "STATUS", "TOKENS", "CREATED"
            );
            for run in body["data"].as_array().into_iter().flatten() {
                let tokens = run["usage"]["input_tokens"].as_i64().unwrap_or(0)
                    + run["usage"]["output_tokens"].as_i64().unwrap_or(0);
                out.push_str(&format!(
                    "{:<36}  {:<16}  {:<10}  {:>8}  {}\n",
                    run["id"].as_str().unwrap_or(""),
                    run["agent"].as_str().unwrap_or(""),
                    run["status"].as_str().unwrap_or(""),
                    tokens,
                    run["created_at"].as_str().unwrap_or("")
                ));
            }
            print_stdout(&out);
        }
        RunsCommand::Show { id } => {
            let body = client
                .json(client.request(reqwest::Method::GET, &format!("/runs/{id}")))
                .await?;
            print_stdout(&format!("{}\n", serde_json::to_string_pretty(&body)?));
        }
    }
    Ok(ExitCode::SUCCESS)
}
