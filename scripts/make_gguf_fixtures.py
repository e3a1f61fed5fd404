#!/usr/bin/env python3
"""Generates the GGUF / tokenizer test fixtures under tests/fixtures/ from independent references.

References (pip install gguf numpy transformers tokenizers sentencepiece jinja2 regex;
torch for the logits fixture):
  * llama.cpp's Python `gguf` package (GGUFReader + gguf.quants.dequantize) for dequantized values;
    the Q/K un-permutation is done here in numpy, following llama.cpp's convert script.
  * transformers' GGUF tokenizer loader (AutoTokenizer.from_pretrained(dir, gguf_file=...)) and
    `apply_chat_template` (jinja2) for token ids and chat renderings.
  * sentencepiece itself for the sentencepiece-vocabulary GGUF.

Outputs (all small, committed; CI does not regenerate them):
  tests/fixtures/gguf/smollm2_dequant.json   sampled dequantized values of the default model
  tests/fixtures/gguf/smollm2_tokenizer.json ids/decodes/chat renderings of the default model
  tests/fixtures/gguf/smollm2_logits.json    transformers' logits + greedy answer on the default model
  tests/fixtures/gguf/tiny_llama.gguf        a 2-layer llama with every supported quant type
  tests/fixtures/gguf/tiny_llama.json        its expected (HF-named, un-permuted) values + token ids
  tests/fixtures/gguf/tiny_bad_*.gguf       files that must be rejected (vocab too large, bad shape)
  tests/fixtures/gguf/tiny_spm.gguf          a sentencepiece vocabulary in GGUF form (no tensors)
  tests/fixtures/gguf/tiny_spm.json          its expected ids (sentencepiece and transformers)
  tests/fixtures/tokenizer_hf/*              a handmade HF tokenizer folder + expected.json
  tests/fixtures/tokenizer_hf/minilm_expected.json ids of the default embedder's tokenizer

Usage: python3 scripts/make_gguf_fixtures.py [--model PATH] [--embedder DIR]
"""
import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "gguf"
HF_OUT = ROOT / "tests" / "fixtures" / "tokenizer_hf"
CACHE = Path(os.environ.get("STEERLAB_HOME") or Path.home() / ".cache" / "steerlab")

# Strings exercising digits, unicode, emoji, whitespace runs and special tokens.
STRINGS = [
    "Hello world",
    "The year 2024 had 366 days; pi is 3.14159.",
    "1234567890",
    "  leading spaces\tand\ttabs\n\nnew lines   ",
    "     ",
    "",
    "naïve café, Zürich, 東京, Москва",
    "emoji: 🤖🚀👍🏽 and ZWJ 👩‍💻",
    "<|im_start|>user\nHi there<|im_end|>",
    "<|endoftext|>text after<|endoftext|>",
    "don't won't I'll we've they're",
    "code: fn main() { let x = 42; }",
    "MiXeD CaSe ALLCAPS",
]

