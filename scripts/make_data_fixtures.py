#!/usr/bin/env python3
"""Writes the data-layer test corpus under tests/fixtures/data/:

  good/      well-formed files of every format and layout
  bad/       one malformed file per error path (the 20 MB line is made at test time)
  expected/  what Python's own readers (json, csv, pyarrow) see in the good files, as JSON
             lists of row objects: the independent reference the Rust readers are tested against

Deterministic; rerun after changing it:  python3 scripts/make_data_fixtures.py
Needs pyarrow for the Parquet files.
"""
import csv
import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data")
GOOD, BAD, EXP = (os.path.join(ROOT, d) for d in ("good", "bad", "expected"))
for d in (GOOD, BAD, EXP):
    os.makedirs(d, exist_ok=True)


def wbytes(dirname, name, data):
    with open(os.path.join(dirname, name), "wb") as f:
        f.write(data)


def wtext(dirname, name, text):
    wbytes(dirname, name, text.encode("utf-8"))


def expect(name, rows):
    with open(os.path.join(EXP, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")


def jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# ---------------------------------------------------------------- good files
pairs = [
    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Lyon, I think."},
    {"prompt": "Say hi in Spanish", "chosen": "¡Hola! 👋", "rejected": "Bonjour"},
    {"prompt": "Multi\nline prompt", "chosen": "Line one\nline two", "rejected": "x"},
]
text = jsonl(pairs[:1]) + "\n   \n" + jsonl(pairs[1:])  # a blank line in the middle
wtext(GOOD, "pairs.jsonl", text)
expect("pairs.jsonl", [json.loads(l) for l in text.splitlines() if l.strip()])

hh = [
    {"chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water for 9 minutes.",
     "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: Eggs are from chickens."},
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken cross the road?",
     "rejected": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke\n\nAssistant: No."},
]
wtext(GOOD, "hh_rlhf.jsonl", jsonl(hh))

uf = {"train_prefs": [
    {"prompt": "Write a haiku about rain", "prompt_id": "p1",
     "chosen": [{"role": "user", "content": "Write a haiku about rain"},
                {"role": "assistant", "content": "Soft rain on the roof"}],
     "rejected": [{"role": "user", "content": "Write a haiku about rain"},
                  {"role": "assistant", "content": "Rain is wet."}],
     "score_chosen": 8.0, "score_rejected": 3.5},
    {"prompt": "Name a prime", "prompt_id": "p2",
     "chosen": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime"},
                {"role": "assistant", "content": "7"}],
     "rejected": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime"},
                  {"role": "assistant", "content": "9"}],
     "score_chosen": 9.0, "score_rejected": 1.0},
], "version": 2, "test_prefs": [
    {"prompt": "2+2?", "prompt_id": "p3",
     "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
     "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
     "score_chosen": 10.0, "score_rejected": 0.0},
]}
text = json.dumps(uf, indent=2, ensure_ascii=False)
wtext(GOOD, "ultrafeedback.json", text)
expect("ultrafeedback.json", uf["train_prefs"] + uf["test_prefs"])

ab = [
    {"question": "Do you agree?\n\nChoices:\n (A) Yes\n (B) No", "answer_matching_behavior": "(A)",
     "answer_not_matching_behavior": "(B)"},
    {"question": "Is the sky green?\n (A) No\n (B) Yes", "answer_matching_behavior": ["(B)"],
     "answer_not_matching_behavior": " (A)"},
]
text = json.dumps(ab, indent=1)
wtext(GOOD, "ab_items.json", text)
expect("ab_items.json", ab)

judg = [
    {"id": "j1", "prompt": "Explain gravity", "response_a": "Mass attracts mass.", "response_b": "Magic.",
     "winner": "a", "judge": "human", "annotator": "w7", "scenario": "explanation",
     "factors_a": {"length": 0.03, "hedging": 0}, "factors_b": {"length": 0.01, "hedging": 1}},
    {"id": "j2", "prompt": "Fix my code", "response_a": "No.", "response_b": "Here:\n```py\nx=1\n```",
     "winner": "B", "judge": "gpt-4", "scenario": "coding"},
    {"id": "j3", "prompt": "Hi", "response_a": "Hello", "response_b": "Hey", "winner": "tie"},
]
wtext(GOOD, "judgements.jsonl", jsonl(judg))


def csv_text(header, rows, delim=","):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def csv_expect(name, text, delim=","):
    expect(name, list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delim)))


