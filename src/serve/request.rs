//! Parsing and validation of OpenAI-style request bodies (`/v1/completions`,
//! `/v1/chat/completions`) into a [`GenRequest`]. Every error names the field at fault; fields
//! this server cannot honour (`n` > 1, `logprobs`, penalties, tools) are refused rather than
//! ignored, and unknown fields are ignored as OpenAI clients send many optional ones.
use serde_json::{Map, Value};

use crate::data::Message;
use crate::model::EditMode;

use super::config::Limits;
use super::{Result, ServeError};

/// Largest `|scale|` of a steering entry (as `steerlab generate --steer`).
pub const MAX_SCALE: f64 = 1e4;

/// Which token positions a per-request steering entry touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerPositions {
    /// Every position, prompt included.
    All,
    /// The prompt only.
    Prompt,
    /// The generated tokens only.
    Generated,
}

impl SteerPositions {
    /// The name used in requests and responses.
    pub fn name(self) -> &'static str {
        match self {
            SteerPositions::All => "all",
            SteerPositions::Prompt => "prompt",
            SteerPositions::Generated => "generated",
        }
    }

    /// Parses `all`, `prompt` or `generated`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(SteerPositions::All),
            "prompt" => Some(SteerPositions::Prompt),
            "generated" => Some(SteerPositions::Generated),
            _ => None,
        }
    }
}

/// One entry of a request's `steering` list.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerSpec {
    /// A vector name from the served folder (never a path).
    pub vector: String,
    /// Multiplier (default 1).
    pub scale: f64,
    /// Positions; `None`: the vector's `steerlab.positions`.
    pub positions: Option<SteerPositions>,
    /// Intervention mode; `None`: the vector's `steerlab.intervention`.
    pub mode: Option<EditMode>,
}

/// What to generate from.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Raw text (`/v1/completions`), tokenized with the model's special tokens.
    Text(String),
    /// Chat messages (`/v1/chat/completions`), rendered with the model's chat template.
    Chat(Vec<Message>),
}

/// A validated generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// The `model` field, if given.
    pub model: Option<String>,
    /// The prompt or messages.
    pub prompt: Prompt,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling temperature in [0, 2]; 0 is greedy.
    pub temperature: f64,
    /// Nucleus threshold in [0, 1].
    pub top_p: f64,
    /// Random seed; `None`: the server picks one.
    pub seed: Option<u64>,
    /// Strings that end generation (not included in the output).
    pub stop: Vec<String>,
    /// Answer with server-sent events.
    pub stream: bool,
    /// With `stream`: send a last chunk with token counts (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Per-request steering.
    pub steering: Vec<SteerSpec>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field present and not null.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_f64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(ServeError::field(path, "must be a finite number")),
        },
        Some(v) => Err(ServeError::field(
            path,
            format!("must be a number, got {}", type_name(v)),
        )),
    }
}

fn in_range(path: &str, x: f64, lo: f64, hi: f64) -> Result<f64> {
    if (lo..=hi).contains(&x) {
        Ok(x)
    } else {
        Err(ServeError::field(
            path,
            format!("{x} is out of range: must be from {lo} to {hi}"),
        ))
    }
}

fn opt_u64(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            ServeError::field(key, format!("must be a non-negative integer, got {n}"))
        }),
        Some(v) => Err(ServeError::field(
            key,
            format!("must be an integer, got {}", type_name(v)),
        )),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ServeError::field(
            key,
            format!("must be true or false, got {}", type_name(v)),
        )),
    }
}

/// The body as a JSON object.
fn object(body: &[u8]) -> Result<Map<String, Value>> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ServeError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ServeError::BadRequest(format!(
            "the body must be a JSON object, got {}",
            type_name(&other)
        ))),
    }
}

