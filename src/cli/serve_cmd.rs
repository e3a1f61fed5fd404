//! `steerlab serve`: loads the model and the vectors folder, starts the OpenAI-compatible server
//! of [`crate::serve`] and waits. Parses arguments and prints; the server is in `crate::serve`.
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use super::model_cmds::ModelArgs;
use crate::serve::{Limits, ServeConfig, Server, VectorStore};

/// `steerlab serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A folder of steering vectors (`NAME.safetensors` or `NAME.gguf`); requests name them in
    /// `"steering": [{"vector": NAME, "scale": S}]`. Without it requests cannot steer.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Address to listen on. Anything but loopback exposes the model to the network: use
    /// --api-key then.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// TCP port (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every /v1 request (else 401). Also read from
    /// STEERLAB_API_KEY.
    #[arg(long)]
    pub api_key: Option<String>,
    /// The model id clients use (`model` field); default: the model file's name.
    #[arg(long)]
    pub model_id: Option<String>,
    /// Requests generating at once (their token steps interleave).
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Requests that may wait for a slot; beyond that the answer is 429.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// Longest prompt in tokens (also capped by the model's context).
    #[arg(long, default_value_t = 8192)]
    pub max_prompt_tokens: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
}

/// `steerlab serve`.
pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let limits = Limits {
        max_body_bytes: a.max_body,
        max_prompt_tokens: a.max_prompt_tokens,
        max_tokens: a.max_tokens,
        default_chat_max_tokens: Limits::default().default_chat_max_tokens.min(a.max_tokens),
        max_active: a.parallel,
        max_queue: a.queue,
        ..Limits::default()
    };
    limits
        .validate()
        .map_err(|e| anyhow::anyhow!("--parallel/--queue/--max-*: {e}"))?;
    let api_key = a
        .api_key
        .clone()
        .or_else(|| std::env::var("STEERLAB_API_KEY").ok());
    if let Some(k) = &api_key {
        if k.trim().is_empty() || k.trim() != k {
            bail!("--api-key: must be non-empty without surrounding spaces");
        }
    }
    if let Some(d) = &a.vectors {
        if !d.is_dir() {
            bail!("--vectors {}: not a folder", d.display());
        }
    }
    let path = crate::paths::resolve_model_arg(a.model.model.as_deref())?;
    let model = Arc::new(a.model.load()?);
    let vectors = match &a.vectors {
        Some(d) => VectorStore::from_dir(d, &model)
            .with_context(|| format!("--vectors {}", d.display()))?,
        None => VectorStore::empty(),
    };
    let model_id = match a.model_id {
        Some(id) if !id.trim().is_empty() => id,
        Some(_) => bail!("--model-id: must not be empty"),
        None => path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .to_string(),
    };
    if !a.host.is_loopback() && api_key.is_none() {
        eprintln!(
            "steerlab serve: warning: listening on {} without --api-key: anyone who can reach \
             this address can use the model",
            a.host
        );
    }
    // A cached default also answers to its short name (`"model": "smollm2"`).
    let aliases = crate::paths::short_name_of(&path)
        .into_iter()
        .map(String::from)
        .collect();
    let config = ServeConfig {
        host: a.host,
        port: a.port,
        api_key,
        model_id,
        aliases,
        limits,
    };
    let n_vectors = vectors.len();
    let names = vectors.names().join(", ");
    let server = Server::start(model, vectors, config)?;
    eprintln!(
        "steerlab serve: {} vector(s){}",
        n_vectors,
        if names.is_empty() {
            String::new()
        } else {
            format!(": {names}")
        }
    );
    eprintln!("steerlab serve: try\n  {}", server.curl_example());
    // The line scripts wait for (stdout, flushed): the base URL.
    println!("listening on {}", server.url());
    use std::io::Write;
    std::io::stdout().flush().ok();
    server.wait()?;
    Ok(())
}