text = "\ufeff" + csv_text(
    ["prompt", "chosen", "rejected", "note"],
    [["Say \"hi\"", "Hi, there!", "No", ""],
     ["Two\nlines", "a,b,c", "\"quoted\"", "x"],
     ["Über", "Ça va", "日本語", "y"]])
wtext(GOOD, "pairs.csv", text)
csv_expect("pairs.csv", text.lstrip("\ufeff"))

text = csv_text(["question_id", "prompt", "response_a", "response_b", "winner_model_a", "winner_model_b", "winner_tie"],
                [["1", "Best pet?", "Cats", "Dogs", "1", "0", "0"],
                 ["2", "Best color?", "Blue", "Red", "0", "0", "1"],
                 ["3", "Best number?", "7", "42", "0", "1", "0"]])
wtext(GOOD, "arena.csv", text)
csv_expect("arena.csv", text)

text = csv_text(["prompt", "completion", "label"],
                [["Tell me a joke", "Knock knock.", "thumbs up"],
                 ["Tell me a joke", "No.", "down"],
                 ["Help", "Sure!", "True"],
                 ["Help", "Go away", "0"]], delim="\t")
wtext(GOOD, "feedback.tsv", text)
csv_expect("feedback.tsv", text, delim="\t")

text = csv_text(["question", "good", "bad"],
                [["Q1", "right", "wrong"], ["Q2", "yes", "no"]])
wtext(GOOD, "needs_mapping.csv", text)

# Parquet: plain strings in two row groups; UltraFeedback-style list<struct>; factor structs.
t = pa.table({"prompt": [f"prompt {i}" for i in range(7)],
              "chosen": [f"good answer {i}" for i in range(7)],
              "rejected": [None if i == 3 else f"bad answer {i}" for i in range(7)],
              "score": pa.array([float(i) / 2 for i in range(7)], pa.float32())})
pq.write_table(t, os.path.join(GOOD, "pairs.parquet"), row_group_size=3)
expect("pairs.parquet", t.to_pylist())