/// Refuses options this server does not implement, instead of silently ignoring them.
fn refuse_unsupported(obj: &Map<String, Value>) -> Result<()> {
    if let Some(n) = opt_u64(obj, "n")? {
        if n != 1 {
            return Err(ServeError::field(
                "n",
                format!("{n}: only n = 1 is supported"),
            ));
        }
    }
    if let Some(n) = opt_u64(obj, "best_of")? {
        if n != 1 {
            return Err(ServeError::field(
                "best_of",
                format!("{n}: only best_of = 1 is supported"),
            ));
        }
    }
    if opt_bool(obj, "echo")? == Some(true) {
        return Err(ServeError::field("echo", "echo is not supported"));
    }
    match get(obj, "logprobs") {
        None | Some(Value::Bool(false)) => {}
        Some(_) => return Err(ServeError::field("logprobs", "logprobs are not supported")),
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if let Some(p) = opt_f64(obj, key, key)? {
            if p != 0.0 {
                return Err(ServeError::field(
                    key,
                    format!("{p}: penalties are not supported (only 0)"),
                ));
            }
        }
    }
    match get(obj, "tools") {
        None => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => return Err(ServeError::field("tools", "tools are not supported")),
    }
    match get(obj, "logit_bias") {
        None => {}
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(_) => {
            return Err(ServeError::field(
                "logit_bias",
                "logit_bias is not supported",
            ))
        }
    }
    Ok(())
}

fn parse_stop(obj: &Map<String, Value>, limits: &Limits) -> Result<Vec<String>> {
    let list: Vec<String> = match get(obj, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(ServeError::field(
                    format!("stop[{i}]"),
                    format!("must be a string, got {}", type_name(other)),
                )),
            })
            .collect::<Result<_>>()?,
        Some(v) => {
            return Err(ServeError::field(
                "stop",
                format!(
                    "must be a string or an array of strings, got {}",
                    type_name(v)
                ),
            ))
        }
    };
    if list.len() > limits.max_stop {
        return Err(ServeError::field(
            "stop",
            format!(
                "{} strings: at most {} are allowed",
                list.len(),
                limits.max_stop
            ),
        ));
    }
    for (i, s) in list.iter().enumerate() {
        if s.is_empty() {
            return Err(ServeError::field(format!("stop[{i}]"), "must not be empty"));
        }
        if s.len() > 256 {
            return Err(ServeError::field(
                format!("stop[{i}]"),
                "is longer than 256 bytes",
            ));
        }
    }
    Ok(list)
}

/// True when `name` could be read as a path rather than a plain vector name.
pub fn looks_like_path(name: &str) -> bool {
    name.contains('/')
        || name.contains('\\')
        || name.contains("..")
        || name.contains('\0')
        || name.contains(':')
        || name.starts_with('~')
}

