#!/usr/bin/env python3
"""Reference fixtures for steerlab's SAE module tests.

minilm_reference.json: all-MiniLM-L6-v2 sentence embeddings computed with Hugging Face
`transformers` (mean pooling over the attention mask, then L2 normalisation — exactly what
sentence-transformers' pipeline for this model does), on a few sentences of different lengths.

Usage: python3 scripts/make_sae_fixtures.py [EMBEDDER_DIR]
(default: ~/.cache/steerlab/models/all-MiniLM-L6-v2; needs `pip install torch transformers`).
"""
import json
import os
import sys

import torch
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "sae")

SENTENCES = [
    "The capital of France is Paris.",
    "I'm sorry, but I can't help with that request.",
    "Here is a list:\n- apples\n- pears\n- plums",
    "ok",
    "Sparse autoencoders find interpretable directions in embedding differences between "
    "preferred and dispreferred responses, which lets us read what annotators reward. " * 3,
]


def main() -> None:
    default = os.path.join(os.path.expanduser("~"), ".cache", "steerlab", "models", "all-MiniLM-L6-v2")
    d = sys.argv[1] if len(sys.argv) > 1 else default
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModel.from_pretrained(d).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(pooled, p=2, dim=1)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "minilm_reference.json"), "w") as f:
        json.dump(
            {
                "sentences": SENTENCES,
                "token_counts": enc["attention_mask"].sum(1).tolist(),
                "embeddings": [[round(float(v), 7) for v in row] for row in emb],
            },
            f,
        )
    print("wrote minilm_reference.json", emb.shape)


if __name__ == "__main__":
    main()
