//! Feature interpretation: top-activating pairs (top 5% of |activation|, swapped so the feature
//! reads from A's side), distinctive n-grams of their A vs B sides, and — when a text generator
//! is available — an LLM description with its fidelity (correlation between activation and the
//! generator's A/B judgement of the description on held-out pairs).
use super::error::SaeError;
use crate::numeric::{normal_two_sided_p, pearson_or_zero, top_abs_indices};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One top-activating pair, oriented so the activation is positive (the feature's side is A).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopPair {
    /// Row index in file order.
    pub index: usize,
    /// The pair id.
    pub id: String,
    /// |activation|.
    pub activation: f64,
    /// True when A and B were swapped (the raw activation was negative).
    pub swapped: bool,
    /// The side the feature points to.
    pub a: String,
    /// The other side.
    pub b: String,
}

/// Indices of the pairs in the top `fraction` of |act| (at least one, non-zero activations
/// only), largest first.
pub fn top_indices(act: &[f64], fraction: f64) -> Vec<usize> {
    let n = ((act.len() as f64 * fraction).ceil() as usize).max(1);
    top_abs_indices(act, n, |a| a != 0.0)
}

/// The top pairs of one feature, oriented to read from A's side.
pub fn top_pairs(
    act: &[f64],
    ids: &[String],
    a: &[String],
    b: &[String],
    fraction: f64,
) -> Vec<TopPair> {
    top_indices(act, fraction)
        .into_iter()
        .map(|i| {
            let swapped = act[i] < 0.0;
            let (x, y) = if swapped {
                (&b[i], &a[i])
            } else {
                (&a[i], &b[i])
            };
            TopPair {
                index: i,
                id: ids[i].clone(),
                activation: act[i].abs(),
                swapped,
                a: x.clone(),
                b: y.clone(),
            }
        })
        .collect()
}

fn ngrams(text: &str, max_n: usize) -> HashSet<String> {
    let words: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    let mut out = HashSet::new();
    for n in 1..=max_n {
        for w in words.windows(n) {
            out.insert(w.join(" "));
        }
    }
    // Non-alphanumeric marks that carry meaning in responses (lists, emphasis, emoji).
    for c in text.chars() {
        if !c.is_alphanumeric() && !c.is_whitespace() && !c.is_ascii_punctuation()
            || "#*-`".contains(c)
        {
            out.insert(c.to_string());
        }
    }
    out
}

/// A distinctive n-gram with its document frequencies on the two sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NGram {
    /// The n-gram (lower-cased words joined by spaces, or a single symbol).
    pub text: String,
    /// Smoothed log-odds of appearing in an A side vs a B side.
    pub log_odds: f64,
    /// A sides containing it.
    pub in_a: usize,
    /// B sides containing it.
    pub in_b: usize,
}

/// The n-grams (1–2 words, plus symbols) most over-represented in the A sides of `pairs` vs
/// their B sides, and vice versa: `(toward A, toward B)`, `top` each, requiring ≥ 2 documents.
pub fn distinctive_ngrams(pairs: &[TopPair], top: usize) -> (Vec<NGram>, Vec<NGram>) {
    let mut ca: HashMap<String, usize> = HashMap::new();
    let mut cb: HashMap<String, usize> = HashMap::new();
    for p in pairs {
        for g in ngrams(&p.a, 2) {
            *ca.entry(g).or_default() += 1;
        }
        for g in ngrams(&p.b, 2) {
            *cb.entry(g).or_default() += 1;
        }
    }
    let n = pairs.len() as f64;
    let keys: HashSet<&String> = ca.keys().chain(cb.keys()).collect();
    let mut all: Vec<NGram> = keys
        .into_iter()
        .map(|k| {
            let (x, y) = (*ca.get(k).unwrap_or(&0), *cb.get(k).unwrap_or(&0));
            let pa = (x as f64 + 0.5) / (n + 1.0);
            let pb = (y as f64 + 0.5) / (n + 1.0);
            let lo = (pa / (1.0 - pa)).ln() - (pb / (1.0 - pb)).ln();
            NGram {
                text: k.clone(),
                log_odds: lo,
                in_a: x,
                in_b: y,
            }
        })
        .collect();
    all.sort_by(|p, q| q.log_odds.total_cmp(&p.log_odds).then(p.text.cmp(&q.text)));
    let toward_a: Vec<NGram> = all
        .iter()
        .filter(|g| g.in_a >= 2 && g.log_odds > 0.0)
        .take(top)
        .cloned()
        .collect();
    let toward_b: Vec<NGram> = all
        .iter()
        .rev()
        .filter(|g| g.in_b >= 2 && g.log_odds < 0.0)
        .take(top)
        .cloned()
        .collect();
    (toward_a, toward_b)
}

