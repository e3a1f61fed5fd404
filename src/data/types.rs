//! The record types every method consumes. Readers (this module's siblings) produce them;
//! steering, SAE and dissection only ever see these, never raw files.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant` (other roles are kept as given).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A prompt: plain text, or a multi-turn conversation kept as messages (HH-RLHF transcripts,
/// chat lists). The last message of a conversation is normally from the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// A single user turn.
    Text(String),
    /// A conversation.
    Messages(Vec<Message>),
}

impl Prompt {
    /// The conversation as messages (a plain text prompt is one user message).
    pub fn to_messages(&self) -> Vec<Message> {
        match self {
            Prompt::Text(t) => vec![Message::new("user", t.clone())],
            Prompt::Messages(m) => m.clone(),
        }
    }

    /// A flat text rendering (for display, hashing and components over prompts).
    pub fn to_plain(&self) -> String {
        match self {
            Prompt::Text(t) => t.clone(),
            Prompt::Messages(m) => m
                .iter()
                .map(|x| format!("{}: {}", x.role, x.content))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A preference pair: `chosen` was preferred over `rejected` for `prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// Stable id (from the file, or `"{file line}"` when the file has none).
    pub id: String,
    /// The prompt.
    pub prompt: Prompt,
    /// The preferred response.
    pub chosen: String,
    /// The dispreferred response.
    pub rejected: String,
    /// Other short scalar columns of the row (scenario, judge, source, ...), column → text.
    /// Kept so analyses can group by any column; empty for generated pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// Which response a judge preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    /// Response A.
    A,
    /// Response B.
    B,
    /// Neither.
    Tie,
}

/// A pairwise judgement with optional annotations (Arena / GAIR style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Stable id.
    pub id: String,
    /// The prompt.
    pub prompt: Prompt,
    /// First response.
    pub response_a: String,
    /// Second response.
    pub response_b: String,
    /// The judge's choice.
    pub winner: Winner,
    /// Which judge (model name, "human", ...), if recorded.
    pub judge: Option<String>,
    /// Which annotator, if recorded.
    pub annotator: Option<String>,
    /// Scenario / task category, if recorded.
    pub scenario: Option<String>,
    /// Per-response factor annotations of A (factor name -> value).
    pub factors_a: BTreeMap<String, f64>,
    /// Per-response factor annotations of B.
    pub factors_b: BTreeMap<String, f64>,
    /// Other short scalar columns of the row, column → text (see [`PreferencePair::extra`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// A CAA-style A/B item: a question with two answers, one matching the behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbItem {
    /// Stable id.
    pub id: String,
    /// The question (often listing the choices "(A) ... (B) ...").
    pub question: String,
    /// The answer that matches the behaviour (e.g. "(A)" or a full sentence).
    pub answer_matching_behavior: String,
    /// The answer that does not.
    pub answer_not_matching_behavior: String,
}

/// Unpaired binary feedback (thumbs up/down) on one response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Stable id.
    pub id: String,
    /// The prompt.
    pub prompt: Prompt,
    /// The response that was rated.
    pub response: String,
    /// True for thumbs up.
    pub label: bool,
}

/// A prompt without responses (red-teaming and evaluation prompt sets such as AdvBench).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptItem {
    /// Stable id.
    pub id: String,
    /// The prompt.
    pub prompt: Prompt,
    /// Category / harm area, if recorded.
    pub category: Option<String>,
}

/// One record of any supported kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// chosen/rejected pair.
    Pair(PreferencePair),
    /// Pairwise judgement.
    Judgement(Judgement),
    /// A/B behaviour item.
    AbItem(AbItem),
    /// Unpaired feedback.
    Feedback(Feedback),
    /// A prompt alone.
    Prompt(PromptItem),
}

impl Record {
    /// The record's id.
    pub fn id(&self) -> &str {
        match self {
            Record::Pair(r) => &r.id,
            Record::Judgement(r) => &r.id,
            Record::AbItem(r) => &r.id,
            Record::Feedback(r) => &r.id,
            Record::Prompt(r) => &r.id,
        }
    }
}

impl Record {
    /// The record's prompt (an A/B item's question as plain text).
    pub fn prompt(&self) -> Prompt {
        match self {
            Record::Pair(r) => r.prompt.clone(),
            Record::Judgement(r) => r.prompt.clone(),
            Record::AbItem(r) => Prompt::Text(r.question.clone()),
            Record::Feedback(r) => r.prompt.clone(),
            Record::Prompt(r) => r.prompt.clone(),
        }
    }
}

impl PreferencePair {
    /// The pair as a judgement with A = chosen, B = rejected, winner A. Extra columns named
    /// `judge`, `annotator` or `scenario` fill those fields; all extras are kept in `extra`.
    pub fn to_judgement(&self) -> Judgement {
        let pick = |k: &str| self.extra.get(k).filter(|v| !v.trim().is_empty()).cloned();
        Judgement {
            id: self.id.clone(),
            prompt: self.prompt.clone(),
            response_a: self.chosen.clone(),
            response_b: self.rejected.clone(),
            winner: Winner::A,
            judge: pick("judge"),
            annotator: pick("annotator"),
            scenario: pick("scenario"),
            factors_a: BTreeMap::new(),
            factors_b: BTreeMap::new(),
            extra: self.extra.clone(),
        }
    }
}

impl Judgement {
    /// The judgement as a chosen/rejected pair (None for ties). `judge`, `annotator` and
    /// `scenario` go into the pair's `extra` (with the judgement's own extras).
    pub fn to_pair(&self) -> Option<PreferencePair> {
        let (chosen, rejected) = match self.winner {
            Winner::A => (&self.response_a, &self.response_b),
            Winner::B => (&self.response_b, &self.response_a),
            Winner::Tie => return None,
        };
        Some(PreferencePair {
            id: self.id.clone(),
            prompt: self.prompt.clone(),
            chosen: chosen.clone(),
            rejected: rejected.clone(),
            extra: self.keys(),
        })
    }

    /// The value of a grouping key: `judge`, `annotator`, `scenario` or any extra column
    /// (`None` when the record has none).
    pub fn key(&self, key: &str) -> Option<&str> {
        let typed = match key {
            "judge" => self.judge.as_deref(),
            "annotator" => self.annotator.as_deref(),
            "scenario" => self.scenario.as_deref(),
            _ => None,
        };
        typed.or_else(|| self.extra.get(key).map(String::as_str))
    }

    /// `extra` plus the typed `judge`/`annotator`/`scenario` fields, column → text.
    pub fn keys(&self) -> BTreeMap<String, String> {
        let mut m = self.extra.clone();
        for (k, v) in [
            ("judge", &self.judge),
            ("annotator", &self.annotator),
            ("scenario", &self.scenario),
        ] {
            if let Some(v) = v {
                m.insert(k.to_string(), v.clone());
            }
        }
        m
    }
}
