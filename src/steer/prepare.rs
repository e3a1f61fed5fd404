//! Token preparation for steering: turns data records (pairs, A/B items, feedback) into the
//! token-id inputs of the trainers and the behaviour score, with the model's chat template.
//! Shared by the CLI and the app so both feed the algorithms the same ids.
//!
//! Only formatting and tokenization here: no forward passes, no training, no file reading.
use super::bipo::{FeedbackTokens, PairTokens, TrainData};
use super::collect::{Completion, Contrast};
use super::error::{Result, SteerError};
use super::eval::AbTokens;
use super::objective::Objective;
use crate::data::{AbItem, Prompt, Record};
use crate::model::TextTokenizer;

/// Chat-formatted prompt ids (the prompt as user turn(s) plus the assistant header). A model
/// without a chat template (a base model such as Gemma 3 270M) gets the plain prompt text and
/// a newline, with the tokenizer's own special tokens (BOS).
pub fn prompt_ids(tok: &TextTokenizer, prompt: &Prompt) -> Result<Vec<u32>> {
    if !tok.has_chat_template() {
        return Ok(tok.encode(&format!("{}\n", prompt.to_plain()), true)?);
    }
    let text = tok.apply_chat_template(&prompt.to_messages(), true)?;
    Ok(tok.encode(&text, false)?)
}

/// Ids of a response text (no special tokens); `what` names the record in the error when the
/// text tokenizes to nothing.
pub fn text_ids(tok: &TextTokenizer, text: &str, what: &str) -> Result<Vec<u32>> {
    let ids = tok.encode(text, false)?;
    if ids.is_empty() {
        return Err(SteerError::Invalid(format!(
            "{what}: the text is empty after tokenization"
        )));
    }
    Ok(ids)
}

/// A/B items as token ids: chat-formatted question, each answer string as the response.
pub fn ab_tokens(tok: &TextTokenizer, items: &[AbItem]) -> Result<Vec<AbTokens>> {
    items
        .iter()
        .map(|it| {
            let p = prompt_ids(tok, &Prompt::Text(it.question.clone()))?;
            let what = format!("item {}", it.id);
            let m = text_ids(tok, &it.answer_matching_behavior, &what)?;
            let n = text_ids(tok, &it.answer_not_matching_behavior, &what)?;
            Ok(AbTokens {
                matching: Completion {
                    prompt: p.clone(),
                    response: m,
                },
                non_matching: Completion {
                    prompt: p,
                    response: n,
                },
            })
        })
        .collect()
}

/// Held-out behaviour items from any records: A/B items as they are, and preference pairs
/// (or judgements with a winner) as items whose matching answer is the preferred response.
/// Errors when the records hold neither.
pub fn eval_items(tok: &TextTokenizer, records: &[Record]) -> Result<Vec<AbTokens>> {
    let ab: Vec<AbItem> = records
        .iter()
        .filter_map(|r| match r {
            Record::AbItem(x) => Some(x.clone()),
            _ => None,
        })
        .collect();
    if !ab.is_empty() {
        return ab_tokens(tok, &ab);
    }
    let pairs = pair_tokens(tok, records)?;
    Ok(pairs
        .into_iter()
        .map(|p| AbTokens {
            matching: Completion {
                prompt: p.prompt.clone(),
                response: p.chosen,
            },
            non_matching: Completion {
                prompt: p.prompt,
                response: p.rejected,
            },
        })
        .collect())
}