CHAT = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
CHAT_NO_SYSTEM = [{"role": "user", "content": "Hi!"}]


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def unpermute(w, n_head):
    """Inverse of llama.cpp's convert permute: reshape(h, rows/h/2, 2, ...) and swap axes 1, 2."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_name(name):
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if name in fixed:
        return fixed[name]
    _, layer, part, kind = name.split(".")
    parts = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
             "ffn_norm": "post_attention_layernorm"}
    return f"model.layers.{layer}.{parts[part]}.{kind}"


def dequantized_tensors(path):
    """{gguf name: (type name, HF-layout float array)} via the gguf package, Q/K un-permuted."""
    r = gguf.GGUFReader(str(path))
    heads = int(r.fields["llama.attention.head_count"].contents())
    kv = int(r.fields["llama.attention.head_count_kv"].contents())
    out = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]  # ggml order -> row-major
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
        if ".attn_q." in t.name:
            w = unpermute(w, heads)
        elif ".attn_k." in t.name:
            w = unpermute(w, kv)
        out[t.name] = (t.tensor_type.name, w)
    return out


def sample_entry(name, ty, w, rng, n):
    flat = w.reshape(-1)
    idx = np.sort(rng.choice(flat.size, size=min(n, flat.size), replace=False))
    return {
        "gguf_name": name,
        "hf_name": hf_name(name),
        "type": ty,
        "shape": list(w.shape),
        "sum": float(flat.sum()),
        "sum_abs": float(np.abs(flat).sum()),
        "indices": [int(i) for i in idx],
        "values": [float(flat[i]) for i in idx],
    }


def gguf_tokenizer_expectations(gguf_path, strings, chats):
    """Ids, decodes and chat renderings from transformers' GGUF tokenizer loader."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    cases = []
    for s in strings:
        ids = tok.encode(s, add_special_tokens=False)
        ids_special = tok.encode(s, add_special_tokens=True)
        cases.append({
            "text": s,
            "ids": ids,
            "ids_add_special": ids_special,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    renders = []
    for msgs, gen in chats:
        if tok.chat_template is None:
            break
        renders.append({"messages": msgs, "add_generation_prompt": gen,
                        "text": tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)})
    return {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id, "cases": cases, "chat": renders}


# ----------------------------------------------------------------------------------------------
# (a)+(b) the default model

def default_model(model_path):
    rng = np.random.default_rng(20241126)
    tensors = dequantized_tensors(model_path)
    pick = ["token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
            "blk.0.attn_v.weight", "blk.0.attn_output.weight", "blk.0.attn_norm.weight",
            "blk.7.ffn_gate.weight", "blk.13.ffn_up.weight", "blk.21.ffn_down.weight",
            "blk.29.attn_q.weight", "blk.29.attn_k.weight", "blk.29.ffn_norm.weight"]
    entries = [sample_entry(n, tensors[n][0], tensors[n][1], rng, 300) for n in pick]
    write_json(OUT / "smollm2_dequant.json", {"model": model_path.name, "tensors": entries})

    chats = [(CHAT, True), (CHAT, False), (CHAT_NO_SYSTEM, True)]
    exp = gguf_tokenizer_expectations(model_path, STRINGS, chats)
    exp["model"] = model_path.name
    write_json(OUT / "smollm2_tokenizer.json", exp)
    default_model_logits(model_path)


def default_model_logits(model_path):
    """Logits of transformers' own GGUF loader (its dequantization and un-permutation, torch f32)
    on the ChatML prompt, and its greedy answer. Needs torch; skipped with a note without it."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        print("torch missing: smollm2_logits.json not regenerated")
        return
    tok = AutoTokenizer.from_pretrained(str(model_path.parent), gguf_file=model_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(model_path.parent), gguf_file=model_path.name,
                                                 dtype=torch.float32)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = tok.encode(prompt)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double().numpy()
        gen = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)[0][len(ids):].tolist()
    probe = sorted(set(np.random.default_rng(3).choice(logits.shape[1], 48, replace=False).tolist()))
    positions = []
    for p in range(len(ids)):
        row = logits[p]
        top = np.argsort(-row)[:5]
        positions.append({"top_ids": [int(i) for i in top], "top_values": [float(row[i]) for i in top],
                          "probe_values": [float(row[i]) for i in probe]})
    write_json(OUT / "smollm2_logits.json", {
        "model": model_path.name, "messages": msgs, "prompt": prompt, "ids": ids, "probe_ids": probe,
        "positions": positions, "greedy_ids": gen, "greedy_text": tok.decode(gen, skip_special_tokens=True)})


# ----------------------------------------------------------------------------------------------
# tiny llama GGUF with every supported quant type

def random_kquant_bytes(qtype, n_blocks, rng):
    """Random K-quant blocks (the gguf package cannot quantize K types); f16 scales kept finite."""
    size = {Q.Q4_K: 144, Q.Q5_K: 176, Q.Q6_K: 210}[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    def f16(vals):
        return np.asarray(vals, dtype=np.float16).view(np.uint8).reshape(n_blocks, 2)
    if qtype in (Q.Q4_K, Q.Q5_K):
        raw[:, 0:2] = f16(rng.uniform(0.001, 0.02, n_blocks))   # d
        raw[:, 2:4] = f16(rng.uniform(0.0, 0.01, n_blocks))     # dmin
    else:
        raw[:, 208:210] = f16(rng.uniform(-0.02, 0.02, n_blocks))  # d
    return raw


def tiny_tokenizer_vocab():
    """A byte-level BPE vocabulary: 256 byte symbols, merges learned greedily on a tiny corpus
    (digit-free merges), then the ChatML control tokens."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    b2u = bytes_to_unicode()
    symbols = [b2u[b] for b in range(256)]
    corpus = ("the quick brown fox jumps over the lazy dog. hello world, hello there! "
              "the capital of france is paris. what is the answer? it is the question. ") * 3
    words = []
    import regex as re_mod
    for m in re_mod.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", corpus):
        words.append([b2u[b] for b in m.encode("utf-8")])
    merges, vocab = [], list(symbols)
    for _ in range(60):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        (a, b), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.append(a + b)
        new_words = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words.append(out)
        words = new_words
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + vocab
    types = [3] * len(specials) + [1] * len(vocab)
    return tokens, types, merges


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'].strip()"
          " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def tiny_llama():
    rng = np.random.default_rng(7)
    tokens, types, merges = tiny_tokenizer_vocab()
    vocab = len(tokens) + 5  # the embedding table is padded past the tokenizer, as real models do
    hidden, heads, kv, inter, layers = 256, 4, 2, 256, 2
    head_dim = hidden // heads
    path = OUT / "tiny_llama.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama-fixture")
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(50000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_chat_template(CHATML)

    plan = {
        "token_embd.weight": ((vocab, hidden), Q.Q8_0),
        "output_norm.weight": ((hidden,), Q.F32),
        "output.weight": ((vocab, hidden), Q.Q4_1),
        "blk.0.attn_q.weight": ((hidden, hidden), Q.Q4_K),
        "blk.0.attn_k.weight": ((kv * head_dim, hidden), Q.Q5_K),
        "blk.0.attn_v.weight": ((kv * head_dim, hidden), Q.Q6_K),
        "blk.0.attn_output.weight": ((hidden, hidden), Q.Q8_0),
        "blk.0.ffn_gate.weight": ((inter, hidden), Q.Q4_0),
        "blk.0.ffn_up.weight": ((inter, hidden), Q.Q4_1),
        "blk.0.ffn_down.weight": ((hidden, inter), Q.Q5_0),
        "blk.0.attn_norm.weight": ((hidden,), Q.F32),
        "blk.0.ffn_norm.weight": ((hidden,), Q.F32),
        "blk.1.attn_q.weight": ((hidden, hidden), Q.Q5_1),
        "blk.1.attn_k.weight": ((kv * head_dim, hidden), Q.F16),
        "blk.1.attn_v.weight": ((kv * head_dim, hidden), Q.BF16),
        "blk.1.attn_output.weight": ((hidden, hidden), Q.Q4_0),
        "blk.1.ffn_gate.weight": ((inter, hidden), Q.Q6_K),
        "blk.1.ffn_up.weight": ((inter, hidden), Q.Q5_K),
        "blk.1.ffn_down.weight": ((hidden, inter), Q.Q4_K),
        "blk.1.attn_norm.weight": ((hidden,), Q.F32),
        "blk.1.ffn_norm.weight": ((hidden,), Q.F32),
    }
    for name, (shape, qt) in plan.items():
        n = int(np.prod(shape))
        if qt in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            raw = random_kquant_bytes(qt, n // 256, rng).reshape(shape[0], -1)
            w.add_tensor(name, raw, raw_dtype=qt)
        elif qt == Q.F32:
            w.add_tensor(name, rng.normal(1.0, 0.1, size=shape).astype(np.float32))
        elif qt == Q.F16:
            w.add_tensor(name, rng.normal(0, 0.05, size=shape).astype(np.float16))
        else:
            data = rng.normal(0, 0.05, size=shape).astype(np.float32)
            raw = gguf.quants.quantize(data, qt)
            w.add_tensor(name, raw, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({path.stat().st_size} bytes)")

    tensors = dequantized_tensors(path)
    ent = [sample_entry(n, ty, arr, rng, 64) for n, (ty, arr) in sorted(tensors.items())]
    tok_exp = gguf_tokenizer_expectations(path, [s for s in STRINGS if "🤖" not in s] + [
        "the quick brown fox", "hello there, paris!"], [(CHAT, True), ([{"role": "user", "content": "  hi  "}], False)])
    write_json(OUT / "tiny_llama.json", {
        "config": {"hidden_size": hidden, "num_attention_heads": heads, "num_key_value_heads": kv,
                   "intermediate_size": inter, "num_hidden_layers": layers, "vocab_size": vocab,
                   "rope_theta": 50000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
                   "head_dim": head_dim, "tie_word_embeddings": False},
        "name": "tiny-llama-fixture",
        "tensors": ent,
        "tokenizer": tok_exp,
    })


def tiny_bad(name, vocab_rows, k_rows):
    """Small F32 llama files that must be rejected: a tokenizer larger than the embedding table,
    or a K projection whose shape contradicts the head counts."""
    rng = np.random.default_rng(11)
    tokens, types, merges = tiny_tokenizer_vocab()
    hidden, heads, kv, inter = 32, 2, 1, 64
    path = OUT / name
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    plan = {"token_embd.weight": (vocab_rows, hidden), "output_norm.weight": (hidden,),
            "blk.0.attn_q.weight": (hidden, hidden), "blk.0.attn_k.weight": (k_rows, hidden),
            "blk.0.attn_v.weight": (hidden // heads * kv, hidden), "blk.0.attn_output.weight": (hidden, hidden),
            "blk.0.ffn_gate.weight": (inter, hidden), "blk.0.ffn_up.weight": (inter, hidden),
            "blk.0.ffn_down.weight": (hidden, inter), "blk.0.attn_norm.weight": (hidden,),
            "blk.0.ffn_norm.weight": (hidden,)}
    for n, shape in plan.items():
        w.add_tensor(n, rng.normal(0, 0.1, size=shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return len(tokens)


# ----------------------------------------------------------------------------------------------
# sentencepiece vocabulary as GGUF

SPM_CORPUS = """The quick brown fox jumps over the lazy dog.
Hello world, hello there! The capital of France is Paris.
What is the answer? It is the question, said the fox.
Numbers like 12, 345 and 6789 appear here and there.
Sentencepiece splits words into pieces; rare words fall back to bytes.
""" * 20


def tiny_spm():
    import sentencepiece as spm

    tmp = Path(tempfile.mkdtemp())
    (tmp / "corpus.txt").write_text(SPM_CORPUS)
    spm.SentencePieceTrainer.train(
        input=str(tmp / "corpus.txt"), model_prefix=str(tmp / "m"), vocab_size=400, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, split_digits=True, add_dummy_prefix=True,
        bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
        remove_extra_whitespaces=False, normalization_rule_name="identity")
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "m.model"))
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        else:
            types.append(1)
    path = OUT / "tiny_spm.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({path.stat().st_size} bytes)")

    strings = ["The quick brown fox", "Hello world, hello there!", "Numbers 12345 and 6789.",
               "unseen wörds and émojis 🙂", "  two leading spaces", "trailing  ", "The capital of France is Paris."]
    cases = []
    for s in strings:
        cases.append({"text": s, "ids": sp.encode(s), "decoded": sp.decode(sp.encode(s))})
    # transformers' GGUF loader as a second opinion on the same file
    tf_ids = None
    try:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        tf_ids = [tok.encode(s, add_special_tokens=False) for s in strings]
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        print(f"transformers could not load tiny_spm.gguf: {e}")
    for c, t in zip(cases, tf_ids or [None] * len(cases)):
        c["transformers_ids"] = t
    write_json(OUT / "tiny_spm.json", {"vocab_size": len(tokens), "cases": cases})
    shutil.rmtree(tmp)


# ----------------------------------------------------------------------------------------------
# (c) HF folders

HF_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[USER] ' + message['content'].strip() }}\n"
    "{% else %}{{ '[BOT] ' + message['content'] | trim }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}[BOT]{% endif %}"
)


TEMPLATES = {
    "llama3_style": (
        "{{- bos_token }}\n{%- if messages[0]['role'] == 'system' %}\n"
        "    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n"
        "{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n"
        "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n"
        "{%- for message in messages %}\n"
        "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
        "{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n"),
    "qwen_style": (
        "{%- set ns = namespace(found=false, n=0) %}\n{%- for m in messages %}\n"
        "    {%- if m.role == 'system' %}{%- set ns.found = true %}{%- endif %}\n"
        "    {%- if m.role == 'user' %}{%- set ns.n = ns.n + 1 %}{%- endif %}\n{%- endfor %}\n"
        "{%- if tools is not none %}TOOLS{{ tools | tojson }}{%- endif %}\n"
        "{%- if not ns.found %}<|im_start|>system\nYou are Qwen.<|im_end|>\n{%- endif %}\n"
        "{%- for m in messages %}\n    {%- if m.role == 'assistant' and '</think>' in m.content %}\n"
        "        {%- set content = m.content.split('</think>')[-1].lstrip('\\n') %}\n"
        "    {%- else %}{%- set content = m.content %}{%- endif %}\n"
        "<|im_start|>{{ m.role }}\n{{ content }}<|im_end|>\n{%- if loop.last %}\n<!-- {{ ns.n }} user turns, "
        "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} by filter -->{% endif %}\n"
        "{%- endfor %}\n{%- if add_generation_prompt %}\n<|im_start|>assistant\n{%- endif %}\n"),
    "gemma_style": (
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
        "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
        "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
        "{{'<start_of_turn>model\n'}}{% endif %}"),
    "features": (
        "{% for m in messages %}{{ loop.index0 }}:{{ m.role | upper }}:{{ m['content'].strip().startswith(('Hi', 'Be')) }}"
        ":{{ m.content.split() | length }}{% if not loop.last %}, {% endif %}{% endfor %}\n"
        "{{ messages | map(attribute='role') | join('/') }}|{{ messages[0] | tojson }}|{{ messages[:2] | tojson(indent=2) }}\n"
        "{% for k, v in messages[0].items() %}{{ k }}={{ v ~ '!' }};{% endfor %}{{ messages[0].get('missing', 'dflt') }}"
        "{% if foo is defined %}FOO{% endif %}{{ eos_token if add_generation_prompt else pad_token }}"
        "{% generation %}GEN{{ messages | length }}{% endgeneration %}"),
}


def hf_dirs(embedder_dir):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
    from transformers import AutoTokenizer

    HF_OUT.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<s>", "</s>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([SPM_CORPUS], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.save(str(HF_OUT / "tokenizer.json"))
    cfg = {
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True},
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": [{"name": "default", "template": HF_TEMPLATE},
                          {"name": "tool_use", "template": "{{ raise_exception('tools') }}"}],
    }
    write_json(HF_OUT / "tokenizer_config.json", cfg)
    write_json(HF_OUT / "generation_config.json", {"bos_token_id": 1, "eos_token_id": [2, 3]})

    t = AutoTokenizer.from_pretrained(str(HF_OUT))
    strings = ["The quick brown fox", "Hello world, hello there!", "Numbers 12345", "</s> inside </s>", ""]
    conv = [{"role": "user", "content": "  Hi  "}, {"role": "assistant", "content": " Hello! "},
            {"role": "user", "content": "Capital of France?"}]
    expected = {
        "cases": [{"text": s, "ids": t.encode(s, add_special_tokens=False),
                   "ids_add_special": t.encode(s, add_special_tokens=True)} for s in strings],
        "chat": {"messages": conv, "add_generation_prompt": True,
                 "text": t.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)},
        "bad_chat": [{"role": "assistant", "content": "first"}],
        "bos_token_id": t.bos_token_id, "eos_token_id": t.eos_token_id, "pad_token_id": t.pad_token_id,
    }
    try:
        t.apply_chat_template(expected["bad_chat"], tokenize=False)
        raise SystemExit("expected the template to raise")
    except Exception as e:  # jinja2 TemplateError
        expected["bad_chat_error"] = str(e)
    write_json(HF_OUT / "expected.json", expected)

    # Templates in the styles of popular models, rendered by transformers' jinja2 environment.
    conv2 = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi <there> & \"you\""},
             {"role": "assistant", "content": "<think>hmm</think>\n\nHello!"}, {"role": "user", "content": "Bye"}]
    renders = []
    for name, tpl in TEMPLATES.items():
        for gen in (True, False):
            renders.append({"name": name, "template": tpl, "messages": conv2, "add_generation_prompt": gen,
                            "text": t.apply_chat_template(conv2, chat_template=tpl, tokenize=False,
                                                          add_generation_prompt=gen)})
    write_json(HF_OUT / "templates_expected.json", {"renders": renders})

    if embedder_dir.exists():
        m = AutoTokenizer.from_pretrained(str(embedder_dir))
        strings = ["Hello world", "The year 2024 had 366 days.", "naïve café, Zürich", "  spaces   here  ",
                   "UPPER lower MiXeD", "emoji 🤖 and 東京"]
        write_json(HF_OUT / "minilm_expected.json", {
            "cases": [{"text": s, "ids": m.encode(s, add_special_tokens=False),
                       "ids_add_special": m.encode(s, add_special_tokens=True)} for s in strings]})
    else:
        print(f"embedder folder {embedder_dir} missing: minilm_expected.json not regenerated")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--embedder", type=Path, default=CACHE / "models" / "all-MiniLM-L6-v2")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    default_model(args.model)
    tiny_llama()
    n_tokens = tiny_bad("tiny_bad_vocab.gguf", vocab_rows=50, k_rows=16)
    assert n_tokens > 50
    tiny_bad("tiny_bad_shape.gguf", vocab_rows=n_tokens, k_rows=24)
    tiny_spm()
    hf_dirs(args.embedder)


if __name__ == "__main__":
    main()
