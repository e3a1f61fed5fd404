//! Turns a raw [`Row`] into a typed [`Record`] given a resolved layout: texts, message lists,
//! HH-RLHF transcripts, winners, labels and factor objects, each checked with an error that
//! names the column. No file reading here.
use super::error::DataError;
use super::layout::{Field, Layout, Resolved};
use super::read::{json_type, Format, Row};
use super::types::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// What the conversion needs to know about the file.
pub struct Ctx<'a> {
    /// The file (for messages).
    pub path: &'a Path,
    /// Its format (CSV cells holding JSON arrays/objects are decoded where structure is
    /// expected).
    pub format: Format,
    /// Prefix of generated ids (`{stem}:{line or row}`).
    pub stem: String,
}

impl<'a> Ctx<'a> {
    /// A context for `path` in `format`.
    pub fn new(path: &'a Path, format: Format) -> Self {
        Self {
            path,
            format,
            stem: super::read::dataset_stem(path),
        }
    }
}

/// Longest unread cell (in characters) kept as an extra column of a pair or judgement:
/// grouping keys are short; long texts (other responses, notes) are not kept.
pub const MAX_EXTRA_CHARS: usize = 200;

struct R<'a> {
    ctx: &'a Ctx<'a>,
    row: &'a Row,
    res: &'a Resolved,
}

/// A response or conversation as found in a cell.
enum Turns {
    Text(String),
    Messages(Vec<Message>),
}

