//! Computed response-text factors: each a documented, deterministic function of one response.
//!
//! These are cheap surface properties (no model calls). Each is a per-response value f(r);
//! the dissection feature of a pair is built from f(A) and f(B) in `factors`.
//! Must not depend on prompts, labels or other responses.

/// Phrases marking hedged or uncertain language (matched case-insensitively on word boundaries).
pub const HEDGES: &[&str] = &[
    "might",
    "may",
    "perhaps",
    "possibly",
    "probably",
    "likely",
    "unlikely",
    "i think",
    "i believe",
    "it seems",
    "seems",
    "appears",
    "could be",
    "not sure",
    "i'm not sure",
    "generally",
    "typically",
    "usually",
    "often",
    "somewhat",
    "arguably",
    "it depends",
    "in some cases",
    "to some extent",
    "roughly",
    "approximately",
];

/// Phrases marking a refusal to help.
pub const REFUSALS: &[&str] = &[
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i won't",
    "i will not",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "i can't do that",
    "i cannot do that",
    "i must decline",
    "i can't comply",
    "i cannot comply",
    "as an ai",
    "i'm not comfortable",
    "i am not comfortable",
    "i don't feel comfortable",
    "not appropriate for me",
];

/// Phrases marking an apology.
pub const APOLOGIES: &[&str] = &["sorry", "apologize", "apologise", "apologies", "my apology"];

/// Lower-cased words (letters, digits and apostrophes).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('’', "'"))
        .collect()
}

/// Number of words.
pub fn word_count(text: &str) -> usize {
    words(text).len()
}

/// Occurrences of any of `phrases` as whole-word sequences (case-insensitive).
pub fn phrase_count(text: &str, phrases: &[&str]) -> usize {
    let w = words(text);
    let mut n = 0;
    for ph in phrases {
        let pw: Vec<&str> = ph.split(' ').collect();
        if pw.is_empty() || pw.len() > w.len() {
            continue;
        }
        n += w
            .windows(pw.len())
            .filter(|win| win.iter().zip(&pw).all(|(a, b)| a == b))
            .count();
    }
    n
}

/// Markdown list items: lines whose first non-space characters are `-`, `*`, `+` or `•`
/// followed by a space, or a number followed by `.` or `)` and a space.
pub fn list_items(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix(['-', '*', '+', '•']) {
                return rest.starts_with(' ');
            }
            let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
            digits > 0 && {
                let rest = &t[digits..];
                rest.starts_with(". ") || rest.starts_with(") ")
            }
        })
        .count()
}

/// Markdown ATX headers: lines starting with 1–6 `#` and a space.
pub fn headers(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            let h = t.chars().take_while(|&c| c == '#').count();
            (1..=6).contains(&h) && t[h..].starts_with(' ')
        })
        .count()
}

/// Fenced code blocks: pairs of lines starting with ``` (an unclosed fence counts as one).
pub fn code_blocks(text: &str) -> usize {
    let fences = text
        .lines()
        .filter(|l| l.trim_start().starts_with("```"))
        .count();
    fences.div_ceil(2)
}

/// Bold spans: `**…**` or `__…__` pairs on one line.
pub fn bold_spans(text: &str) -> usize {
    text.lines()
        .map(|l| l.matches("**").count() / 2 + l.matches("__").count() / 2)
        .sum()
}

/// Questions asked: sentences ending with `?`.
pub fn questions(text: &str) -> usize {
    text.matches('?').count()
}

/// Exclamation marks.
pub fn exclamations(text: &str) -> usize {
    text.matches('!').count()
}

/// Links: occurrences of `http://` or `https://`.
pub fn links(text: &str) -> usize {
    text.matches("http://").count() + text.matches("https://").count()
}

/// Emoji: characters in the Unicode emoji/pictograph blocks (U+1F300–U+1FAFF, U+2600–U+27BF).
pub fn emoji(text: &str) -> usize {
    text.chars()
        .filter(|&c| {
            let u = c as u32;
            (0x1F300..=0x1FAFF).contains(&u) || (0x2600..=0x27BF).contains(&u)
        })
        .count()
}

/// Syllables in an English word by vowel groups (y counts as a vowel), minus a silent final
/// `e`, at least 1.
pub fn syllables(word: &str) -> usize {
    let w: Vec<char> = word
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    if w.is_empty() {
        return 0;
    }
    let vowel = |c: char| "aeiouy".contains(c);
    let mut n = 0usize;
    let mut prev = false;
    for &c in &w {
        let v = vowel(c);
        if v && !prev {
            n += 1;
        }
        prev = v;
    }
    if w.len() > 2 && w[w.len() - 1] == 'e' && w[w.len() - 2] != 'l' && !vowel(w[w.len() - 2]) {
        n = n.saturating_sub(1);
    }
    n.max(1)
}

/// Sentences: runs of text ended by `.`, `!` or `?` (a final unterminated run counts), ≥ 1.
pub fn sentences(text: &str) -> usize {
    let mut n = 0;
    let mut in_sentence = false;
    for c in text.chars() {
        if matches!(c, '.' | '!' | '?') {
            if in_sentence {
                n += 1;
            }
            in_sentence = false;
        } else if c.is_alphanumeric() {
            in_sentence = true;
        }
    }
    (n + usize::from(in_sentence)).max(1)
}

/// Flesch reading ease: 206.835 − 1.015·(words/sentences) − 84.6·(syllables/words).
/// Higher is easier. 0 words → 0.
pub fn flesch_reading_ease(text: &str) -> f64 {
    let w = words(text);
    if w.is_empty() {
        return 0.0;
    }
    let syl: usize = w.iter().map(|x| syllables(x)).sum();
    let nw = w.len() as f64;
    206.835 - 1.015 * (nw / sentences(text) as f64) - 84.6 * (syl as f64 / nw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_structure_is_counted() {
        let t = "# Title\nSome **bold** and __more__.\n- one\n* two\n3. three\n10) ten\n-not a list\n```rust\nfn x(){}\n```\n";
        assert_eq!(headers(t), 1);
        assert_eq!(list_items(t), 4);
        assert_eq!(code_blocks(t), 1);
        assert_eq!(bold_spans(t), 2);
        assert_eq!(headers("#hashtag\n####### seven"), 0);
    }

    #[test]
    fn phrases_match_whole_words() {
        assert_eq!(phrase_count("I think it may rain. Mayday!", HEDGES), 2);
        assert_eq!(
            phrase_count("I'm sorry, but I can't help with that.", REFUSALS),
            1
        );
        assert_eq!(phrase_count("I’m sorry", APOLOGIES), 1);
        assert_eq!(phrase_count("Sorrowful", APOLOGIES), 0);
    }

    #[test]
    fn readability_matches_hand_computation() {
        // "The cat sat on the mat." 6 words, 1 sentence, 6 syllables:
        // 206.835 - 1.015*6 - 84.6*1 = 116.145
        assert!((flesch_reading_ease("The cat sat on the mat.") - 116.145).abs() < 1e-9);
        assert_eq!(syllables("readability"), 5);
        assert_eq!(syllables("table"), 2);
        assert_eq!(syllables("make"), 1);
        assert_eq!(sentences("One. Two! Three"), 3);
        assert_eq!(emoji("ok 👍 ☀"), 2);
        assert_eq!(questions("Why? How?"), 2);
    }
}
