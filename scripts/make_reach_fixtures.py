#!/usr/bin/env python3
"""Tiny seeded random-init models of the Phi-3 and mixture-of-experts families (transformers),
their references, and the GGUF files llama.cpp's converter would write for the same weights, for
tests/engine_hf.rs, tests/engine_grad.rs and tests/model_reach.rs. Also the `gemma2` GGUF of the
existing tests/fixtures/models/gemma2 folder.

Writes, in the layout of scripts/make_gemma_fixtures.py (whose `write_hf` and `run` it uses:
config.json, model.safetensors, reference.safetensors with logits, every hook_resid_post, a padded
batch and 8 greedy tokens):
  tests/fixtures/models/phi3/       3 layers, fused qkv_proj and gate_up_proj, partial rotary
                                    (0.75 of head_dim 16), LongRoPE (original context 64 of 256:
                                    attention factor sqrt(1 + ln 4 / ln 64)), sliding window 5;
                                    reference adds ids_long/logits_long (70 tokens: long factors)
  tests/fixtures/models/mixtral/    3 layers, 4 experts, top 2; reference adds router_0_l{l}
                                    (the router logits of prompt 0 per layer)
  tests/fixtures/models/qwen3_moe/  3 layers (layer 1 dense: mlp_only_layers), 4 experts, top 2,
                                    norm_topk_prob false, head_dim 24 != hidden / heads; router_0_l{l}
                                    for the sparse layers
and tests/fixtures/gguf/tiny_{phi3,mixtral,qwen3_moe,gemma2}.gguf (F32; `phi3` with `attn_qkv`,
fused `ffn_up` and `rope_factors_{long,short}`; Mixtral as arch `llama` with Q/K rows permuted and
stacked `ffn_{gate,up,down}_exps`; `qwen3moe` with `expert_weights_norm` false and dense
`ffn_gate/up/down` on layer 1; `gemma2` with norms stored as 1 + w), plus tiny_gemma2.json:
transformers' logits of the gemma2 folder with llama.cpp's attention scale head_dim^-1/2, and
tiny_{phi3,mixtral}_q8.gguf: the same with the matrices stored Q8_0 (for `--weights quantized`).

Needs torch, transformers (5.x), safetensors, gguf: ~/.cache/steerlab/torchenv has them. Run from
the repository root:
    ~/.cache/steerlab/torchenv/bin/python scripts/make_reach_fixtures.py
"""
import json
import math
import os
import sys

import gguf
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_gemma_fixtures as gem  # noqa: E402  (write_hf, run, PROMPTS)
import make_gguf_family_fixtures as fam  # noqa: E402  (begin_writer, gguf_name, permute)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
GGUF_OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")

COMMON = dict(
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=96,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    hidden_act="silu",
    tie_word_embeddings=False,
    bos_token_id=2,
    eos_token_id=1,
    pad_token_id=0,
)
LONG_PROMPT = [(7 * i + 3) % 90 + 4 for i in range(70)]


def init(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model.float().eval()


def build(model_type, seed, **kw):
    cfg = AutoConfig.for_model(model_type, **{**COMMON, **kw})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    return init(model, seed)


def router_logits(model, ids):
    """Each sparse layer's router logits [T, experts] for one prompt."""
    got, hooks = {}, []
    for l, layer in enumerate(model.model.layers):
        gate = getattr(layer.mlp, "gate", None)
        if gate is None or not hasattr(layer.mlp, "experts"):
            continue

        def hook(_m, _inp, out, l=l):
            got[l] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        hooks.append(gate.register_forward_hook(hook))
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]), use_cache=False)
    for h in hooks:
        h.remove()
    return got


def add_to_reference(out, extra):
    path = os.path.join(out, "reference.safetensors")
    ref = load_file(path)
    ref.update({k: v.contiguous() for k, v in extra.items()})
    save_file(ref, path)


def write_family(name, model):
    out = os.path.join(MODELS, name)
    gem.write_hf(model, out)
    extra = {}
    if name == "phi3":
        logits, _ = gem.run(model, torch.tensor([LONG_PROMPT]))
        extra["ids_long"] = torch.tensor(LONG_PROMPT)
        extra["logits_long"] = logits[0].float()
    for l, r in router_logits(model, gem.PROMPTS[0]).items():
        extra[f"router_0_l{l}"] = r.float()
    if extra:
        add_to_reference(out, extra)
    return out


def folder(name):
    out = os.path.join(MODELS, name)
    cfg = json.load(open(os.path.join(out, "config.json")))
    tensors = {k: v.float().numpy() for k, v in load_file(os.path.join(out, "model.safetensors")).items()}
    return cfg, tensors