impl R<'_> {
    fn err(&self, f: Field, msg: impl Into<String>) -> DataError {
        let field = self.res.column(f).unwrap_or(f.name()).to_string();
        DataError::Field {
            path: self.ctx.path.to_path_buf(),
            loc: self.row.loc,
            field,
            msg: msg.into(),
        }
    }

    /// The value of a bound field; `None` when unbound or null.
    fn get(&self, f: Field) -> Option<Value> {
        let col = self.res.column(f)?;
        let v = self.row.fields.get(col)?;
        if v.is_null() {
            return None;
        }
        Some(v.clone())
    }

    /// True when the field's column is present in the row with a null value.
    fn is_null(&self, f: Field) -> bool {
        self.res
            .column(f)
            .and_then(|c| self.row.fields.get(c))
            .is_some_and(Value::is_null)
    }

    fn required(&self, f: Field) -> Result<Value, DataError> {
        match self.res.column(f) {
            None => Err(self.err(f, "is not mapped")),
            Some(col) => match self.row.fields.get(col) {
                None => Err(self.err(f, "is missing")),
                Some(Value::Null) => Err(self.err(f, "is null")),
                Some(v) => Ok(v.clone()),
            },
        }
    }

    /// In CSV, a cell that holds a JSON array or object where structure may be expected.
    fn decode(&self, v: Value) -> Value {
        if self.ctx.format != Format::Csv && self.ctx.format != Format::Tsv {
            return v;
        }
        if let Value::String(s) = &v {
            let t = s.trim_start();
            if t.starts_with('[') || t.starts_with('{') {
                if let Ok(parsed @ (Value::Array(_) | Value::Object(_))) = serde_json::from_str(s) {
                    return parsed;
                }
            }
        }
        v
    }

    fn text(&self, f: Field) -> Result<String, DataError> {
        match self.required(f)? {
            Value::String(s) => Ok(s),
            v => Err(self.err(f, format!("expected text, found {}", json_type(&v)))),
        }
    }

    /// An optional text field; absent, null and blank values are `None`.
    fn opt_text(&self, f: Field) -> Result<Option<String>, DataError> {
        match self.get(f) {
            None => Ok(None),
            Some(v) => scalar_text(&v)
                .map(|s| if s.trim().is_empty() { None } else { Some(s) })
                .ok_or_else(|| self.err(f, format!("expected text, found {}", json_type(&v)))),
        }
    }

    /// Short scalar cells of the columns no field of the layout reads (see
    /// [`MAX_EXTRA_CHARS`]); nulls, arrays, objects and long texts are left out.
    fn extra(&self) -> BTreeMap<String, String> {
        self.row
            .fields
            .iter()
            .filter(|(c, _)| !self.res.fields.values().any(|b| b == *c))
            .filter_map(|(c, v)| {
                let t = scalar_text(v)?;
                (!t.trim().is_empty() && t.chars().count() <= MAX_EXTRA_CHARS)
                    .then(|| (c.clone(), t))
            })
            .collect()
    }

    fn id(&self) -> Result<String, DataError> {
        Ok(match self.opt_text(Field::Id)? {
            Some(id) if !id.trim().is_empty() => id,
            _ => {
                let n = self.row.loc.line.unwrap_or(self.row.loc.row);
                match &self.row.group {
                    Some(g) => format!("{}:{g}:{n}", self.ctx.stem),
                    None => format!("{}:{n}", self.ctx.stem),
                }
            }
        })
    }

    /// A text, a message list, or an HH-RLHF transcript.
    fn turns(&self, f: Field) -> Result<Turns, DataError> {
        let v = self.decode(self.required(f)?);
        match v {
            Value::String(s) => Ok(match parse_transcript(&s) {
                Some(m) => Turns::Messages(m),
                None => Turns::Text(s),
            }),
            Value::Array(items) => messages(&items)
                .map(Turns::Messages)
                .map_err(|m| self.err(f, m)),
            Value::Object(o) => match message(&o) {
                Ok(m) => Ok(Turns::Messages(vec![m])),
                Err(_) => Err(self.err(
                    f,
                    "expected text or a list of {role, content} messages, found an object",
                )),
            },
            other => Err(self.err(
                f,
                format!(
                    "expected text or a list of {{role, content}} messages, found {}",
                    json_type(&other)
                ),
            )),
        }
    }

    /// The final assistant response and the conversation before it.
    fn response(&self, f: Field) -> Result<(String, Vec<Message>), DataError> {
        match self.turns(f)? {
            Turns::Text(t) => Ok((t, Vec::new())),
            Turns::Messages(mut m) => {
                if m.last()
                    .is_some_and(|x| x.role == "assistant" && x.content.is_empty())
                    && m.len() > 1
                {
                    return Err(self.err(
                        f,
                        "the conversation ends with an empty assistant turn (no response)",
                    ));
                }
                match m.pop() {
                    Some(last) if last.role == "assistant" => Ok((last.content, m)),
                    Some(last) => Err(self.err(
                        f,
                        format!("the conversation must end with an assistant message, but the last role is `{}`", last.role),
                    )),
                    None => Err(self.err(f, "the message list is empty")),
                }
            }
        }
    }

    fn prompt(&self, f: Field) -> Result<Prompt, DataError> {
        Ok(match self.turns(f)? {
            Turns::Text(t) => Prompt::Text(t),
            Turns::Messages(mut m) => {
                // "\n\nHuman: ...\n\nAssistant:" prompts end with an empty assistant turn.
                if m.last()
                    .is_some_and(|x| x.role == "assistant" && x.content.is_empty())
                {
                    m.pop();
                }
                if m.is_empty() {
                    return Err(self.err(f, "the prompt has no messages"));
                }
                normalise_prompt(m)
            }
        })
    }

    fn factors(&self, f: Field) -> Result<BTreeMap<String, f64>, DataError> {
        let Some(v) = self.get(f) else {
            return Ok(BTreeMap::new());
        };
        let v = if let Value::String(s) = &v {
            if s.trim().is_empty() {
                return Ok(BTreeMap::new());
            }
            serde_json::from_str(s)
                .map_err(|_| self.err(f, "expected an object of factor name → number"))?
        } else {
            v
        };
        let Value::Object(o) = v else {
            return Err(self.err(
                f,
                format!(
                    "expected an object of factor name → number, found {}",
                    json_type(&v)
                ),
            ));
        };
        let mut out = BTreeMap::new();
        for (k, x) in o {
            let n = match &x {
                Value::Number(n) => n.as_f64(),
                Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                _ => None,
            };
            match n {
                Some(n) if n.is_finite() => {
                    out.insert(k, n);
                }
                _ => {
                    return Err(self.err(
                        f,
                        format!("factor `{k}` is {}, expected a number", json_type(&x)),
                    ))
                }
            }
        }
        Ok(out)
    }

    fn winner(&self) -> Result<Winner, DataError> {
        if self.res.column(Field::Winner).is_some() {
            let v = self.required(Field::Winner)?;
            let s = scalar_text(&v).ok_or_else(|| {
                self.err(
                    Field::Winner,
                    format!("expected a, b or tie, found {}", json_type(&v)),
                )
            })?;
            return parse_winner(&s).ok_or_else(|| {
                self.err(
                    Field::Winner,
                    format!(
                        "expected a, b or tie (or model_a, model_b), found `{}`",
                        clip(&s)
                    ),
                )
            });
        }
        let flag = |f: Field| -> Result<bool, DataError> {
            match self.get(f) {
                None if f == Field::WinnerTie => Ok(false),
                None => Err(self.err(f, "is missing")),
                Some(v) => parse_flag(&v).ok_or_else(|| {
                    self.err(
                        f,
                        format!("expected 0 or 1, found {}", clip(&v.to_string())),
                    )
                }),
            }
        };
        let (a, b, t) = (
            flag(Field::WinnerModelA)?,
            flag(Field::WinnerModelB)?,
            flag(Field::WinnerTie)?,
        );
        match (a, b, t) {
            (true, false, false) => Ok(Winner::A),
            (false, true, false) => Ok(Winner::B),
            (false, false, true) => Ok(Winner::Tie),
            _ => Err(self.err(
                Field::WinnerModelA,
                "exactly one of winner_model_a, winner_model_b, winner_tie must be 1",
            )),
        }
    }
}

