#!/usr/bin/env python3
"""Write a small sentiment steering demo: chosen (positive) / rejected (negative) pairs to train
on and held-out A/B items with full-sentence answers, for the Steer panel screenshot.

    python3 scripts/steer_demo_data.py OUT_DIR   # writes OUT_DIR/sentiment_pairs.jsonl, sentiment_ab.jsonl
"""
import json
import os
import sys

TOPICS = ["the weather today", "my new job", "the movie last night", "this restaurant",
          "the city I live in", "my holiday", "the book I am reading", "the concert",
          "my neighbours", "the new phone", "the train ride", "the football match",
          "the museum visit", "my garden", "the coffee here", "the hotel room"]
POS = ["I love {t}; it is wonderful and it makes me happy.",
       "Honestly, {t} is fantastic. I am delighted with it.",
       "{T} is great, a real joy. I feel grateful."]
NEG = ["I hate {t}; it is awful and it makes me miserable.",
       "Honestly, {t} is terrible. I am disappointed with it.",
       "{T} is dreadful, a real misery. I feel annoyed."]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    train, held = TOPICS[:12], TOPICS[12:]
    with open(os.path.join(out, "sentiment_pairs.jsonl"), "w") as f:
        for i, t in enumerate(train):
            for k in range(2):
                j = (i + k) % 3
                f.write(json.dumps({"id": f"s{i}_{k}", "prompt": f"Tell me what you think about {t}.",
                                    "chosen": POS[j].format(t=t, T=t[0].upper() + t[1:]),
                                    "rejected": NEG[j].format(t=t, T=t[0].upper() + t[1:])}) + "\n")
    with open(os.path.join(out, "sentiment_ab.jsonl"), "w") as f:
        for i, t in enumerate(held):
            for j in range(2):
                f.write(json.dumps({"id": f"h{i}_{j}", "question": f"Tell me what you think about {t}.",
                                    "answer_matching_behavior": POS[j].format(t=t, T=t[0].upper() + t[1:]),
                                    "answer_not_matching_behavior": NEG[j].format(t=t, T=t[0].upper() + t[1:])}) + "\n")


if __name__ == "__main__":
    main()