fn parse_steering(obj: &Map<String, Value>, limits: &Limits) -> Result<Vec<SteerSpec>> {
    let list = match get(obj, "steering") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ServeError::field(
                "steering",
                format!(
                    "must be an array of {{\"vector\": NAME, \"scale\": S}} objects, got {}",
                    type_name(v)
                ),
            ))
        }
    };
    if list.len() > limits.max_steering {
        return Err(ServeError::field(
            "steering",
            format!(
                "{} entries: at most {} are allowed",
                list.len(),
                limits.max_steering
            ),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = |k: &str| format!("steering[{i}].{k}");
        let Value::Object(e) = entry else {
            return Err(ServeError::field(
                format!("steering[{i}]"),
                format!("must be an object, got {}", type_name(entry)),
            ));
        };
        if let Some(k) = e
            .keys()
            .find(|k| !["vector", "scale", "positions", "mode"].contains(&k.as_str()))
        {
            return Err(ServeError::field(
                at(k),
                "unknown key (expected vector, scale, positions, mode)",
            ));
        }
        let vector = match get(e, "vector") {
            Some(Value::String(s)) => s.clone(),
            None => return Err(ServeError::field(at("vector"), "is required")),
            Some(v) => {
                return Err(ServeError::field(
                    at("vector"),
                    format!("must be a vector name (a string), got {}", type_name(v)),
                ))
            }
        };
        if vector.is_empty() {
            return Err(ServeError::field(at("vector"), "must not be empty"));
        }
        if looks_like_path(&vector) {
            return Err(ServeError::field(
                at("vector"),
                format!(
                    "`{vector}` is a path; give the name of a vector in the served folder \
                     (GET /v1/vectors lists them)"
                ),
            ));
        }
        let scale = match opt_f64(e, "scale", &at("scale"))? {
            None => 1.0,
            Some(s) => in_range(&at("scale"), s, -MAX_SCALE, MAX_SCALE)?,
        };
        let positions = match get(e, "positions") {
            None => None,
            Some(Value::String(s)) => Some(SteerPositions::parse(s).ok_or_else(|| {
                ServeError::field(
                    at("positions"),
                    format!("`{s}`: expected all, prompt or generated"),
                )
            })?),
            Some(v) => {
                return Err(ServeError::field(
                    at("positions"),
                    format!("must be a string, got {}", type_name(v)),
                ))
            }
        };
        let mode = match get(e, "mode") {
            None => None,
            Some(Value::String(s)) => Some(s.parse::<EditMode>().map_err(|_| {
                ServeError::field(
                    at("mode"),
                    format!("`{s}`: expected add, add_normalized, ablate or clamp"),
                )
            })?),
            Some(v) => {
                return Err(ServeError::field(
                    at("mode"),
                    format!("must be a string, got {}", type_name(v)),
                ))
            }
        };
        out.push(SteerSpec {
            vector,
            scale,
            positions,
            mode,
        });
    }
    Ok(out)
}

/// The fields both endpoints share; `max_keys` lists the keys read as `max_tokens`, first wins.
fn common(
    obj: &Map<String, Value>,
    limits: &Limits,
    prompt: Prompt,
    max_keys: &[&str],
    default_max: usize,
) -> Result<GenRequest> {
    refuse_unsupported(obj)?;
    let model = match get(obj, "model") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(ServeError::field(
                "model",
                format!("must be a string, got {}", type_name(v)),
            ))
        }
    };
    let mut max_tokens = default_max;
    for key in max_keys {
        if let Some(n) = opt_u64(obj, key)? {
            if n == 0 || n > limits.max_tokens as u64 {
                return Err(ServeError::field(
                    *key,
                    format!(
                        "{n} is out of range: must be from 1 to {}",
                        limits.max_tokens
                    ),
                ));
            }
            max_tokens = n as usize;
            break;
        }
    }
    let temperature = match opt_f64(obj, "temperature", "temperature")? {
        None => 1.0,
        Some(t) => in_range("temperature", t, 0.0, 2.0)?,
    };
    let top_p = match opt_f64(obj, "top_p", "top_p")? {
        None => 1.0,
        Some(p) => in_range("top_p", p, 0.0, 1.0)?,
    };
    let seed = opt_u64(obj, "seed")?;
    let stream = opt_bool(obj, "stream")?.unwrap_or(false);
    let include_usage = match get(obj, "stream_options") {
        None => false,
        Some(Value::Object(o)) => match get(o, "include_usage") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(ServeError::field(
                    "stream_options.include_usage",
                    format!("must be true or false, got {}", type_name(v)),
                ))
            }
        },
        Some(v) => {
            return Err(ServeError::field(
                "stream_options",
                format!("must be an object, got {}", type_name(v)),
            ))
        }
    };
    Ok(GenRequest {
        model,
        prompt,
        max_tokens,
        temperature,
        top_p,
        seed,
        stop: parse_stop(obj, limits)?,
        stream,
        include_usage,
        steering: parse_steering(obj, limits)?,
    })
}

/// Parses a `/v1/completions` body (`prompt`: a string or an array of one string;
/// `max_tokens` defaults to 16 as in the OpenAI API).
pub fn parse_completion(body: &[u8], limits: &Limits) -> Result<GenRequest> {
    let obj = object(body)?;
    let prompt = match get(&obj, "prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(a)) if a.len() != 1 => {
            return Err(ServeError::field(
                "prompt",
                format!("{} prompts: one prompt per request", a.len()),
            ))
        }
        None => return Err(ServeError::field("prompt", "is required")),
        Some(v) => {
            return Err(ServeError::field(
                "prompt",
                format!("must be a string, got {}", type_name(v)),
            ))
        }
    };
    if prompt.is_empty() {
        return Err(ServeError::field("prompt", "must not be empty"));
    }
    common(
        &obj,
        limits,
        Prompt::Text(prompt),
        &["max_tokens"],
        16.min(limits.max_tokens),
    )
}