/// Converts one row to the records of the resolved layout: one, except for an A/B row with
/// several non-matching answers, which gives one A/B item per non-matching answer (ids `ID#k`).
pub fn to_records(ctx: &Ctx<'_>, row: &Row, res: &Resolved) -> Result<Vec<Record>, DataError> {
    let r = R { ctx, row, res };
    let id = r.id()?;
    Ok(vec![match res.layout {
        Layout::Pair => {
            let (chosen, pre_c) = r.response(Field::Chosen)?;
            let (rejected, pre_r) = r.response(Field::Rejected)?;
            if !pre_c.is_empty() && !pre_r.is_empty() && pre_c != pre_r {
                return Err(r.err(
                    Field::Rejected,
                    "the conversation before the final response differs from the chosen one's (they must share the prompt)",
                ));
            }
            let prefix = if pre_c.is_empty() { pre_r } else { pre_c };
            let prompt = if !prefix.is_empty() {
                normalise_prompt(prefix)
            } else if r.get(Field::Prompt).is_some() || r.is_null(Field::Prompt) {
                r.prompt(Field::Prompt)?
            } else {
                Prompt::Text(String::new())
            };
            Record::Pair(PreferencePair {
                id,
                prompt,
                chosen,
                rejected,
                extra: r.extra(),
            })
        }
        Layout::Judgement => {
            let prompt = r.prompt(Field::Prompt)?;
            let (response_a, _) = r.response(Field::ResponseA)?;
            let (response_b, _) = r.response(Field::ResponseB)?;
            Record::Judgement(Judgement {
                id,
                prompt,
                response_a,
                response_b,
                winner: r.winner()?,
                judge: r.opt_text(Field::Judge)?,
                annotator: r.opt_text(Field::Annotator)?,
                scenario: r.opt_text(Field::Scenario)?,
                factors_a: r.factors(Field::FactorsA)?,
                factors_b: r.factors(Field::FactorsB)?,
                extra: r.extra(),
            })
        }
        Layout::AbItem => {
            // Text, or a list of texts: model-written-evals rows list several non-matching
            // answers (philpapers2020); each becomes its own A/B item.
            let answers = |f: Field| -> Result<Vec<String>, DataError> {
                match r.decode(r.required(f)?) {
                    Value::Array(items) if items.is_empty() => Err(r.err(f, "holds no answer")),
                    Value::Array(items) => items
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s),
                            other => {
                                Err(r.err(f, format!("expected text, found {}", json_type(&other))))
                            }
                        })
                        .collect(),
                    Value::String(s) => Ok(vec![s]),
                    other => Err(r.err(f, format!("expected text, found {}", json_type(&other)))),
                }
            };
            let matching = answers(Field::AnswerMatchingBehavior)?;
            if matching.len() != 1 {
                return Err(r.err(
                    Field::AnswerMatchingBehavior,
                    format!(
                        "holds {} answers; an A/B item needs exactly one matching answer",
                        matching.len()
                    ),
                ));
            }
            let not_matching = answers(Field::AnswerNotMatchingBehavior)?;
            let question = r.text(Field::Question)?;
            let several = not_matching.len() > 1;
            return Ok(not_matching
                .into_iter()
                .enumerate()
                .map(|(k, other)| {
                    Record::AbItem(AbItem {
                        id: if several {
                            format!("{id}#{}", k + 1)
                        } else {
                            id.clone()
                        },
                        question: question.clone(),
                        answer_matching_behavior: matching[0].clone(),
                        answer_not_matching_behavior: other,
                    })
                })
                .collect());
        }
        Layout::Feedback => {
            let prompt = r.prompt(Field::Prompt)?;
            let (response, _) = r.response(Field::Response)?;
            let v = r.required(Field::Label)?;
            let label = parse_label(&v).ok_or_else(|| {
                r.err(
                    Field::Label,
                    format!(
                        "expected thumbs up/down (up/down, true/false, 1/0, yes/no), found `{}`",
                        clip(&scalar_text(&v).unwrap_or_else(|| v.to_string()))
                    ),
                )
            })?;
            Record::Feedback(Feedback {
                id,
                prompt,
                response,
                label,
            })
        }
        Layout::Prompts => Record::Prompt(PromptItem {
            id,
            prompt: r.prompt(Field::Prompt)?,
            category: r.opt_text(Field::Category)?,
        }),
    }])
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Strings as they are; numbers and booleans rendered; anything else `None`.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn message(o: &Map<String, Value>) -> Result<Message, String> {
    let role = match o.get("role").or_else(|| o.get("from")) {
        Some(Value::String(r)) => match r.as_str() {
            "human" => "user".to_string(),
            "gpt" => "assistant".to_string(),
            _ => r.clone(),
        },
        Some(v) => {
            return Err(format!(
                "a message's `role` is {}, expected text",
                json_type(v)
            ))
        }
        None => return Err("a message has no `role`".into()),
    };
    let content = match o.get("content").or_else(|| o.get("value")) {
        Some(Value::String(c)) => c.clone(),
        Some(Value::Null) => String::new(),
        Some(v) => {
            return Err(format!(
                "a message's `content` is {}, expected text",
                json_type(v)
            ))
        }
        None => return Err("a message has no `content`".into()),
    };
    Ok(Message { role, content })
}

