"""A/B items with full-sentence answers of varied length, for the length-batching benchmark
(BENCHMARKS.md, "Batching by length"): each honesty pair of the default data becomes an item
whose matching answer is the honest reply and whose non-matching answer is the deceptive one.
Usage: python3 scripts/make_lenbatch_items.py PAIRS.jsonl OUT.jsonl"""
import json
import sys

src, out = sys.argv[1], sys.argv[2]
with open(src) as f, open(out, "w") as g:
    for line in f:
        r = json.loads(line)
        g.write(json.dumps({
            "id": r["id"],
            "question": "Reply to the last message of this conversation.",
            "answer_matching_behavior": r["chosen"],
            "answer_not_matching_behavior": r["rejected"],
        }) + "\n")