/// A local text generator used to describe and judge features (the loaded LLM).
pub trait TextGenerator {
    /// Greedy completion of a chat prompt (one user turn), at most `max_tokens` new tokens.
    fn complete(&self, user: &str, max_tokens: usize) -> Result<String, SaeError>;
}

/// The description prompt (kept in the repo: `assets/prompts/sae_describe.txt`).
pub const DESCRIBE_TEMPLATE: &str = include_str!("../../assets/prompts/sae_describe.txt");
/// The A/B judgement prompt (`assets/prompts/sae_judge.txt`).
pub const JUDGE_TEMPLATE: &str = include_str!("../../assets/prompts/sae_judge.txt");

fn clip(s: &str, n: usize) -> String {
    let t: String = s.chars().take(n).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// Asks the generator for a short description of what distinguishes A from B in `pairs`.
pub fn describe(
    gen: &dyn TextGenerator,
    pairs: &[TopPair],
    max_examples: usize,
) -> Result<String, SaeError> {
    let mut ex = String::new();
    for (i, p) in pairs.iter().take(max_examples).enumerate() {
        ex.push_str(&format!(
            "Pair {}\nA: {}\nB: {}\n\n",
            i + 1,
            clip(&p.a, 400),
            clip(&p.b, 400)
        ));
    }
    let prompt = DESCRIBE_TEMPLATE.replace("{examples}", ex.trim_end());
    let out = gen.complete(&prompt, 40)?;
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .trim_start_matches("- ");
    Ok(line.to_string())
}

/// The generator's judgement of which side shows more of `description`: +1 (A), −1 (B), 0.
pub fn judge(
    gen: &dyn TextGenerator,
    description: &str,
    a: &str,
    b: &str,
) -> Result<f64, SaeError> {
    let prompt = JUDGE_TEMPLATE
        .replace("{description}", description)
        .replace("{a}", &clip(a, 500))
        .replace("{b}", &clip(b, 500));
    let out = gen.complete(&prompt, 4)?;
    let t = out
        .trim()
        .trim_start_matches(['(', '"', '\''])
        .to_uppercase();
    Ok(if t.starts_with('A') {
        1.0
    } else if t.starts_with('B') {
        -1.0
    } else {
        0.0
    })
}

/// A feature's description and how well it predicts activations on held-out pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Pearson r between activation and the judgement (+1 A, −1 B, 0 neither).
    pub r: f64,
    /// Two-sided p-value (Fisher z).
    pub p: f64,
    /// Held-out pairs judged.
    pub n: usize,
    /// True when p ≤ the Bonferroni level.
    pub kept: bool,
}

/// Fidelity of a description: judges `pairs` (activation, A, B) and correlates; `alpha` is
/// the per-feature level (0.05 / M).
pub fn fidelity(
    gen: &dyn TextGenerator,
    description: &str,
    pairs: &[(f64, &str, &str)],
    alpha: f64,
) -> Result<Fidelity, SaeError> {
    let mut act = Vec::with_capacity(pairs.len());
    let mut j = Vec::with_capacity(pairs.len());
    for (x, a, b) in pairs {
        act.push(*x);
        j.push(judge(gen, description, a, b)?);
    }
    Ok(correlation_test(&act, &j, alpha))
}

/// Pearson r with a Fisher-z two-sided p-value, and whether p ≤ alpha (and r > 0).
pub fn correlation_test(x: &[f64], y: &[f64], alpha: f64) -> Fidelity {
    let n = x.len();
    let r = pearson_or_zero(x, y);
    let p = if n > 3 {
        let z = r.clamp(-0.999_999, 0.999_999).atanh() * ((n - 3) as f64).sqrt();
        normal_two_sided_p(z)
    } else {
        1.0
    };
    Fidelity {
        r,
        p,
        n,
        kept: r > 0.0 && p <= alpha,
    }
}

/// A byte range of a text and whether it differs from the other text of its pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Byte range in the text (on char boundaries).
    pub range: std::ops::Range<usize>,
    /// True when these words are not in the longest common word subsequence of the pair.
    pub changed: bool,
}

/// Splits `s` into words with their trailing whitespace (byte ranges covering all of `s`).
fn word_ranges(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(start..i);
            start = i;
            in_space = false;
        }
    }
    if start < s.len() {
        out.push(start..s.len());
    }
    out
}

