#!/usr/bin/env python3
"""Tiny seeded random-init Gemma 3 text model (transformers) and its references, for the parity
tests of the gemma3 family (tests/engine_hf.rs, tests/engine_grad.rs, tests/gguf_families.rs).

Also writes tests/fixtures/models/gemma2/ (Gemma 2: no q/k norms, soft-capped attention scores,
alternating sliding/global layers), HF folder and reference only.

Writes tests/fixtures/models/gemma3/ in the layout of scripts/make_model_fixtures.py:
  config.json, model.safetensors      the model as HF saves it (f32): 3 layers, sliding window 4
                                      on layers 0 and 2 and full attention on layer 1, two RoPE
                                      bases (linear scaling on the full layer), q/k norms,
                                      query_pre_attn_scalar != head_dim, final logit soft-cap
  reference.safetensors               ids_0/ids_1, logits_0/logits_1, resid_pre_0_l0,
                                      resid_post_0_l{l} (forward hooks on every layer),
                                      final_hidden_0, batch_ids/batch_mask/batch_logits,
                                      generated_0 (8 greedy tokens, KV cache)
and tests/fixtures/gguf/tiny_gemma3.gguf, the same weights as llama.cpp's converter writes them
(arch `gemma3`, F32, norm weights stored as 1 + w, the layer pattern as the bool array
`gemma3.attention.sliding_window_pattern`, the sliding layers' base as `rope.freq_base_swa`,
a 96-token sentencepiece vocabulary), with tests/fixtures/gguf/tiny_gemma3.json: transformers'
logits for prompt 0 with the attention scale llama.cpp uses for such a file (head_dim^-1/2;
GGUF has no query_pre_attn_scalar key).

Needs torch, transformers (>= 4.50, gemma3_text), safetensors, gguf: the venv
~/.cache/steerlab/torchenv has them. Run from the repository root:
    ~/.cache/steerlab/torchenv/bin/python scripts/make_gemma_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "models", "gemma3")
GGUF_OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
PROMPTS = [[2, 17, 5, 88, 23, 42, 9, 61, 3], [2, 70, 12, 33, 7, 50]]
LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention"]


def build():
    cfg = AutoConfig.for_model(
        "gemma3_text",
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,
        vocab_size=96,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=32,
        sliding_window=4,
        layer_types=LAYER_TYPES,
        rope_parameters={
            "full_attention": {"rope_type": "linear", "rope_theta": 1000.0, "factor": 2.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
        },
        final_logit_softcapping=8.0,
        attn_logit_softcapping=None,
        tie_word_embeddings=True,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(2026)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # Gemma norms scale by 1 + w; w starts at 0 in HF
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p) / 8.0)  # times sqrt(64) on the way in
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model


def run(model, ids, mask=None):
    layers = model.model.layers
    got = {}
    hooks = [layers[0].register_forward_pre_hook(
        lambda _m, args, kwargs: got.__setitem__("pre", (args[0] if args else kwargs["hidden_states"]).detach().clone()),
        with_kwargs=True)]
    for l, layer in enumerate(layers):
        def post(_m, _inp, out, l=l):
            got[f"post{l}"] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        hooks.append(layer.register_forward_hook(post))
    hooks.append(model.model.norm.register_forward_hook(
        lambda _m, _i, out: got.__setitem__("final", out.detach().clone())))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, use_cache=False)
    for h in hooks:
        h.remove()
    return out.logits, got


def build_gemma2():
    """Gemma 2: no q/k norms, attention scores soft-capped (cap 2, small enough to bind), even
    layers sliding (window 4), one RoPE base."""
    cfg = AutoConfig.for_model(
        "gemma2",
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,
        vocab_size=96,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=32,
        sliding_window=4,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=8.0,
        rope_theta=1000.0,
        tie_word_embeddings=True,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(2027)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p) / 8.0)
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model


def write_hf(model, out=OUT):
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    gen_cfg = os.path.join(out, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    n = model.config.num_hidden_layers
    ref = {}
    for k, p in enumerate(PROMPTS):
        ids = torch.tensor([p], dtype=torch.long)
        logits, got = run(model, ids)
        ref[f"ids_{k}"] = ids[0]
        ref[f"logits_{k}"] = logits[0].float()
        if k == 0:
            ref["resid_pre_0_l0"] = got["pre"][0]
            for l in range(n):
                ref[f"resid_post_0_l{l}"] = got[f"post{l}"][0]
            ref["final_hidden_0"] = got["final"][0]
    t = max(len(p) for p in PROMPTS)
    batch = torch.zeros((len(PROMPTS), t), dtype=torch.long)
    mask = torch.zeros((len(PROMPTS), t), dtype=torch.long)
    for k, p in enumerate(PROMPTS):
        batch[k, : len(p)] = torch.tensor(p)
        mask[k, : len(p)] = 1
    logits, _ = run(model, batch, mask)
    ref["batch_ids"], ref["batch_mask"], ref["batch_logits"] = batch, mask, logits.float()
    with torch.no_grad():
        gen = model.generate(torch.tensor([PROMPTS[0]]), max_new_tokens=8, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    ref["generated_0"] = gen[0, len(PROMPTS[0]):]
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(out, "reference.safetensors"))
    print(f"{os.path.basename(out)}: generated={ref['generated_0'].tolist()}")


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def gguf_name(hf):
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    return f"blk.{parts[2]}.{GGUF_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


def write_gguf(model):
    import gguf

    cfg = model.config
    os.makedirs(GGUF_OUT, exist_ok=True)
    path = os.path.join(GGUF_OUT, "tiny_gemma3.gguf")
    w = gguf.GGUFWriter(path, "gemma3")
    w.add_name("tiny gemma3")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(1000.0)
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(2.0)
    w.add_float32("gemma3.rope.freq_base_swa", 100.0)
    w.add_sliding_window(cfg.sliding_window)
    w.add_array("gemma3.attention.sliding_window_pattern", [t == "sliding_attention" for t in LAYER_TYPES])
    w.add_final_logit_softcapping(cfg.final_logit_softcapping)
    # A 96-token sentencepiece vocabulary: 6 specials, then single characters.
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    chars = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,?!'0123456789")
    pieces = ["\u2581t", "he", "\u2581the", "in", "er", "an", "on", "\u2581a"]
    tokens = specials + chars + pieces
    tokens += [f"<unused{i}>" for i in range(cfg.vocab_size - len(tokens))]
    types = [3, 3, 3, 2, 3, 3] + [1] * (len(chars) + len(pieces)) + [5] * (cfg.vocab_size - len(specials) - len(chars) - len(pieces))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(specials) + [-float(i) for i in range(len(tokens) - len(specials))])
    w.add_token_types(types)
    w.add_pad_token_id(0)
    w.add_eos_token_id(1)
    w.add_bos_token_id(2)
    w.add_unk_token_id(3)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(False)
    w.add_chat_template("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied
        a = t.detach().float().numpy().astype(np.float32)
        if name.endswith("norm.weight"):
            a = a + 1.0  # llama.cpp's converter stores Gemma's 1 + w
        w.add_tensor(gguf_name(name), a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # transformers with the scale llama.cpp gives this file's attention: head_dim^-1/2.
    for layer in model.model.layers:
        layer.self_attn.scaling = cfg.head_dim ** -0.5
    logits, _ = run(model, torch.tensor([PROMPTS[0]]))
    with open(os.path.join(GGUF_OUT, "tiny_gemma3.json"), "w") as f:
        json.dump({"ids": PROMPTS[0], "logits": logits[0].tolist(),
                   "note": "transformers logits of tests/fixtures/models/gemma3 with attention scale head_dim^-1/2"}, f)


def main():
    model = build()
    write_hf(model)
    write_gguf(model)
    write_hf(build_gemma2(), os.path.join(ROOT, "tests", "fixtures", "models", "gemma2"))
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