/// Preference pairs as token ids: `pair` records and judgements with a winner (ties dropped);
/// when there are none, A/B items as pairs (matching answer preferred).
pub fn pair_tokens(tok: &TextTokenizer, records: &[Record]) -> Result<Vec<PairTokens>> {
    let pairs: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Pair(p) => Some(p.clone()),
            Record::Judgement(j) => j.to_pair(),
            _ => None,
        })
        .collect();
    if !pairs.is_empty() {
        return pairs
            .iter()
            .map(|p| {
                Ok(PairTokens {
                    prompt: prompt_ids(tok, &p.prompt)?,
                    chosen: text_ids(tok, &p.chosen, &format!("record {} chosen", p.id))?,
                    rejected: text_ids(tok, &p.rejected, &format!("record {} rejected", p.id))?,
                })
            })
            .collect();
    }
    let ab: Vec<AbItem> = records
        .iter()
        .filter_map(|r| match r {
            Record::AbItem(x) => Some(x.clone()),
            _ => None,
        })
        .collect();
    if ab.is_empty() {
        return Err(SteerError::Invalid(
            "no chosen/rejected pairs or A/B items to train on".into(),
        ));
    }
    Ok(ab_tokens(tok, &ab)?
        .into_iter()
        .map(|x| PairTokens {
            prompt: x.matching.prompt,
            chosen: x.matching.response,
            rejected: x.non_matching.response,
        })
        .collect())
}

/// BiPO training data for `objective`: thumbs-up/down feedback for `bco`, pairs otherwise.
pub fn train_data(
    tok: &TextTokenizer,
    records: &[Record],
    objective: Objective,
) -> Result<TrainData> {
    if !objective.is_unpaired() {
        return Ok(TrainData::Pairs(pair_tokens(tok, records)?));
    }
    let fb: Vec<FeedbackTokens> = records
        .iter()
        .filter_map(|r| match r {
            Record::Feedback(f) => Some(f),
            _ => None,
        })
        .map(|f| {
            Ok(FeedbackTokens {
                completion: Completion {
                    prompt: prompt_ids(tok, &f.prompt)?,
                    response: text_ids(tok, &f.response, &format!("record {}", f.id))?,
                },
                label: f.label,
            })
        })
        .collect::<Result<_>>()?;
    if fb.is_empty() {
        return Err(SteerError::Invalid(
            "objective bco needs thumbs-up/down feedback (prompt, response, label)".into(),
        ));
    }
    Ok(TrainData::Feedback(fb))
}

/// Index of the answer-letter token: for answers like `(A)` the token that ends `(A`,
/// otherwise the answer's last token.
pub fn letter_position(tok: &TextTokenizer, prompt_len: usize, answer: &str) -> Result<usize> {
    let a = answer.trim();
    let stem = a.strip_suffix(')').unwrap_or(a);
    let is_letter = stem.trim_start_matches('(').chars().count() == 1;
    let part = if is_letter { stem } else { a };
    let n = tok.encode(part, false)?.len().max(1);
    Ok(prompt_len + n - 1)
}

