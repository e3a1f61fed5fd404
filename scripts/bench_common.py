"""Shared pieces of the PyTorch benchmark twins (scripts/bench_*_torch.py): the random-init model
shapes and the token-id patterns of src/cli/bench/inputs.rs, so both sides run the same computation on the
same inputs. Not a test."""
import os
import resource

import torch

# name -> (model_type, hidden, intermediate, layers, heads, kv heads, vocab, rope theta, rms eps);
# the same table as random_config() in src/cli/bench/inputs.rs.
SHAPES = {
    "llama:smollm2": ("llama", 576, 1536, 30, 9, 3, 49152, 100000.0, 1e-5),
    "qwen2:0.5b": ("qwen2", 896, 4864, 24, 14, 2, 151936, 1e6, 1e-6),
    "qwen2:1.5b": ("qwen2", 1536, 8960, 28, 12, 2, 151936, 1e6, 1e-6),
    "llama:tiny": ("llama", 64, 128, 4, 4, 2, 256, 10000.0, 1e-5),
}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def default_model():
    home = os.environ.get("STEERLAB_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "steerlab"
    )
    return os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def load_model(model, random, device, dtype, attn):
    """A transformers causal LM: random-init of a named shape, an HF folder, or a .gguf file."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dt = DTYPES[dtype]
    if random:
        mt, h, i, l, nh, nkv, v, theta, eps = SHAPES[random]
        cfg = AutoConfig.for_model(
            mt, hidden_size=h, intermediate_size=i, num_hidden_layers=l, num_attention_heads=nh,
            num_key_value_heads=nkv, vocab_size=v, rope_theta=theta, rms_norm_eps=eps,
            max_position_embeddings=8192, tie_word_embeddings=True, hidden_act="silu",
        )
        torch.manual_seed(0)
        with torch.device(device):
            m = AutoModelForCausalLM.from_config(cfg, dtype=dt, attn_implementation=attn)
        return m.eval()
    if model.endswith(".gguf"):
        m = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(model), gguf_file=os.path.basename(model), dtype=torch.float32,
            attn_implementation=attn,
        )
    else:
        m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation=attn)
    return m.to(device=device, dtype=dt).eval()


def bench_ids(batch, seq, vocab):
    """bench_ids() of src/cli/bench/inputs.rs."""
    return torch.tensor([[(b * 131 + t * 7919 + 13) % vocab for t in range(seq)] for b in range(batch)])


def bench_pairs(batch, seq, vocab):
    """bench_pairs() of src/cli/bench/inputs.rs: (prompt, chosen, rejected) id lists."""
    p = max(seq // 2, 1)
    r = max(seq - p, 1)
    return [
        (
            [(b * 131 + t * 7919 + 13) % vocab for t in range(p)],
            [(b * 137 + t * 4099 + 29) % vocab for t in range(r)],
            [(b * 139 + t * 6151 + 31) % vocab for t in range(r)],
        )
        for b in range(batch)
    ]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def gpu_peak_mb(device):
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return None