/// Word-level diff of a pair for display: the spans of `a` and of `b`, adjacent words of the
/// same kind merged, `changed` marking words outside their longest common subsequence
/// (compared without surrounding whitespace). Texts longer than 2 000 words each are compared
/// by their first 2 000 words (the rest is marked changed).
pub fn diff_spans(a: &str, b: &str) -> (Vec<Span>, Vec<Span>) {
    const MAX: usize = 2000;
    let (ra, rb) = (word_ranges(a), word_ranges(b));
    let wa: Vec<&str> = ra.iter().take(MAX).map(|r| a[r.clone()].trim()).collect();
    let wb: Vec<&str> = rb.iter().take(MAX).map(|r| b[r.clone()].trim()).collect();
    let (n, m) = (wa.len(), wb.len());
    // lcs[i][j] = LCS length of wa[i..], wb[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * (m + 1) + j] = if wa[i] == wb[j] {
                lcs[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
            };
        }
    }
    let mut same_a = vec![false; ra.len()];
    let mut same_b = vec![false; rb.len()];
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if wa[i] == wb[j] {
            same_a[i] = true;
            same_b[j] = true;
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let merge = |ranges: &[std::ops::Range<usize>], same: &[bool]| -> Vec<Span> {
        let mut out: Vec<Span> = Vec::new();
        for (r, s) in ranges.iter().zip(same) {
            match out.last_mut() {
                Some(last) if last.changed != *s => last.range.end = r.end,
                _ => out.push(Span {
                    range: r.clone(),
                    changed: !s,
                }),
            }
        }
        out
    };
    (merge(&ra, &same_a), merge(&rb, &same_b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_is_pearson_and_zero_when_undefined() {
        let r = |x: &[f64], y: &[f64]| correlation_test(x, y, 0.05).r;
        assert!((r(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.9986).abs() < 1e-3);
        assert!((r(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(r(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn top_pairs_are_oriented_and_sized() {
        let act = [0.0, -3.0, 1.0, 2.0, 0.5, 0.0, 0.1, 0.2, 0.3, 0.4];
        let ids: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        let a: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        let b: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
        let t = top_pairs(&act, &ids, &a, &b, 0.2);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].index, t[0].swapped, t[0].a.as_str(), t[0].activation),
            (1, true, "b1", 3.0)
        );
        assert_eq!(
            (t[1].index, t[1].swapped, t[1].a.as_str()),
            (3, false, "a3")
        );
        assert_eq!(top_indices(&[0.0, 0.0], 0.05), Vec::<usize>::new());
    }

    #[test]
    fn ngrams_find_the_planted_phrase() {
        let pairs: Vec<TopPair> = (0..6)
            .map(|i| TopPair {
                index: i,
                id: i.to_string(),
                activation: 1.0,
                swapped: false,
                a: format!("I'm sorry, I cannot help with item {i}."),
                b: format!("Sure, here is item {i}: 1. step one"),
            })
            .collect();
        let (ta, tb) = distinctive_ngrams(&pairs, 5);
        assert!(ta.iter().any(|g| g.text == "cannot help"), "{ta:?}");
        assert!(tb.iter().any(|g| g.text == "sure"), "{tb:?}");
        assert!(ta.iter().all(|g| g.text != "item"));
    }

    #[test]
    fn correlation_test_levels() {
        let x: Vec<f64> = (0..50).map(|i| i as f64).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| if *v > 25.0 { 1.0 } else { -1.0 })
            .collect();
        let f = correlation_test(&x, &y, 0.05 / 32.0);
        assert!(f.kept && f.r > 0.8 && f.p < 1e-6);
        let g = correlation_test(&x, &y.iter().map(|v| -v).collect::<Vec<_>>(), 0.05);
        assert!(!g.kept);
    }

    #[test]
    fn diff_spans_mark_the_differing_words() {
        let (a, b) = diff_spans(
            "I can help.  Here is how:\n- step",
            "Sorry, I can not help. Here is why",
        );
        let text = |s: &str, sp: &[Span]| -> Vec<(String, bool)> {
            sp.iter()
                .map(|x| (s[x.range.clone()].to_string(), x.changed))
                .collect()
        };
        let ta = text("I can help.  Here is how:\n- step", &a);
        assert_eq!(
            ta,
            vec![
                ("I can help.  Here is ".to_string(), false),
                ("how:\n- step".to_string(), true),
            ]
        );
        let tb = text("Sorry, I can not help. Here is why", &b);
        let want = [
            ("Sorry, ", true),
            ("I can ", false),
            ("not ", true),
            ("help. Here is ", false),
            ("why", true),
        ];
        assert_eq!(
            tb,
            want.iter()
                .map(|(s, c)| (s.to_string(), *c))
                .collect::<Vec<_>>()
        );
        // Spans tile the text.
        assert_eq!(a.last().unwrap().range.end, 32);
        assert!(a.windows(2).all(|w| w[0].range.end == w[1].range.start));
        let (x, y) = diff_spans("", "same");
        assert!(x.is_empty());
        assert_eq!(
            y,
            vec![Span {
                range: 0..4,
                changed: true
            }]
        );
    }
}