class Q8Writer:
    """Wraps a GGUFWriter so matrices (2-D and stacked 3-D tensors whose rows are whole Q8_0
    blocks) are stored Q8_0, as llama.cpp's converter does with `--outtype q8_0`; norms, biases
    and factor lists stay F32."""

    def __init__(self, w):
        self.w = w

    def add_tensor(self, name, a):
        if a.ndim >= 2 and a.shape[-1] % 32 == 0 and "norm" not in name:
            q = gguf.quants.quantize(a.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            self.w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            self.w.add_tensor(name, a)

    def __getattr__(self, attr):
        return getattr(self.w, attr)


def finish(w, path):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def write_phi3_gguf(suffix=""):
    cfg, tensors = folder("phi3")
    rp = cfg["rope_parameters"]
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    rotary = int(head_dim * rp.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0)))
    path = os.path.join(GGUF_OUT, f"tiny_phi3{suffix}.gguf")
    w = fam.begin_writer(path, "phi3", cfg, "tiny-phi3-fixture", rp["rope_theta"], rotary_dim=rotary)
    if suffix == "_q8":
        w = Q8Writer(w)
    w.add_sliding_window(cfg["sliding_window"])
    orig = rp["original_max_position_embeddings"]
    scale = cfg["max_position_embeddings"] / orig
    # As llama.cpp's Phi3MiniModel converter: the attention factor and the two factor lists.
    w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig)))
    w.add_rope_scaling_orig_ctx_len(orig)
    w.add_tensor("rope_factors_long.weight", np.array(rp["long_factor"], dtype=np.float32))
    w.add_tensor("rope_factors_short.weight", np.array(rp["short_factor"], dtype=np.float32))
    names = {**fam.NAMES, "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up"}
    for hf, t in sorted(tensors.items()):
        w.add_tensor(fam.gguf_name(hf, names), np.ascontiguousarray(t))
    finish(w, path)


def write_moe_gguf(name, arch, suffix=""):
    cfg, tensors = folder(name)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    n_exp = cfg.get("num_local_experts") or cfg["num_experts"]
    path = os.path.join(GGUF_OUT, f"tiny_{name}{suffix}.gguf")
    rope = cfg.get("rope_parameters") or {"rope_theta": cfg.get("rope_theta", 10000.0)}
    w = fam.begin_writer(path, arch, cfg, f"tiny-{name}-fixture", rope["rope_theta"])
    if suffix == "_q8":
        w = Q8Writer(w)
    w.add_expert_count(n_exp)
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    if arch == "qwen3moe":
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        w.add_expert_weights_norm(bool(cfg["norm_topk_prob"]))
    if name == "mixtral":
        router, leaves = "block_sparse_moe", {"gate": "w1", "up": "w3", "down": "w2"}
    else:
        router, leaves = "mlp", {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
    for l in range(cfg["num_hidden_layers"]):
        gate = f"model.layers.{l}.{router}.gate.weight"
        if gate not in tensors:
            continue  # a dense layer: its ffn_gate/up/down are written below
        w.add_tensor(f"blk.{l}.ffn_gate_inp.weight", tensors.pop(gate))
        for part, leaf in leaves.items():
            stack = [tensors.pop(f"model.layers.{l}.{router}.experts.{e}.{leaf}.weight") for e in range(n_exp)]
            w.add_tensor(f"blk.{l}.ffn_{part}_exps.weight", np.ascontiguousarray(np.stack(stack)))
    for hf, t in sorted(tensors.items()):
        if arch == "llama" and hf.endswith("q_proj.weight"):
            t = fam.permute(t, heads)
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            t = fam.permute(t, kv)
        w.add_tensor(fam.gguf_name(hf), np.ascontiguousarray(t))
    finish(w, path)


def write_gemma2_gguf():
    cfg, tensors = folder("gemma2")
    path = os.path.join(GGUF_OUT, "tiny_gemma2.gguf")
    w = fam.begin_writer(path, "gemma2", cfg, "tiny-gemma2-fixture", cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"])
    w.add_sliding_window(cfg["sliding_window"])
    w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
    w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
    for hf, t in sorted(tensors.items()):
        if hf == "lm_head.weight":
            continue  # tied
        if hf.endswith("norm.weight"):
            t = t + 1.0  # llama.cpp's converter stores Gemma's 1 + w
        w.add_tensor(gem.gguf_name(hf), np.ascontiguousarray(t))
    finish(w, path)
    # transformers with the scale llama.cpp gives this file's attention: head_dim^-1/2.
    model = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, "gemma2"), attn_implementation="eager").float().eval()
    for layer in model.model.layers:
        layer.self_attn.scaling = model.config.head_dim ** -0.5
    logits, _ = gem.run(model, torch.tensor([gem.PROMPTS[0]]))
    with open(os.path.join(GGUF_OUT, "tiny_gemma2.json"), "w") as f:
        json.dump({"ids": gem.PROMPTS[0], "logits": logits[0].tolist(),
                   "note": "transformers logits of tests/fixtures/models/gemma2 with attention scale head_dim^-1/2"}, f)


def main():
    phi3 = build(
        "phi3", 2031,
        intermediate_size=96,
        partial_rotary_factor=0.75,
        sliding_window=5,
        rope_theta=1000.0,
        original_max_position_embeddings=64,
        rope_scaling={
            "type": "longrope",
            "short_factor": [1.0, 1.05, 1.1, 1.3, 1.6, 2.0],
            "long_factor": [1.0, 1.5, 2.5, 4.0, 6.0, 8.0],
        },
    )
    write_family("phi3", phi3)
    mixtral = build("mixtral", 2032, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
                    rope_theta=1000.0, sliding_window=None)
    write_family("mixtral", mixtral)
    qwen3_moe = build("qwen3_moe", 2033, intermediate_size=96, moe_intermediate_size=32, num_experts=4,
                      num_experts_per_tok=2, norm_topk_prob=False, mlp_only_layers=[1], decoder_sparse_step=1,
                      head_dim=24, rope_theta=1000.0)
    write_family("qwen3_moe", qwen3_moe)
    write_phi3_gguf()
    write_moe_gguf("mixtral", "llama")
    write_moe_gguf("qwen3_moe", "qwen3moe")
    # Q8_0 variants: quantized storage slices fused and stacked expert matrices block-wise.
    write_phi3_gguf("_q8")
    write_moe_gguf("mixtral", "llama", "_q8")
    write_gemma2_gguf()
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
