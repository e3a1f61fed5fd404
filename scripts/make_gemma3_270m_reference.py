#!/usr/bin/env python3
"""Reference for the second default model, Gemma 3 270M Q4_K_M GGUF (fetched by
scripts/fetch-defaults.sh): transformers loads the same GGUF file (`gguf_file=`, dequantized to
f32) and writes tests/fixtures/gguf/gemma3_270m_reference.json with
  * `prompt`, `ids`: the fixed prompt and transformers' token ids for it (BOS first);
  * per position: the 32 highest logits (`top_ids`, `top_logits`) and the log-sum-exp of the whole
    row (`lse`), so the test checks the full distribution without storing 262k floats per row;
  * `tokenizer`: transformers' ids (no special tokens added) for strings with whitespace runs,
    digits, emoji, CJK and special tokens, and the chat template rendering of one turn when the
    file has a template.
Run once from the repository root (needs ~/.cache/steerlab/torchenv: torch, transformers, gguf,
accelerate, which transformers requires for GGUF files):
    ~/.cache/steerlab/torchenv/bin/python scripts/make_gemma3_270m_reference.py
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
HOME = os.environ.get("STEERLAB_HOME") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "steerlab")
MODEL_DIR = os.path.join(HOME, "models")
FILE = "gemma-3-270m-q4_k_m.gguf"
PROMPT = "The capital of France is"
STRINGS = [
    "The capital of France is",
    "  two  spaces,\tthen a tab\n\nand   three   spaces   ",
    "digits 1234567890 and 3.14159, 2026-12-02",
    "emoji 😀👍🏽 and 🇫🇷 flags",
    "中文字符和日本語のテキスト, 한국어",
    "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n",
    "<bos>special <eos> tokens <pad> inline",
    "trailing space ",
    " leading space",
    "\n\n\n",
    "mixedCASE_snake_case-and-kebab-case",
    "Ünïcödé àçcénts",
]


def main():
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=FILE)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=FILE, torch_dtype=torch.float32)
    model.eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].float()
    top = logits.topk(32, dim=-1)
    out = {
        "file": FILE,
        "prompt": PROMPT,
        "ids": ids[0].tolist(),
        "top_ids": top.indices.tolist(),
        "top_logits": top.values.tolist(),
        "lse": torch.logsumexp(logits, dim=-1).tolist(),
        "tokenizer": [{"text": s, "ids": tok(s, add_special_tokens=False).input_ids} for s in STRINGS],
    }
    if tok.chat_template:
        out["chat"] = tok.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False,
                                              add_generation_prompt=True)
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=8, do_sample=False)
    out["greedy"] = tok.decode(gen[0, ids.shape[1]:])
    import transformers
    out["versions"] = f"torch {torch.__version__}, transformers {transformers.__version__}"
    path = os.path.join(ROOT, "tests", "fixtures", "gguf", "gemma3_270m_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False)
    print(json.dumps({k: out[k] for k in ("ids", "greedy")}), file=sys.stderr)
    print(out.get("chat"), file=sys.stderr)


if __name__ == "__main__":
    main()