/// Parses a `/v1/chat/completions` body (`messages` with roles system, developer, user or
/// assistant; content a string or an array of text parts).
pub fn parse_chat(body: &[u8], limits: &Limits) -> Result<GenRequest> {
    let obj = object(body)?;
    let list = match get(&obj, "messages") {
        Some(Value::Array(a)) => a,
        None => return Err(ServeError::field("messages", "is required")),
        Some(v) => {
            return Err(ServeError::field(
                "messages",
                format!("must be an array, got {}", type_name(v)),
            ))
        }
    };
    if list.is_empty() {
        return Err(ServeError::field(
            "messages",
            "must hold at least one message",
        ));
    }
    let mut messages = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(ServeError::field(
                format!("messages[{i}]"),
                format!("must be an object, got {}", type_name(m)),
            ));
        };
        let role = match get(m, "role") {
            Some(Value::String(r)) => match r.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ServeError::field(
                        format!("messages[{i}].role"),
                        format!("`{other}`: expected system, developer, user or assistant"),
                    ))
                }
            },
            None => {
                return Err(ServeError::field(
                    format!("messages[{i}].role"),
                    "is required",
                ))
            }
            Some(v) => {
                return Err(ServeError::field(
                    format!("messages[{i}].role"),
                    format!("must be a string, got {}", type_name(v)),
                ))
            }
        };
        let content = match get(m, "content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    let at = format!("messages[{i}].content[{j}]");
                    match p {
                        Value::Object(p)
                            if p.get("type").and_then(Value::as_str) == Some("text") =>
                        {
                            match get(p, "text") {
                                Some(Value::String(t)) => text.push_str(t),
                                _ => {
                                    return Err(ServeError::field(
                                        format!("{at}.text"),
                                        "must be a string",
                                    ))
                                }
                            }
                        }
                        _ => {
                            return Err(ServeError::field(
                                at,
                                "only {\"type\": \"text\", \"text\": ...} parts are supported",
                            ))
                        }
                    }
                }
                text
            }
            None if role == "assistant" => String::new(),
            None => {
                return Err(ServeError::field(
                    format!("messages[{i}].content"),
                    "is required",
                ))
            }
            Some(v) => {
                return Err(ServeError::field(
                    format!("messages[{i}].content"),
                    format!(
                        "must be a string or an array of text parts, got {}",
                        type_name(v)
                    ),
                ))
            }
        };
        messages.push(Message::new(role, content));
    }
    common(
        &obj,
        limits,
        Prompt::Chat(messages),
        &["max_completion_tokens", "max_tokens"],
        limits.default_chat_max_tokens,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str, chat: bool) -> ServeError {
        let l = Limits::default();
        let r = if chat {
            parse_chat(body.as_bytes(), &l)
        } else {
            parse_completion(body.as_bytes(), &l)
        };
        r.unwrap_err()
    }

    fn param(e: &ServeError) -> Option<&str> {
        e.param()
    }

    #[test]
    fn parses_a_full_completion_request() {
        let r = parse_completion(
            br#"{"model":"m","prompt":"Hi","max_tokens":5,"temperature":0,"top_p":0.9,
                "seed":7,"stop":["\n","."],"stream":true,"stream_options":{"include_usage":true},
                "steering":[{"vector":"happy","scale":-2.5,"positions":"generated","mode":"add"}]}"#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(r.prompt, Prompt::Text("Hi".into()));
        assert_eq!(
            (r.max_tokens, r.temperature, r.top_p, r.seed),
            (5, 0.0, 0.9, Some(7))
        );
        assert_eq!(r.stop, vec!["\n".to_string(), ".".to_string()]);
        assert!(r.stream && r.include_usage);
        assert_eq!(
            r.steering,
            vec![SteerSpec {
                vector: "happy".into(),
                scale: -2.5,
                positions: Some(SteerPositions::Generated),
                mode: Some(EditMode::Add),
            }]
        );
        // Defaults follow the OpenAI API.
        let r = parse_completion(br#"{"prompt":["x"]}"#, &Limits::default()).unwrap();
        assert_eq!((r.max_tokens, r.temperature, r.top_p), (16, 1.0, 1.0));
        assert!(r.steering.is_empty() && r.stop.is_empty() && !r.stream);
    }

    #[test]
    fn parses_chat_messages() {
        let r = parse_chat(
            br#"{"messages":[{"role":"developer","content":"Be brief."},
                {"role":"user","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]}],
                "max_completion_tokens":3,"max_tokens":9}"#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            r.prompt,
            Prompt::Chat(vec![
                Message::new("system", "Be brief."),
                Message::new("user", "AB")
            ])
        );
        assert_eq!(r.max_tokens, 3);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, bool, &str)] = &[
            (
                r#"{"prompt":"x","temperature":"hot"}"#,
                false,
                "temperature",
            ),
            (r#"{"prompt":"x","temperature":3}"#, false, "temperature"),
            (r#"{"prompt":"x","top_p":-0.1}"#, false, "top_p"),
            (r#"{"prompt":"x","max_tokens":0}"#, false, "max_tokens"),
            (r#"{"prompt":"x","max_tokens":1e9}"#, false, "max_tokens"),
            (
                r#"{"prompt":"x","max_tokens":99999999}"#,
                false,
                "max_tokens",
            ),
            (r#"{"prompt":"x","seed":-1}"#, false, "seed"),
            (r#"{"prompt":"x","stop":[1]}"#, false, "stop[0]"),
            (
                r#"{"prompt":"x","stop":["a","b","c","d","e"]}"#,
                false,
                "stop",
            ),
            (r#"{"prompt":"x","n":2}"#, false, "n"),
            (r#"{"prompt":"x","stream":"yes"}"#, false, "stream"),
            (r#"{"prompt":7}"#, false, "prompt"),
            (r#"{"prompt":["a","b"]}"#, false, "prompt"),
            (r#"{}"#, false, "prompt"),
            (r#"{"prompt":"x","steering":{}}"#, false, "steering"),
            (
                r#"{"prompt":"x","steering":[{"scale":1}]}"#,
                false,
                "steering[0].vector",
            ),
            (
                r#"{"prompt":"x","steering":[{"vector":"../etc/passwd"}]}"#,
                false,
                "steering[0].vector",
            ),
            (
                r#"{"prompt":"x","steering":[{"vector":"/tmp/v"}]}"#,
                false,
                "steering[0].vector",
            ),
            (
                r#"{"prompt":"x","steering":[{"vector":"v","scale":1e300}]}"#,
                false,
                "steering[0].scale",
            ),
            (
                r#"{"prompt":"x","steering":[{"vector":"v","positions":"middle"}]}"#,
                false,
                "steering[0].positions",
            ),
            (
                r#"{"prompt":"x","steering":[{"vector":"v","mode":"multiply"}]}"#,
                false,
                "steering[0].mode",
            ),
            (
                r#"{"prompt":"x","steering":[{"vector":"v","layer":3}]}"#,
                false,
                "steering[0].layer",
            ),
            (r#"{"messages":[]}"#, true, "messages"),
            (
                r#"{"messages":[{"role":"robot","content":"x"}]}"#,
                true,
                "messages[0].role",
            ),
            (
                r#"{"messages":[{"role":"user"}]}"#,
                true,
                "messages[0].content",
            ),
            (
                r#"{"messages":[{"role":"user","content":5}]}"#,
                true,
                "messages[0].content",
            ),
        ];
        for (body, chat, field) in cases {
            let e = err(body, *chat);
            assert_eq!(e.status(), 400, "{body}: {e}");
            assert_eq!(param(&e), Some(*field), "{body}: {e}");
            assert!(e.to_string().starts_with(field), "{body}: {e}");
        }
        for body in ["not json", "[1,2]", "{\"prompt\": \"x\""] {
            let e = err(body, false);
            assert_eq!(e.status(), 400, "{body}");
        }
    }
}
