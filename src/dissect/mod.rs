//! Factor-level preference dissection (GAIR-NLP "Dissecting Human and LLM Preferences";
//! PROFILE): explain pairwise preference labels as weights on named factors, per scenario and
//! per judge, with posterior uncertainty.
//!
//! - [`factors`]: factor sources (annotation columns, computed text factors; a trait for SAE
//!   features, steering-vector projections and LLM-judge ratings later) and the per-pair
//!   encoding; [`text`]: the computed factors' definitions; [`sources`]: SAE features
//!   (`sae:DIR`), steering-vector projections (`vector:FILE@LAYER`) and LLM-judge ratings
//!   (`llm:a+b`).
//! - [`posterior`]: Bayesian logistic regression, no intercept, Laplace(0, b) prior.
//! - [`nuts`] (+ [`diagnostics`]): the NUTS sampler with R-hat/ESS; [`laplace`]: MAP + Laplace
//!   approximation for live use.
//! - [`groups`]: annotator groups found by clustering per-annotator weights (linfa k-means),
//!   each refitted with intervals and compared with the pooled fit.
//! - [`top_pairs`]: a fitted factor's pairs ranked by |difference| (factor → its top pairs).
//! - [`fit`]: grouping, K-fold averaging, similarity/agreement, waterfalls, the serialisable
//!   result ([`DissectResult`], written as `report.json`); [`report`]: its Markdown/HTML pages.
//!
//! GUI entry point: run [`run_dissection`] inside `crate::jobs::spawn` (it takes a
//! `ProgressSink` and honours cancel), plot [`DissectOutput::result`], and call
//! [`DissectOutput::waterfall`] for a selected pair.
//!
//! This module must not draw UI or parse command lines.
pub mod causal;
pub mod causal_model;
pub mod causal_report;
pub mod diagnostics;
mod error;
pub mod factors;
pub mod fit;
pub mod groups;
pub mod laplace;
mod logistic_kernel;
pub mod nuts;
pub mod posterior;
pub mod report;
pub mod sources;
pub mod text;
pub mod top_pairs;

pub use error::DissectError;
pub use factors::{
    AnnotationFactors, ComputedFactors, FactorInfo, FactorKind, FactorSource, PairValue,
};
pub use fit::{
    run_dissection, run_dissection_with, DissectConfig, DissectOutput, DissectResult, GroupResult,
    Sampler, Waterfall,
};
pub use groups::{annotator_groups, AnnotatorGroup, GroupingConfig};
pub use nuts::NutsConfig;
pub use top_pairs::FactorPair;
