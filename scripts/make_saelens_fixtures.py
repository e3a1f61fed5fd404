#!/usr/bin/env python3
"""Writes tests/fixtures/saelens/: tiny SAEs saved by SAELens itself (`standard`, `topk`,
`topk` with `rescale_acts_by_decoder_norm`, `jumprelu`; d_in 16 = the tiny test Llamas' hidden
width, 24 latents, hook blocks.1.hook_resid_post) and, beside each, `expected.safetensors` with
20 input rows and SAELens' own `encode` (`activations`) and `decode` (`reconstructions`) of them.

Run with the SAELens environment scripts/check_saelens.py creates:
  ~/.cache/steerlab/saelens-env/bin/python scripts/make_saelens_fixtures.py
"""
from pathlib import Path

import sae_lens
import torch
from safetensors.torch import save_file
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "saelens"
D_IN, D_SAE = 16, 24
torch.manual_seed(19)
x = torch.randn(20, D_IN)
for name, cls, cfgc, kw in [
    ("standard", StandardSAE, StandardSAEConfig, {}),
    ("topk", TopKSAE, TopKSAEConfig, {"k": 3}),
    ("topk_rescaled", TopKSAE, TopKSAEConfig, {"k": 3, "rescale_acts_by_decoder_norm": True}),
    ("jumprelu", JumpReLUSAE, JumpReLUSAEConfig, {}),
]:
    sae = cls(cfgc(d_in=D_IN, d_sae=D_SAE, **kw))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p) * 0.4)
        if hasattr(sae, "threshold"):
            sae.threshold.copy_(torch.rand_like(sae.threshold) * 0.6)
    sae.cfg.metadata.model_name = "tiny-llama"
    sae.cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    d = OUT / name
    sae.save_model(str(d))
    with torch.no_grad():
        z = sae.encode(x)
        r = sae.decode(z)
    save_file({"inputs": x.contiguous(), "activations": z.contiguous(),
               "reconstructions": r.contiguous()}, str(d / "expected.safetensors"))
    print(f"{d}: {name}, L0 {float((z != 0).sum(1).float().mean()):.2f}")
print(f"SAELens {sae_lens.__version__}")
