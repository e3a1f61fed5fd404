//! The HTTP side: an axum router on a single-threaded tokio runtime of its own thread, the
//! OpenAI-shaped handlers (JSON and server-sent events), the API key check and the body limit.
//! Generation happens on the [`Scheduler`]'s worker; handlers only parse, tokenize, queue and
//! relay events.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::model::{GenerateOptions, Model};

use super::config::ServeConfig;
use super::request::{parse_chat, parse_completion, GenRequest, Prompt};
use super::scheduler::{Event, Job, Scheduler, Stats};
use super::vectors::{Applied, VectorStore};
use super::{Result, ServeError};

struct Shared {
    model: Arc<Model>,
    vectors: VectorStore,
    scheduler: Scheduler,
    config: ServeConfig,
    counter: AtomicU64,
    started: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn json_response(status: u16, v: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn error_response(e: &ServeError) -> Response {
    let mut r = json_response(e.status(), &e.body());
    if matches!(e, ServeError::Unauthorized) {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// Compares without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_key(s: &Shared, headers: &HeaderMap) -> Result<()> {
    let Some(key) = &s.config.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same_secret(g.as_bytes(), key.as_bytes()) => Ok(()),
        _ => Err(ServeError::Unauthorized),
    }
}

async fn models(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = check_key(&s, &headers) {
        return error_response(&e);
    }
    let info = s.model.info();
    json_response(
        200,
        &json!({
            "object": "list",
            "data": [{
                "id": s.config.model_id,
                "object": "model",
                "created": s.started,
                "owned_by": "steerlab",
                "steerlab": {
                    "layers": info.n_layers,
                    "hidden_size": info.hidden_size,
                    "context": s.model.config().max_position_embeddings,
                    "vectors": s.vectors.names(),
                },
            }],
        }),
    )
}

async fn list_vectors(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = check_key(&s, &headers) {
        return error_response(&e);
    }
    json_response(200, &s.vectors.listing())
}

async fn health(State(s): State<Arc<Shared>>) -> Response {
    let st: &Stats = s.scheduler.stats();
    json_response(
        200,
        &json!({
            "status": "ok",
            "active": st.active.load(Ordering::SeqCst),
            "queued": st.queued.load(Ordering::SeqCst),
            "completed": st.completed.load(Ordering::Relaxed),
            "cancelled": st.cancelled.load(Ordering::Relaxed),
            "failed": st.failed.load(Ordering::Relaxed),
            "tokens": st.tokens.load(Ordering::Relaxed),
        }),
    )
}

async fn not_found(uri: Uri) -> Response {
    error_response(&ServeError::NoRoute(uri.path().chars().take(200).collect()))
}

/// Reads the body up to the limit.
async fn read_body(s: &Shared, headers: &HeaderMap, body: Body) -> Result<Bytes> {
    let limit = s.config.limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ServeError::TooLarge(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ServeError::TooLarge(limit))
}

/// Everything a response needs besides the generated text.
struct Meta {
    id: String,
    created: u64,
    model: String,
    chat: bool,
    applied: Vec<Applied>,
    include_usage: bool,
}

impl Meta {
    fn steering(&self) -> Value {
        json!({"applied": self.applied.iter().map(Applied::to_json).collect::<Vec<_>>()})
    }

    fn chunk(&self, text: Option<&str>, finish: Option<&str>, first: bool) -> Value {
        let choice = if self.chat {
            let mut delta = serde_json::Map::new();
            if first {
                delta.insert("role".into(), json!("assistant"));
            }
            if let Some(t) = text {
                delta.insert("content".into(), json!(t));
            }
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish})
        };
        json!({
            "id": self.id,
            "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "steering": self.steering(),
        })
    }

