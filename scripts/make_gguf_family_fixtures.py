#!/usr/bin/env python3
"""Writes tiny GGUF files of several architectures from the tiny HF fixtures, as llama.cpp's
convert_hf_to_gguf.py would, so tests can compare the GGUF load with the HF-folder load.

For each of tests/fixtures/models/{llama3,qwen2,qwen3} it writes tests/fixtures/gguf/tiny_<arch>.gguf:
  * metadata under the llama.cpp architecture prefix (`llama.*`, `qwen2.*`, `qwen3.*`);
  * every tensor in F32 under its llama.cpp name; Q and K rows permuted per head for `llama`
    (llama.cpp's LlamaModel.permute; qwen2/qwen3 use the NEOX rotary layout and are not permuted);
  * for a Llama-3 `rope_scaling`, the `rope_freqs.weight` tensor of per-frequency factors computed
    as LlamaModel.generate_extra_tensors does (no rope.scaling.* metadata, as llama.cpp writes);
  * a 96-token byte-level vocabulary (3 ChatML specials, printable ASCII, one merge) so the file loads.

Needs the `gguf`, `safetensors` and `numpy` packages (`scripts/pyenv.sh` prints a Python with them).
Usage: $(scripts/pyenv.sh) scripts/make_gguf_family_fixtures.py
"""
import json
import math
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"
OUT = ROOT / "tests" / "fixtures" / "gguf"

NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf, names=None):
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")  # model.layers.L.<module...>.<weight|bias>
    layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{(names or NAMES)[module]}.{kind}"


def permute(w, n_head):
    """llama.cpp's LlamaModel.permute: HF rotate-half rows -> interleaved pairs, per head."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama3_rope_factors(cfg, rope):
    base = rope.get("rope_theta", 10000.0)
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def begin_writer(path, arch, cfg, name, rope_theta, rotary_dim=None):
    """A GGUFWriter for `arch` with the common `{arch}.*` metadata of the HF config `cfg` and a
    96-token byte-level vocabulary (3 ChatML specials, printable ASCII, one merge); the caller
    adds its own keys and the tensors. Shared with scripts/make_reach_fixtures.py."""
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_context_length(cfg.get("max_position_embeddings", 128))
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(rotary_dim or head_dim)
    w.add_rope_freq_base(float(rope_theta))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_vocab_size(cfg["vocab_size"])
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + [chr(b) for b in range(33, 33 + cfg["vocab_size"] - len(specials) - 1)] + ["ab"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if arch.startswith("qwen") else "llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(specials) + [1] * (len(tokens) - len(specials)))
    w.add_token_merges(["a b"])
    w.add_eos_token_id(0)
    return w


def write(arch_dir, arch):
    cfg = json.loads((MODELS / arch_dir / "config.json").read_text())
    rope = cfg.get("rope_parameters") or {**(cfg.get("rope_scaling") or {}), "rope_theta": cfg.get("rope_theta", 10000.0)}
    tensors = load_file(str(MODELS / arch_dir / "model.safetensors"))
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    path = OUT / f"tiny_{arch_dir}.gguf"
    w = begin_writer(path, arch, cfg, f"tiny-{arch_dir}-fixture", rope.get("rope_theta", 10000.0))
    for hf, t in sorted(tensors.items()):
        t = t.astype(np.float32)
        if arch == "llama" and hf.endswith("q_proj.weight"):
            t = permute(t, heads)
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            t = permute(t, kv)
        w.add_tensor(gguf_name(hf), np.ascontiguousarray(t))
    if rope.get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg, rope))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main():
    write("llama3", "llama")
    write("qwen2", "qwen2")
    write("qwen3", "qwen3")


if __name__ == "__main__":
    main()
