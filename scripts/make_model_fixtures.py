#!/usr/bin/env python3
"""Build tiny seeded random-init models with HF transformers and save reference outputs.

For each architecture (llama untied, llama3 rope_scaling tied, mistral with a sliding window,
qwen2, qwen3) writes tests/fixtures/models/<arch>/:
  config.json, model.safetensors      the model, as HF saves it (f32)
  reference.safetensors               inputs and HF outputs (f32 / i64):
    ids_0, ids_1                      two prompts of different lengths
    logits_0, logits_1                [T, V] logits of each prompt run alone
    resid_pre_0_l0                    embeddings of prompt 0 (= blocks.0.hook_resid_pre)
    resid_post_0_l{l}                 blocks.{l}.hook_resid_post of prompt 0 for every l
    final_hidden_0                    final-norm output of prompt 0
    batch_ids, batch_mask             both prompts right-padded to one batch
    batch_logits                      [2, T, V] HF logits of the padded batch
    generated_0                       8 greedy tokens after prompt 0 (KV cache, no EOS stop)
The llama fixture also gets a tiny character-level BPE tokenizer (tokenizer.json, 96 tokens,
ChatML special tokens) and a tokenizer_config.json with a ChatML chat template, so that the
CLI's --prompt/--chat paths can be tested end to end.

HF's output_hidden_states gives hidden_states[l + 1] = resid_post of block l except for the
last block, where it returns the output of the final norm; the raw last residual is taken
with a forward hook on the last decoder layer instead.

Needs: pip install torch transformers safetensors. Run from the repository root:
    python3 scripts/make_model_fixtures.py
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")

COMMON = dict(
    hidden_size=64,
    intermediate_size=96,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=96,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    hidden_act="silu",
    bos_token_id=1,
    eos_token_id=2,
)

ARCHS = {
    "llama": dict(model_type="llama", num_hidden_layers=3, tie_word_embeddings=False, rope_theta=10000.0),
    "llama3": dict(
        model_type="llama",
        num_hidden_layers=2,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        # original context 32: wavelength 2*pi stays, ~20 is smoothed, longer ones are scaled.
        rope_scaling=dict(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=32,
        ),
    ),
    "mistral": dict(
        model_type="mistral", num_hidden_layers=2, tie_word_embeddings=False, rope_theta=1000.0, sliding_window=4
    ),
    "qwen2": dict(model_type="qwen2", num_hidden_layers=2, tie_word_embeddings=False, rope_theta=10000.0),
    "qwen3": dict(
        model_type="qwen3", num_hidden_layers=2, tie_word_embeddings=False, rope_theta=10000.0, head_dim=24
    ),
}

PROMPTS = [[1, 17, 5, 88, 23, 42, 9, 61, 3], [1, 70, 12, 33, 7, 50]]


def build(name, spec, seed):
    spec = dict(spec)
    model_type = spec.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **COMMON, **spec)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    # HF initialises norms to 1 and biases to 0; randomise everything so every weight matters.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in pname:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)


def write_tokenizer(d, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=list("abcdefghijklmnopqrstuvwxyz?.,"),
        limit_alphabet=30,
    )
    corpus = [
        "what is the capital of france? the capital of france is paris.",
        "a tiny model says hello to the world, and the world says hello back.",
        "steering vectors add a direction to the residual stream of a transformer.",
    ] * 20
    tok.train_from_iterator(corpus, trainer)
    assert tok.get_vocab_size() <= vocab_size, tok.get_vocab_size()
    tok.save(os.path.join(d, "tokenizer.json"))
    cfg = dict(bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>", chat_template=CHATML)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def run(model, ids, mask=None):
    layers = model.model.layers
    captured = {}

    def hook(_mod, _inp, out):
        captured["last"] = (out[0] if isinstance(out, tuple) else out).detach().clone()

    h = layers[-1].register_forward_hook(hook)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    h.remove()
    return out, captured["last"]


def main():
    for i, (name, spec) in enumerate(ARCHS.items()):
        model = build(name, spec, seed=1000 + i)
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        n_layers = model.config.num_hidden_layers
        if name == "llama":
            write_tokenizer(d, COMMON["vocab_size"])
        ref = {}
        for k, p in enumerate(PROMPTS):
            ids = torch.tensor([p], dtype=torch.long)
            out, last = run(model, ids)
            ref[f"ids_{k}"] = ids[0]
            ref[f"logits_{k}"] = out.logits[0].float()
            if k == 0:
                hs = out.hidden_states
                ref["resid_pre_0_l0"] = hs[0][0]
                for l in range(n_layers - 1):
                    ref[f"resid_post_0_l{l}"] = hs[l + 1][0]
                ref[f"resid_post_0_l{n_layers - 1}"] = last[0]
                ref["final_hidden_0"] = hs[n_layers][0]
        t = max(len(p) for p in PROMPTS)
        batch = torch.zeros((len(PROMPTS), t), dtype=torch.long)
        mask = torch.zeros((len(PROMPTS), t), dtype=torch.long)
        for k, p in enumerate(PROMPTS):
            batch[k, : len(p)] = torch.tensor(p)
            mask[k, : len(p)] = 1
        out, _ = run(model, batch, mask)
        ref["batch_ids"] = batch
        ref["batch_mask"] = mask
        ref["batch_logits"] = out.logits.float()
        with torch.no_grad():
            gen = model.generate(
                torch.tensor([PROMPTS[0]]),
                max_new_tokens=8,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        ref["generated_0"] = gen[0, len(PROMPTS[0]) :]
        save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(d, "reference.safetensors"))
        for extra in ("generation_config.json",):
            path = os.path.join(d, extra)
            if os.path.exists(path):
                os.remove(path)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        print(f"{name}: {cfg.get('model_type')} layers={n_layers} generated={ref['generated_0'].tolist()}")
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