    fn usage(prompt: usize, completion: usize) -> Value {
        json!({"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion})
    }
}

fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// Turns a request into a queued job: model name, tokens, steering, sampling.
fn prepare(s: &Shared, req: &GenRequest) -> Result<(Job, Meta, UnboundedReceiver<Event>)> {
    if let Some(m) = &req.model {
        if !s.config.serves(m) {
            return Err(ServeError::ModelNotFound {
                asked: m.chars().take(200).collect(),
                served: s.config.model_id.clone(),
            });
        }
    }
    let tok = s.model.tokenizer().ok_or_else(|| {
        ServeError::BadRequest(
            "the served model has no tokenizer: text requests are impossible".into(),
        )
    })?;
    let (field, ids) = match &req.prompt {
        Prompt::Text(t) => (
            "prompt",
            tok.encode(t, true)
                .map_err(|e| ServeError::field("prompt", e.to_string()))?,
        ),
        Prompt::Chat(messages) => {
            if !tok.has_chat_template() {
                return Err(ServeError::field(
                    "messages",
                    "the served model has no chat template; use /v1/completions",
                ));
            }
            let text = tok
                .apply_chat_template(messages, true)
                .map_err(|e| ServeError::field("messages", e.to_string()))?;
            (
                "messages",
                tok.encode(&text, false)
                    .map_err(|e| ServeError::field("messages", e.to_string()))?,
            )
        }
    };
    let ctx = s.model.config().max_position_embeddings;
    let max_prompt = s.config.limits.max_prompt_tokens.min(ctx);
    if ids.is_empty() {
        return Err(ServeError::field(field, "encodes to no tokens"));
    }
    if ids.len() > max_prompt {
        return Err(ServeError::field(
            field,
            format!(
                "{} tokens: the limit is {max_prompt} (model context {ctx})",
                ids.len()
            ),
        ));
    }
    let (hooks, applied) = s.vectors.hooks_for(&req.steering)?;
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    let seed = req.seed.unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    let (tx, rx) = unbounded_channel();
    let job = Job {
        prompt: ids,
        opts: GenerateOptions {
            max_new_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            seed,
            stop_at_eos: true,
        },
        hooks,
        stop: req.stop.clone(),
        events: tx,
    };
    let chat = matches!(req.prompt, Prompt::Chat(_));
    let meta = Meta {
        id: format!(
            "{}-{:x}{:04x}",
            if chat { "chatcmpl" } else { "cmpl" },
            s.started,
            n
        ),
        created: now_secs(),
        model: s.config.model_id.clone(),
        chat,
        applied,
        include_usage: req.include_usage,
    };
    Ok((job, meta, rx))
}

async fn generate(s: Arc<Shared>, headers: HeaderMap, body: Body, chat: bool) -> Response {
    let run = async {
        check_key(&s, &headers)?;
        let bytes = read_body(&s, &headers, body).await?;
        let req = if chat {
            parse_chat(&bytes, &s.config.limits)?
        } else {
            parse_completion(&bytes, &s.config.limits)?
        };
        let (job, meta, rx) = prepare(&s, &req)?;
        s.scheduler.submit(job)?;
        Ok::<_, ServeError>((req.stream, meta, rx))
    };
    let (stream, meta, rx) = match run.await {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    if stream {
        stream_response(meta, rx)
    } else {
        collect_response(meta, rx).await
    }
}

async fn collect_response(meta: Meta, mut rx: UnboundedReceiver<Event>) -> Response {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Failed(m) => return error_response(&ServeError::Generation(m)),
            Event::Done {
                finish,
                prompt_tokens,
                completion_tokens,
            } => {
                let choice = if meta.chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": text},
                           "logprobs": null, "finish_reason": finish.name()})
                } else {
                    json!({"index": 0, "text": text, "logprobs": null,
                           "finish_reason": finish.name()})
                };
                return json_response(
                    200,
                    &json!({
                        "id": meta.id,
                        "object": if meta.chat { "chat.completion" } else { "text_completion" },
                        "created": meta.created,
                        "model": meta.model,
                        "choices": [choice],
                        "usage": Meta::usage(prompt_tokens, completion_tokens),
                        "steering": meta.steering(),
                    }),
                );
            }
        }
    }
    error_response(&ServeError::Unavailable)
}

enum Phase {
    Start,
    Running,
    Ended,
}