/// Contrast pairs for CAA (`caa = true`: A/B items read at the answer letter) or PCA (last
/// token); chosen/rejected pairs are read at their last token either way.
pub fn contrasts(tok: &TextTokenizer, records: &[Record], caa: bool) -> Result<Vec<Contrast>> {
    let ab: Vec<&AbItem> = records
        .iter()
        .filter_map(|r| match r {
            Record::AbItem(x) => Some(x),
            _ => None,
        })
        .collect();
    if !ab.is_empty() {
        return ab
            .iter()
            .map(|it| {
                let p = prompt_ids(tok, &Prompt::Text(it.question.clone()))?;
                let mut pos = p.clone();
                pos.extend(text_ids(tok, &it.answer_matching_behavior, &it.id)?);
                let mut neg = p.clone();
                neg.extend(text_ids(tok, &it.answer_not_matching_behavior, &it.id)?);
                let (pa, na) = if caa {
                    (
                        letter_position(tok, p.len(), &it.answer_matching_behavior)?,
                        letter_position(tok, p.len(), &it.answer_not_matching_behavior)?,
                    )
                } else {
                    (pos.len() - 1, neg.len() - 1)
                };
                Ok(Contrast {
                    positive: pos,
                    positive_at: pa,
                    negative: neg,
                    negative_at: na,
                })
            })
            .collect();
    }
    Ok(pair_tokens(tok, records)?
        .into_iter()
        .map(|p| {
            let mut pos = p.prompt.clone();
            pos.extend(&p.chosen);
            let mut neg = p.prompt;
            neg.extend(&p.rejected);
            Contrast {
                positive_at: pos.len() - 1,
                negative_at: neg.len() - 1,
                positive: pos,
                negative: neg,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Feedback, PreferencePair};
    use std::path::Path;

    fn tok() -> TextTokenizer {
        TextTokenizer::from_hf_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_hf"),
        )
        .unwrap()
    }

    fn ab(id: &str, q: &str, m: &str, n: &str) -> Record {
        Record::AbItem(AbItem {
            id: id.into(),
            question: q.into(),
            answer_matching_behavior: m.into(),
            answer_not_matching_behavior: n.into(),
        })
    }

    fn pair(id: &str, p: &str, c: &str, r: &str) -> Record {
        Record::Pair(PreferencePair {
            id: id.into(),
            prompt: Prompt::Text(p.into()),
            chosen: c.into(),
            rejected: r.into(),
            extra: Default::default(),
        })
    }

    #[test]
    fn caa_reads_the_answer_letter_and_pca_the_last_token() {
        let t = tok();
        let recs = vec![ab("1", "Pick one: (A) yes (B) no", "(A)", "(B)")];
        let caa = contrasts(&t, &recs, true).unwrap();
        let pca = contrasts(&t, &recs, false).unwrap();
        let c = &caa[0];
        // The token read is the one that completes "(A" / "(B" (decoded independently).
        let upto = t.decode(&c.positive[..=c.positive_at], false).unwrap();
        assert!(upto.ends_with("(A"), "{upto:?}");
        let upto = t.decode(&c.negative[..=c.negative_at], false).unwrap();
        assert!(upto.ends_with("(B"), "{upto:?}");
        assert_eq!(pca[0].positive_at, pca[0].positive.len() - 1);
        assert_eq!(pca[0].positive, c.positive);
        // The prompt is the chat-formatted question.
        let p = prompt_ids(&t, &Prompt::Text("Pick one: (A) yes (B) no".into())).unwrap();
        assert_eq!(&c.positive[..p.len()], &p[..]);
    }

    #[test]
    fn pairs_and_ab_items_convert_both_ways() {
        let t = tok();
        let pairs = vec![pair("p1", "Say hi", "hello there", "go away")];
        let items = eval_items(&t, &pairs).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            t.decode(&items[0].matching.response, false).unwrap(),
            "hello there"
        );
        assert_eq!(
            t.decode(&items[0].non_matching.response, false).unwrap(),
            "go away"
        );
        let abs = vec![ab("a1", "Q?", "yes indeed", "no way")];
        let p = pair_tokens(&t, &abs).unwrap();
        assert_eq!(t.decode(&p[0].chosen, false).unwrap(), "yes indeed");
        assert_eq!(t.decode(&p[0].rejected, false).unwrap(), "no way");
        match train_data(&t, &pairs, Objective::Dpo).unwrap() {
            TrainData::Pairs(v) => assert_eq!(v.len(), 1),
            TrainData::Feedback(_) => panic!("pairs expected"),
        }
    }

    #[test]
    fn wrong_record_kinds_and_empty_texts_are_clear_errors() {
        let t = tok();
        let fb = vec![Record::Feedback(Feedback {
            id: "f1".into(),
            prompt: Prompt::Text("Q".into()),
            response: "fine".into(),
            label: true,
        })];
        let e = pair_tokens(&t, &fb).unwrap_err().to_string();
        assert!(e.contains("no chosen/rejected pairs"), "{e}");
        let e = train_data(&t, &[pair("p", "Q", "a", "b")], Objective::Bco)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bco"), "{e}");
        assert!(matches!(
            train_data(&t, &fb, Objective::Bco).unwrap(),
            TrainData::Feedback(ref v) if v.len() == 1 && v[0].label
        ));
        let e = pair_tokens(&t, &[pair("p7", "Q", "", "b")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("record p7 chosen"), "{e}");
    }
}
