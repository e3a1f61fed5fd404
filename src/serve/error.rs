//! Errors of the server, each with the HTTP status and the OpenAI error fields it is answered
//! with. Request errors name the JSON field they are about (`steering[0].scale`).
use thiserror::Error;

/// Why a request (or starting the server) failed.
#[derive(Debug, Error)]
pub enum ServeError {
    /// A field of the request body is missing, of the wrong type or out of range (400).
    #[error("{field}: {message}")]
    BadField {
        /// The JSON path of the field, e.g. `steering[1].vector`.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The body is not a JSON object, or the request cannot be served as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong API key (401).
    #[error("missing or wrong API key: send it as `Authorization: Bearer KEY`")]
    Unauthorized,
    /// The request names a model this server does not serve (404).
    #[error("the model `{asked}` is not served here (this server serves `{served}`)")]
    ModelNotFound {
        /// The model the request asked for.
        asked: String,
        /// The model served.
        served: String,
    },
    /// No such endpoint (404).
    #[error("no endpoint {0}; see GET /v1/models, /v1/vectors, POST /v1/completions, /v1/chat/completions")]
    NoRoute(String),
    /// The body is larger than the limit (413).
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// The queue of waiting requests is full (429).
    #[error("the server is busy ({0} requests waiting); retry later")]
    QueueFull(usize),
    /// The generation worker has stopped (503).
    #[error("the server is shutting down")]
    Unavailable,
    /// The model failed while generating (500).
    #[error("generation failed: {0}")]
    Generation(String),
    /// The vectors folder or a vector in it cannot be served.
    #[error("vectors: {0}")]
    Vectors(String),
    /// The listener could not be set up.
    #[error("could not start the server: {0}")]
    Start(String),
}

impl ServeError {
    /// A 400 about `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServeError::BadField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::BadField { .. } | ServeError::BadRequest(_) => 400,
            ServeError::Unauthorized => 401,
            ServeError::ModelNotFound { .. } | ServeError::NoRoute(_) => 404,
            ServeError::TooLarge(_) => 413,
            ServeError::QueueFull(_) => 429,
            ServeError::Unavailable => 503,
            ServeError::Generation(_) | ServeError::Vectors(_) | ServeError::Start(_) => 500,
        }
    }

    /// The OpenAI `error.type`.
    pub fn kind(&self) -> &'static str {
        match self.status() {
            400 | 404 | 413 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            _ => "server_error",
        }
    }

    /// The OpenAI `error.param`: the field at fault, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            ServeError::BadField { field, .. } => Some(field),
            ServeError::ModelNotFound { .. } => Some("model"),
            _ => None,
        }
    }

    /// The OpenAI `error.code`.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ServeError::ModelNotFound { .. } => Some("model_not_found"),
            ServeError::Unauthorized => Some("invalid_api_key"),
            _ => None,
        }
    }

    /// The JSON body of the error response (OpenAI's shape).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }
}

/// Result of the server's functions.
pub type Result<T> = std::result::Result<T, ServeError>;