fn stream_response(meta: Meta, rx: UnboundedReceiver<Event>) -> Response {
    let state = (meta, rx, Phase::Start);
    let stream = futures_util::stream::unfold(state, |(meta, mut rx, phase)| async move {
        match phase {
            Phase::Ended => None,
            Phase::Start => {
                // The first chunk goes out at once (a chat chunk carries the role).
                let first = if meta.chat {
                    sse(&meta.chunk(Some(""), None, true))
                } else {
                    String::new()
                };
                Some((
                    Ok::<Bytes, Infallible>(Bytes::from(first)),
                    (meta, rx, Phase::Running),
                ))
            }
            Phase::Running => {
                let out = match rx.recv().await {
                    Some(Event::Text(t)) => {
                        let b = sse(&meta.chunk(Some(&t), None, false));
                        return Some((Ok(Bytes::from(b)), (meta, rx, Phase::Running)));
                    }
                    Some(Event::Done {
                        finish,
                        prompt_tokens,
                        completion_tokens,
                    }) => {
                        let mut s = sse(&meta.chunk(None, Some(finish.name()), false));
                        if meta.include_usage {
                            let mut u = meta.chunk(None, None, false);
                            u["choices"] = json!([]);
                            u["usage"] = Meta::usage(prompt_tokens, completion_tokens);
                            s.push_str(&sse(&u));
                        }
                        s
                    }
                    Some(Event::Failed(m)) => sse(&ServeError::Generation(m).body()),
                    None => sse(&ServeError::Unavailable.body()),
                };
                let out = out + "data: [DONE]\n\n";
                Some((Ok(Bytes::from(out)), (meta, rx, Phase::Ended)))
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error_response(&ServeError::Unavailable))
}

async fn completions(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    generate(s, headers, body, false).await
}

async fn chat_completions(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(s, headers, body, true).await
}

/// A running server: its address, and the way to stop it.
pub struct Server {
    addr: SocketAddr,
    api_key: Option<String>,
    model_id: String,
    vector_names: Vec<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Server {
    /// Binds `config.host:config.port` (port 0: a free one) now, then serves `model` with
    /// `vectors` on a background thread until [`Server::stop`] or drop.
    pub fn start(model: Arc<Model>, vectors: VectorStore, config: ServeConfig) -> Result<Self> {
        config.limits.validate()?;
        let listener = std::net::TcpListener::bind((config.host, config.port))
            .map_err(|e| ServeError::Start(format!("{}:{}: {e}", config.host, config.port)))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let (scheduler, _worker) = Scheduler::start(
            model.clone(),
            config.limits.max_active,
            config.limits.max_queue,
        )?;
        let vector_names = vectors.names().iter().map(|s| s.to_string()).collect();
        let shared = Arc::new(Shared {
            model,
            vectors,
            scheduler,
            config: config.clone(),
            counter: AtomicU64::new(0),
            started: now_secs(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| ServeError::Start(format!("tokio runtime: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("steerlab-serve-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| ServeError::Start(e.to_string()))?;
                    let app = Router::new()
                        .route("/v1/models", get(models))
                        .route("/v1/vectors", get(list_vectors))
                        .route("/v1/completions", post(completions))
                        .route("/v1/chat/completions", post(chat_completions))
                        .route("/health", get(health))
                        .fallback(not_found)
                        .with_state(shared);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await
                        .map_err(|e| ServeError::Start(e.to_string()))
                })
            })
            .map_err(|e| ServeError::Start(format!("server thread: {e}")))?;
        Ok(Self {
            addr,
            api_key: config.api_key,
            model_id: config.model_id,
            vector_names,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:8000/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A ready `curl` line: a short steered chat request (steered with the first vector, if
    /// there is one).
    pub fn curl_example(&self) -> String {
        let steering = match self.vector_names.first() {
            Some(v) => format!(r#", "steering": [{{"vector": "{v}", "scale": 4}}]"#),
            None => String::new(),
        };
        let auth = match &self.api_key {
            Some(_) => r#" -H "Authorization: Bearer $STEERLAB_API_KEY""#.to_string(),
            None => String::new(),
        };
        format!(
            r#"curl {}/chat/completions -H 'Content-Type: application/json'{auth} -d '{{"model": "{}", "messages": [{{"role": "user", "content": "Tell me about your day."}}], "max_tokens": 48, "temperature": 0{steering}}}'"#,
            self.url(),
            self.model_id
        )
    }

    /// True while the server thread runs.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Blocks until the server ends (it runs until stopped; an error ends it early).
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| ServeError::Start("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Stops accepting connections, lets open ones finish, and waits for the thread.
    pub fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Signals shutdown without waiting (the thread ends once open connections close).
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
