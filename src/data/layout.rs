//! Record layouts (docs/data.md) and column mapping: which columns of a file hold which
//! canonical field. Detection only binds columns whose names are the canonical ones (or a
//! few fixed, documented aliases); anything else needs an explicit [`ColumnMapping`].
//! Never guesses: no layout or several layouts → an error listing the columns.
use super::error::DataError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The kinds of record a file can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `prompt` (optional) / `chosen` / `rejected`.
    Pair,
    /// `prompt` / `response_a` / `response_b` / `winner` (+ judge, annotator, scenario, factors).
    Judgement,
    /// CAA items: `question` / `answer_matching_behavior` / `answer_not_matching_behavior`.
    AbItem,
    /// Unpaired feedback: `prompt` / `response` / `label`.
    Feedback,
    /// Prompts only (`prompt`, optional `category`): red-teaming and evaluation prompt sets.
    Prompts,
}

impl Layout {
    /// All layouts.
    pub const ALL: [Layout; 5] = [
        Layout::Pair,
        Layout::Judgement,
        Layout::AbItem,
        Layout::Feedback,
        Layout::Prompts,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Pair => "pair",
            Layout::Judgement => "judgement",
            Layout::AbItem => "ab",
            Layout::Feedback => "feedback",
            Layout::Prompts => "prompts",
        }
    }

    /// Parses a layout name (`pair`, `judgement`, `ab`, `feedback`, `prompts`, and a few
    /// spelling variants).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "pair" | "pairs" | "preference" => Layout::Pair,
            "judgement" | "judgment" | "judgements" | "judgments" | "pairwise" => Layout::Judgement,
            "ab" | "ab_item" | "abitem" | "caa" => Layout::AbItem,
            "feedback" | "unpaired" | "kto" => Layout::Feedback,
            "prompts" | "prompt" => Layout::Prompts,
            _ => return None,
        })
    }

    /// Fields that must be bound for this layout.
    pub fn required(self) -> &'static [Field] {
        use Field::*;
        match self {
            Layout::Pair => &[Chosen, Rejected],
            Layout::Judgement => &[Prompt, ResponseA, ResponseB],
            Layout::AbItem => &[Question, AnswerMatchingBehavior, AnswerNotMatchingBehavior],
            Layout::Feedback => &[Prompt, Response, Label],
            Layout::Prompts => &[Prompt],
        }
    }

    /// Fields this layout reads when present.
    pub fn optional(self) -> &'static [Field] {
        use Field::*;
        match self {
            Layout::Pair => &[Id, Prompt],
            Layout::Judgement => &[
                Id,
                Winner,
                WinnerModelA,
                WinnerModelB,
                WinnerTie,
                Judge,
                Annotator,
                Scenario,
                FactorsA,
                FactorsB,
            ],
            Layout::AbItem => &[Id],
            Layout::Feedback => &[Id],
            Layout::Prompts => &[Id, Category],
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A canonical field of some layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Field {
    Id,
    Prompt,
    Chosen,
    Rejected,
    ResponseA,
    ResponseB,
    Winner,
    WinnerModelA,
    WinnerModelB,
    WinnerTie,
    Judge,
    Annotator,
    Scenario,
    FactorsA,
    FactorsB,
    Question,
    AnswerMatchingBehavior,
    AnswerNotMatchingBehavior,
    Response,
    Label,
    Category,
}

impl Field {
    /// All fields.
    pub const ALL: [Field; 21] = [
        Field::Id,
        Field::Prompt,
        Field::Chosen,
        Field::Rejected,
        Field::ResponseA,
        Field::ResponseB,
        Field::Winner,
        Field::WinnerModelA,
        Field::WinnerModelB,
        Field::WinnerTie,
        Field::Judge,
        Field::Annotator,
        Field::Scenario,
        Field::FactorsA,
        Field::FactorsB,
        Field::Question,
        Field::AnswerMatchingBehavior,
        Field::AnswerNotMatchingBehavior,
        Field::Response,
        Field::Label,
        Field::Category,
    ];

    /// The canonical column name (`prompt`, `response_a`, `answer_matching_behavior`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Prompt => "prompt",
            Field::Chosen => "chosen",
            Field::Rejected => "rejected",
            Field::ResponseA => "response_a",
            Field::ResponseB => "response_b",
            Field::Winner => "winner",
            Field::WinnerModelA => "winner_model_a",
            Field::WinnerModelB => "winner_model_b",
            Field::WinnerTie => "winner_tie",
            Field::Judge => "judge",
            Field::Annotator => "annotator",
            Field::Scenario => "scenario",
            Field::FactorsA => "factors_a",
            Field::FactorsB => "factors_b",
            Field::Question => "question",
            Field::AnswerMatchingBehavior => "answer_matching_behavior",
            Field::AnswerNotMatchingBehavior => "answer_not_matching_behavior",
            Field::Response => "response",
            Field::Label => "label",
            Field::Category => "category",
        }
    }

    /// Parses a canonical field name.
    pub fn from_name(s: &str) -> Option<Self> {
        Field::ALL.into_iter().find(|f| f.name() == s.trim())
    }

    /// Fixed aliases accepted by detection besides the canonical name (TRL's KTO format calls
    /// the response `completion`).
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::Response => &["completion"],
            _ => &[],
        }
    }

    /// True for fields that identify a layout (their presence rules out `prompts`).
    fn distinctive(self) -> bool {
        !matches!(
            self,
            Field::Id
                | Field::Prompt
                | Field::Category
                | Field::Judge
                | Field::Annotator
                | Field::Scenario
        )
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An explicit mapping from canonical fields to the file's columns, and optionally the layout.
/// Built from `--map prompt=question,chosen=good,rejected=bad` or by the GUI's mapping step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// Forces a layout; `None` detects it from the bound fields.
    pub layout: Option<Layout>,
    /// Canonical field → column name in the file.
    pub columns: BTreeMap<Field, String>,
}