fn messages(items: &[Value]) -> Result<Vec<Message>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(o) => message(o).map_err(|e| format!("message {}: {e}", i + 1)),
            other => Err(format!(
                "message {} is {}, expected an object {{role, content}}",
                i + 1,
                json_type(other)
            )),
        })
        .collect()
}

/// A single user message becomes a plain text prompt; longer conversations stay messages.
fn normalise_prompt(m: Vec<Message>) -> Prompt {
    if m.len() == 1 && m[0].role == "user" {
        Prompt::Text(m.into_iter().next().map(|x| x.content).unwrap_or_default())
    } else {
        Prompt::Messages(m)
    }
}

/// Parses an HH-RLHF transcript ("\n\nHuman: … \n\nAssistant: …") into messages; `None` when
/// the text is not a transcript (it must start with a `Human:` turn and have an
/// `\n\nAssistant:` turn).
pub fn parse_transcript(s: &str) -> Option<Vec<Message>> {
    const H: &str = "\n\nHuman:";
    const A: &str = "\n\nAssistant:";
    let t = s.trim_start_matches([' ', '\t']);
    let t = if t.starts_with("Human:") {
        format!("\n\n{t}")
    } else {
        t.to_string()
    };
    if !t.starts_with(H) || !t.contains(A) {
        return None;
    }
    let mut out: Vec<Message> = Vec::new();
    let mut rest = t.as_str();
    while !rest.is_empty() {
        let (role, body) = if let Some(b) = rest.strip_prefix(H) {
            ("user", b)
        } else if let Some(b) = rest.strip_prefix(A) {
            ("assistant", b)
        } else {
            break;
        };
        let next = [body.find(H), body.find(A)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len());
        out.push(Message::new(role, body[..next].trim()));
        rest = &body[next..];
    }
    Some(out)
}

fn parse_winner(s: &str) -> Option<Winner> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "a" | "model_a" | "response_a" => Winner::A,
        "b" | "model_b" | "response_b" => Winner::B,
        "tie" | "draw" | "tie (bothbad)" | "both_bad" | "tie_bothbad" => Winner::Tie,
        _ => return None,
    })
}

fn parse_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim() {
            "1" | "1.0" | "true" | "True" => Some(true),
            "0" | "0.0" | "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Parses a thumbs up/down label.
pub fn parse_label(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(_) => parse_flag(v),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "up" | "thumbs up" | "thumbs_up" | "thumbsup" | "👍" | "true" | "1" | "yes"
            | "positive" | "good" | "desirable" => Some(true),
            "down" | "thumbs down" | "thumbs_down" | "thumbsdown" | "👎" | "false" | "0" | "no"
            | "negative" | "bad" | "undesirable" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