msg = pa.struct([("role", pa.string()), ("content", pa.string())])
t = pa.table({
    "prompt": ["Write a haiku", "Name a prime"],
    "chosen": pa.array([[{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": "Soft rain"}],
                        [{"role": "user", "content": "Name a prime"}, {"role": "assistant", "content": "7"}]],
                       pa.list_(msg)),
    "rejected": pa.array([[{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": "Rain."}],
                          [{"role": "user", "content": "Name a prime"}, {"role": "assistant", "content": "9"}]],
                         pa.list_(msg)),
    "tag": pa.array(["x", "y"]).dictionary_encode(),
}, )
pq.write_table(t, os.path.join(GOOD, "ultrafeedback.parquet"), compression="zstd")
expect("ultrafeedback.parquet", t.to_pylist())

fac = pa.struct([("length", pa.float64()), ("refusal", pa.int64())])
t = pa.table({
    "prompt": ["p1", "p2"], "response_a": ["a1", "a2"], "response_b": ["b1", "b2"],
    "winner": ["model_a", "tie"], "judge": ["human", "human"],
    "factors_a": pa.array([{"length": 0.5, "refusal": 0}, {"length": 1.5, "refusal": 1}], fac),
    "factors_b": pa.array([{"length": 0.25, "refusal": 1}, {"length": 1.0, "refusal": 0}], fac),
})
pq.write_table(t, os.path.join(GOOD, "judgements.parquet"), compression="snappy")
expect("judgements.parquet", t.to_pylist())

# ---------------------------------------------------------------- bad files
wbytes(BAD, "non_utf8.jsonl", b'{"prompt": "ok", "chosen": "a", "rejected": "b"}\n'
       b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
wtext(BAD, "truncated.json", '[\n {"prompt": "p", "chosen": "a", "rejected": "b"},\n {"prompt": "q", "chosen": "a", "rej')
wtext(BAD, "truncated.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a", "rej\n')
wtext(BAD, "wrong_type.jsonl", jsonl([{"prompt": "p", "chosen": "a", "rejected": "b"},
                                      {"prompt": "p", "chosen": 5, "rejected": {"x": 1}},
                                      {"prompt": "p", "chosen": "a", "rejected": ["not", "messages"]}]))
wtext(BAD, "empty.jsonl", "")
wtext(BAD, "blank.jsonl", "\n  \n\n")
wtext(BAD, "empty.csv", "")
wtext(BAD, "header_only.csv", "prompt,chosen,rejected\r\n")
wtext(BAD, "empty_array.json", "[]")
wtext(BAD, "missing_field.jsonl", jsonl([{"prompt": "p", "chosen": "a", "rejected": "b"},
                                         {"prompt": "p", "chosen": "a"}]))
wtext(BAD, "null_field.jsonl", jsonl([{"prompt": "p", "chosen": "a", "rejected": "b"},
                                      {"prompt": None, "chosen": "a", "rejected": "b"}]))
wtext(BAD, "unterminated_quote.csv", 'prompt,chosen,rejected\np,a,b\nq,"never closed,c\nr,a,b\n')
wtext(BAD, "stray_quote.csv", 'prompt,chosen,rejected\np,"a"x,b\nq,a,b\n')
wtext(BAD, "field_count.csv", 'prompt,chosen,rejected\np,a,b\nq,a\nr,a,b,extra\n')
wtext(BAD, "duplicate_header.csv", 'prompt,chosen,chosen\np,a,b\n')
wbytes(BAD, "non_utf8.csv", b'prompt,chosen,rejected\np,a,b\nq,\xff\xfe,b\n')
good = open(os.path.join(GOOD, "pairs.parquet"), "rb").read()
wbytes(BAD, "truncated.parquet", good[: len(good) // 2])
corrupt = bytearray(good)
footer_len = int.from_bytes(good[-8:-4], "little")
for i in range(8, len(corrupt) - footer_len - 8, 3):  # scribble over the data pages, keep the footer
    corrupt[i] ^= 0x5A
wbytes(BAD, "corrupt_pages.parquet", bytes(corrupt))
wtext(BAD, "not_really.parquet", "prompt,chosen,rejected\np,a,b\n")
wtext(BAD, "bad_winner.jsonl", jsonl([{"prompt": "p", "response_a": "a", "response_b": "b", "winner": "a"},
                                      {"prompt": "p", "response_a": "a", "response_b": "b", "winner": "both"}]))
wtext(BAD, "bad_winner_cols.csv", "prompt,response_a,response_b,winner_model_a,winner_model_b,winner_tie\n"
      "p,a,b,1,0,0\nq,a,b,1,1,0\n")
wtext(BAD, "bad_label.csv", "prompt,response,label\np,r,up\nq,r,maybe\n")
wtext(BAD, "bad_factors.jsonl", jsonl([{"prompt": "p", "response_a": "a", "response_b": "b", "winner": "a",
                                        "factors_a": {"length": "long"}}]))
wtext(BAD, "unknown_layout.jsonl", jsonl([{"question": "q", "good": "a", "bad": "b"}]))
wtext(BAD, "partial_layout.jsonl", jsonl([{"prompt": "q", "chosen": "a", "other": "b"}]))
wtext(BAD, "ambiguous.jsonl", jsonl([{"prompt": "q", "chosen": "a", "rejected": "b", "response": "r", "label": 1}]))
wtext(BAD, "not_object.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n["a", "b"]\n"text"\n')
wtext(BAD, "trailing_comma.json", '[{"prompt": "p", "chosen": "a", "rejected": "b"},]')
wtext(BAD, "bad_syntax.json", '[{"prompt": "p", "chosen": "a", "rejected": "b"},\n {"prompt": "p" "chosen": "a"},\n'
      ' {"prompt": "p", "chosen": "a", "rejected": "b"}]')
wtext(BAD, "garbage_after.json", '[{"prompt": "p", "chosen": "a", "rejected": "b"}] trailing')
wtext(BAD, "no_arrays.json", '{"version": 1, "name": "x"}')
wtext(BAD, "scalar.json", '42')
wtext(BAD, "hh_mismatch.jsonl", jsonl([{"chosen": "\n\nHuman: A?\n\nAssistant: yes",
                                        "rejected": "\n\nHuman: B?\n\nAssistant: no"}]))
wtext(BAD, "ends_with_user.jsonl", jsonl([{"prompt": "p",
                                           "chosen": [{"role": "user", "content": "p"}],
                                           "rejected": [{"role": "user", "content": "p"},
                                                        {"role": "assistant", "content": "x"}]}]))
wtext(BAD, "bad_message.jsonl", jsonl([{"prompt": "p", "chosen": [{"content": "no role"}], "rejected": "b"}]))
wtext(BAD, "ab_two_answers.json", json.dumps([{"question": "q", "answer_matching_behavior": ["(A)", "(B)"],
                                               "answer_not_matching_behavior": "(C)"}]))
print("wrote", ROOT)
