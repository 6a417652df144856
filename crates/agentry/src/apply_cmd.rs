//! `agentry apply -f FILE|DIR`: reads YAML resources, shows the plan and applies it through the
//! API. A file that does not parse names its line; a resource the server refuses is named with
//! its file and the line where its document starts.

use crate::client::{Client, describe_error};
use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct ApplyArgs {
    /// A YAML file or a directory of them (*.yaml, *.yml).
    #[arg(short = 'f', long = "file")]
    path: PathBuf,
    /// Only print the plan.
    #[arg(long)]
    dry_run: bool,
}

/// One YAML document, before the server sees it.
#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: Value,
    spec: Value,
}

struct Located {
    file: PathBuf,
    line: u64,
    resource: Value,
}

fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut out: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        out.sort();
        Ok(out)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// Parses every document of every file, with the line where each starts.
fn read_resources(path: &Path) -> anyhow::Result<Vec<Located>> {
    let mut out = Vec::new();
    for file in files(path)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let docs: Vec<serde_saphyr::Spanned<Document>> = serde_saphyr::from_multiple(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for doc in docs {
            let line = doc.defined.line();
            let d = doc.value;
            out.push(Located {
                file: file.clone(),
                line,
                resource: json!({
                    "apiVersion": d.api_version,
                    "kind": d.kind,
                    "metadata": d.metadata,
                    "spec": d.spec,
                }),
            });
        }
    }
    if out.is_empty() {
        bail!("no resources found in {}", path.display());
    }
    Ok(out)
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let resources = read_resources(&args.path)?;
    let client = Client::from_env()?;
    let body = json!({
        "resources": resources.iter().map(|r| r.resource.clone()).collect::<Vec<_>>(),
        "dry_run": args.dry_run,
    });
    let response = client
        .request(reqwest::Method::POST, "/apply")
        .json(&body)
        .send()
        .await
        .context("cannot reach Agentry")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let index = body["error"]["details"]["resource_index"].as_u64();
        let location = index
            .and_then(|i| resources.get(i as usize))
            .map(|r| format!("{}:{}: ", r.file.display(), r.line))
            .unwrap_or_default();
        bail!("{location}{}", describe_error(status.as_u16(), &body));
    }
    let mut out = String::new();
    for entry in body["plan"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<10} {:<9} {}\n",
            entry["action"].as_str().unwrap_or("?"),
            entry["kind"].as_str().unwrap_or("?"),
            entry["name"].as_str().unwrap_or("?"),
        ));
    }
    print_stdout(&out);
    if args.dry_run {
        eprintln!("dry run: nothing was changed");
    }
    Ok(ExitCode::SUCCESS)
}

/// Data goes to stdout.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_their_start_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(
            &file,
            "apiVersion: agentry/v1\nkind: Provider\nmetadata: {name: p}\nspec: {kind: openai, base_url: 'http://x/v1'}\n---\napiVersion: agentry/v1\nkind: Agent\nmetadata: {name: a}\nspec: {name: A, model: p/m}\n",
        )
        .unwrap();
        let docs = read_resources(&file).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 1);
        assert_eq!(docs[1].line, 6);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            "apiVersion: agentry/v1\nkind: Agent\nmetadata: {name: a\nspec: {}\n",
        )
        .unwrap();
        let err = read_resources(&file).err().unwrap().to_string();
        assert!(err.contains("line"), "{err}");
    }
}