impl ColumnMapping {
    /// Parses `field=column,field=column,...` (canonical field names on the left; a column
    /// name may not contain `,`; `layout=pair` may appear as an entry too).
    pub fn parse(spec: &str) -> Result<Self, DataError> {
        let mut m = ColumnMapping::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(DataError::Mapping(format!(
                    "`{part}` is not of the form field=column (in `{spec}`)"
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            if v.is_empty() {
                return Err(DataError::Mapping(format!("`{part}` names no column")));
            }
            if k == "layout" {
                m.layout = Some(Layout::from_name(v).ok_or_else(|| {
                    DataError::Mapping(format!(
                        "unknown layout `{v}`; expected pair, judgement, ab, feedback or prompts"
                    ))
                })?);
                continue;
            }
            let field = Field::from_name(k).ok_or_else(|| {
                DataError::Mapping(format!(
                    "unknown field `{k}`; fields are {}",
                    Field::ALL
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if m.columns.insert(field, v.to_string()).is_some() {
                return Err(DataError::Mapping(format!("field `{k}` is mapped twice")));
            }
        }
        Ok(m)
    }

    /// True when nothing is mapped and no layout is forced.
    pub fn is_empty(&self) -> bool {
        self.layout.is_none() && self.columns.is_empty()
    }

    /// The mapping as a `--map` specification.
    pub fn to_spec(&self) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|(f, c)| format!("{}={c}", f.name()))
            .collect();
        if let Some(l) = self.layout {
            parts.insert(0, format!("layout={}", l.name()));
        }
        parts.join(",")
    }
}

/// A layout with each of its fields bound to a column of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The layout.
    pub layout: Layout,
    /// Field → column, for every bound field.
    pub fields: BTreeMap<Field, String>,
    /// Columns of the file no field reads.
    pub ignored: Vec<String>,
}

impl Resolved {
    /// The column bound to `f`.
    pub fn column(&self, f: Field) -> Option<&str> {
        self.fields.get(&f).map(String::as_str)
    }
}

/// Binds fields to `columns` (explicit mapping first, then canonical names and fixed aliases)
/// and picks the layout. Errors list the columns and say what is missing or ambiguous.
pub fn resolve(
    path: &Path,
    columns: &[String],
    mapping: &ColumnMapping,
) -> Result<Resolved, DataError> {
    let mut bound: BTreeMap<Field, String> = BTreeMap::new();
    for (f, c) in &mapping.columns {
        if !columns.iter().any(|x| x == c) {
            return Err(DataError::Mapping(format!(
                "`{}={c}`: {} has no column `{c}`; columns found: {}",
                f.name(),
                path.display(),
                columns.join(", ")
            )));
        }
        bound.insert(*f, c.clone());
    }
    let used = |bound: &BTreeMap<Field, String>, c: &str| bound.values().any(|x| x == c);
    for f in Field::ALL {
        if bound.contains_key(&f) {
            continue;
        }
        let names = std::iter::once(f.name()).chain(f.aliases().iter().copied());
        for n in names {
            let hit = columns
                .iter()
                .find(|c| c.as_str() == n)
                .or_else(|| columns.iter().find(|c| c.eq_ignore_ascii_case(n)));
            if let Some(c) = hit {
                if !used(&bound, c) {
                    bound.insert(f, c.clone());
                    break;
                }
            }
        }
    }
    let has = |f: Field| bound.contains_key(&f);
    let winner_ok = has(Field::Winner) || (has(Field::WinnerModelA) && has(Field::WinnerModelB));
    let fits = |l: Layout| -> bool {
        l.required().iter().all(|&f| has(f))
            && match l {
                Layout::Judgement => winner_ok,
                Layout::Prompts => !bound.keys().any(|f| f.distinctive()),
                _ => true,
            }
    };
    let layout = match mapping.layout {
        Some(l) => {
            let mut missing: Vec<&str> = l
                .required()
                .iter()
                .filter(|&&f| !has(f))
                .map(|f| f.name())
                .collect();
            if l == Layout::Judgement && !winner_ok {
                missing.push("winner (or winner_model_a + winner_model_b)");
            }
            if !missing.is_empty() {
                return Err(DataError::Layout {
                    path: path.to_path_buf(),
                    columns: columns.to_vec(),
                    detail: format!(
                        "layout `{l}` needs {} and none is mapped",
                        missing.join(", ")
                    ),
                });
            }
            l
        }
        None => {
            let fitting: Vec<Layout> = Layout::ALL.into_iter().filter(|&l| fits(l)).collect();
            match fitting.as_slice() {
                [l] => *l,
                [] => {
                    return Err(DataError::Layout {
                        path: path.to_path_buf(),
                        columns: columns.to_vec(),
                        detail: near_misses(&bound),
                    })
                }
                several => {
                    return Err(DataError::Layout {
                        path: path.to_path_buf(),
                        columns: columns.to_vec(),
                        detail: format!(
                            "the columns fit several layouts ({}); choose one with --layout",
                            several
                                .iter()
                                .map(|l| l.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })
                }
            }
        }
    };
    let wanted: Vec<Field> = layout
        .required()
        .iter()
        .chain(layout.optional())
        .copied()
        .collect();
    bound.retain(|f, _| wanted.contains(f));
    let ignored = columns
        .iter()
        .filter(|c| !used(&bound, c))
        .cloned()
        .collect();
    Ok(Resolved {
        layout,
        fields: bound,
        ignored,
    })
}

fn near_misses(bound: &BTreeMap<Field, String>) -> String {
    let mut hints = Vec::new();
    for l in Layout::ALL {
        if l == Layout::Prompts {
            continue;
        }
        let req = l.required();
        let have: Vec<&str> = req
            .iter()
            .filter(|f| bound.contains_key(f))
            .map(|f| f.name())
            .collect();
        let missing: Vec<&str> = req
            .iter()
            .filter(|f| !bound.contains_key(f))
            .map(|f| f.name())
            .collect();
        let distinctive_present = req.iter().any(|f| f.distinctive() && bound.contains_key(f))
            || (l == Layout::Judgement && bound.contains_key(&Field::Winner));
        if distinctive_present {
            let mut missing = missing;
            if l == Layout::Judgement
                && !bound.contains_key(&Field::Winner)
                && !(bound.contains_key(&Field::WinnerModelA)
                    && bound.contains_key(&Field::WinnerModelB))
            {
                missing.push("winner");
            }
            if !missing.is_empty() {
                hints.push(format!(
                    "looks like the `{}` layout ({} found) but lacks {}",
                    l.name(),
                    if have.is_empty() {
                        "some fields".to_string()
                    } else {
                        have.join(", ")
                    },
                    missing.join(", ")
                ));
            }
        }
    }
    if hints.is_empty() {
        "the columns match no known layout (pair: prompt/chosen/rejected; judgement: prompt/response_a/response_b/winner; ab: question/answer_matching_behavior/answer_not_matching_behavior; feedback: prompt/response/label; prompts: prompt)".into()
    } else {
        hints.join("; ")
    }
}
