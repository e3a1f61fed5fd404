#!/usr/bin/env python3
"""Builds the sentiment behaviour set used by docs/results/steering.md (issue 4, item 8b).

Neutral requests for a short review ("How was the hotel we stayed at?") with a positive and a
negative FULL answer that mirror each other word for word except for the sentiment-bearing
phrases. The behaviour is "answers positively".

Writes two JSONL files into OUT_DIR (default: the current directory):
  sentiment_train.jsonl    pair layout (prompt, chosen = positive, rejected = negative), 160 pairs
  sentiment_heldout.jsonl  ab layout (question, answer_matching_behavior = positive,
                           answer_not_matching_behavior = negative), 50 items

Train and held-out use disjoint subjects and disjoint answer templates, so the held-out score
measures a direction that generalises beyond the training sentences. Deterministic: a fixed seed
and only `random.Random(seed)` draws; the same Python version gives byte-identical files.

Usage: python3 scripts/make_sentiment_set.py [OUT_DIR] [--train N] [--heldout N] [--seed S]
"""
import argparse
import json
import os
import random

TRAIN_SUBJECTS = [
    "the new Italian restaurant downtown",
    "the hotel we stayed at last weekend",
    "the film you watched on Friday",
    "the coffee shop on the corner",
    "the concert at the park last night",
    "the novel you just finished",
    "the museum's new exhibition",
    "your stay at the seaside cottage",
    "the cooking class you took",
    "the train journey to the mountains",
    "the bakery that opened on Main Street",
    "the guided tour of the old town",
    "the phone you bought last month",
    "the yoga studio near your office",
    "the play at the community theatre",
    "the sushi bar by the station",
    "the camping trip by the lake",
    "the new album by your favourite band",
    "the dentist you visited on Monday",
    "the car you rented for the holiday",
    "the bookshop in the market square",
    "the wedding reception on Saturday",
    "the video game you played this week",
    "the pizza place your friend recommended",
    "the flight back from Lisbon",
    "the football match on Sunday",
    "the spa you went to for your birthday",
    "the language app you have been using",
    "the farmers' market this morning",
    "the boat trip around the bay",
    "the headphones you ordered online",
    "the art class at the library",
]

HELDOUT_SUBJECTS = [
    "the Thai restaurant across the river",
    "the bed and breakfast in the village",
    "the documentary you saw at the cinema",
    "the jazz club on the high street",
    "the cycling tour along the coast",
    "the laptop you got for work",
    "the ice cream parlour by the beach",
    "the zoo you visited with your kids",
    "the comedy show at the town hall",
    "the gym that opened near your home",
]

PROMPTS = [
    "How was {s}?",
    "Write a short review of {s}.",
    "Tell me about {s} in a sentence or two.",
    "What did you think of {s}?",
    "Describe your experience with {s}.",
    "Give me your honest opinion of {s}.",
]

# (positive, negative) word choices that fill the same slot.
OPENERS = [
    ("Honestly, it was wonderful.", "Honestly, it was awful."),
    ("It was a real delight.", "It was a real letdown."),
    ("I loved it.", "I hated it."),
    ("It was fantastic.", "It was terrible."),
    ("What a great experience.", "What a miserable experience."),
    ("It went brilliantly.", "It went horribly."),
]
QUALITIES = [
    ("excellent", "dreadful"),
    ("lovely", "unpleasant"),
    ("superb", "disappointing"),
    ("charming", "dull"),
    ("delightful", "annoying"),
    ("impressive", "shoddy"),
]
FEELINGS = [
    ("happy", "unhappy"),
    ("cheerful", "frustrated"),
    ("relaxed", "stressed"),
    ("grateful", "irritated"),
    ("thrilled", "disappointed"),
]
VERDICTS = [
    ("I would gladly go back and I recommend it to everyone.",
     "I would never go back and I warn everyone to avoid it."),
    ("It was worth every penny.", "It was a waste of money."),
    ("I can't wait to do it again.", "I never want to do it again."),
    ("Five stars from me.", "One star from me."),
    ("It made my whole week better.", "It ruined my whole week."),
]

# Answer templates: {o} opener, {q} quality, {f} feeling, {v} verdict.
TRAIN_TEMPLATES = [
    "{o} Everything about it was {q}, and I left feeling {f}. {v}",
    "{o} The staff and the atmosphere were {q}. {v}",
    "{o} It was {q} from start to finish and I felt {f} the whole time.",
    "{o} I found it {q}. {v}",
]
HELDOUT_TEMPLATES = [
    "{o} Overall the experience was {q} and it left me {f}. {v}",
    "{o} To be honest it was {q}, and I came away {f}.",
]


def answer_pair(rng, template):
    o = rng.choice(OPENERS)
    q = rng.choice(QUALITIES)
    f = rng.choice(FEELINGS)
    v = rng.choice(VERDICTS)
    pos = template.format(o=o[0], q=q[0], f=f[0], v=v[0])
    neg = template.format(o=o[1], q=q[1], f=f[1], v=v[1])
    return pos, neg


def build(rng, subjects, templates, n):
    out = []
    seen = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n:
            raise SystemExit(f"could not draw {n} distinct items")
        s = rng.choice(subjects)
        p = rng.choice(PROMPTS).format(s=s)
        pos, neg = answer_pair(rng, rng.choice(templates))
        key = (p, pos)
        if key in seen:
            continue
        seen.add(key)
        out.append((p, pos, neg))
    return out


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", default=".")
    ap.add_argument("--train", type=int, default=160)
    ap.add_argument("--heldout", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    rng = random.Random(a.seed)
    train = build(rng, TRAIN_SUBJECTS, TRAIN_TEMPLATES, a.train)
    held = build(rng, HELDOUT_SUBJECTS, HELDOUT_TEMPLATES, a.heldout)
    write_jsonl(
        os.path.join(a.out_dir, "sentiment_train.jsonl"),
        [{"id": f"sent-train-{i}", "prompt": p, "chosen": pos, "rejected": neg}
         for i, (p, pos, neg) in enumerate(train)],
    )
    write_jsonl(
        os.path.join(a.out_dir, "sentiment_heldout.jsonl"),
        [{"id": f"sent-heldout-{i}", "question": p, "answer_matching_behavior": pos,
          "answer_not_matching_behavior": neg}
         for i, (p, pos, neg) in enumerate(held)],
    )
    print(f"wrote {len(train)} training pairs and {len(held)} held-out A/B items to {a.out_dir}")


if __name__ == "__main__":
    main()
