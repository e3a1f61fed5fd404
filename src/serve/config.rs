//! Server settings: where it listens, the API key, and the limits every request is held to.
use std::net::IpAddr;

use super::{Result, ServeError};

/// Limits on requests and on the scheduler (README, "Limits").
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Longest prompt in tokens (also bounded by the model's context).
    pub max_prompt_tokens: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens: usize,
    /// `max_tokens` of a chat request that does not say.
    pub default_chat_max_tokens: usize,
    /// Most `stop` strings per request (OpenAI allows 4).
    pub max_stop: usize,
    /// Most entries in a request's `steering` list.
    pub max_steering: usize,
    /// Requests generating at once (their token steps interleave).
    pub max_active: usize,
    /// Requests waiting for a generation slot; one more is answered 429.
    pub max_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_prompt_tokens: 8192,
            max_tokens: 4096,
            default_chat_max_tokens: 512,
            max_stop: 4,
            max_steering: 8,
            max_active: 4,
            max_queue: 16,
        }
    }
}

impl Limits {
    /// Checks that every limit is usable (at least 1, and the documented upper bounds).
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(ServeError::Start(format!(
                    "{name} {v}: must be from 1 to {max}"
                )))
            } else {
                Ok(())
            }
        };
        check("max body bytes", self.max_body_bytes, 64 << 20)?;
        check("max prompt tokens", self.max_prompt_tokens, 1 << 20)?;
        check("max tokens", self.max_tokens, 1 << 20)?;
        check(
            "default chat max tokens",
            self.default_chat_max_tokens,
            self.max_tokens,
        )?;
        check("max stop strings", self.max_stop, 64)?;
        check("max steering entries", self.max_steering, 64)?;
        check("max active requests", self.max_active, 256)?;
        check("max queued requests", self.max_queue, 4096)?;
        Ok(())
    }
}

/// Where and how the server listens.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind (loopback unless told otherwise).
    pub host: IpAddr,
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// Bearer token every `/v1/*` request must carry, if set.
    pub api_key: Option<String>,
    /// The model id shown in `/v1/models` and responses.
    pub model_id: String,
    /// Other names a request's `model` may use for the same model (e.g. the short name
    /// `smollm2` of a cached default); responses still carry `model_id`.
    pub aliases: Vec<String>,
    /// Request and scheduler limits.
    pub limits: Limits,
}

impl ServeConfig {
    /// Whether a request's `model` names the served model: its id or one of its aliases.
    pub fn serves(&self, asked: &str) -> bool {
        asked == self.model_id || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(asked))
    }

    /// Loopback on `port`, no key, default limits.
    pub fn local(model_id: impl Into<String>, port: u16) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port,
            api_key: None,
            model_id: model_id.into(),
            aliases: Vec::new(),
            limits: Limits::default(),
        }
    }
}
