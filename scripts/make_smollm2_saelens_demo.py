#!/usr/bin/env python3
"""Writes three SAELens SAE folders (`standard`, `topk`, `jumprelu`) on SmolLM2-135M's residual
stream, saved by SAELens itself, for checking `steerlab sae import` and the Features panel.

  ~/.cache/steerlab/saelens-env/bin/python scripts/make_smollm2_saelens_demo.py CAA.safetensors OUT

They are not trained. Feature 0's encoder and decoder direction is a steerlab CAA vector (a
native .safetensors with one tensor `layers.L`, e.g. the sentiment vector scripts/llama_cpp_parity.sh
trains at layer 14), so its top-activating tokens, logit lens and steering effect can be read
against what that vector is known to do; the other 63 features are random unit directions. The
hook is `blocks.L.hook_resid_post` (the output of block L, where steerlab adds layer L's vector),
d_in 576 (SmolLM2's width). topk: k = 4; jumprelu: thresholds 0.5 (feature 0: 1.0).
"""
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

D_SAE = 64


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    vec, out = Path(sys.argv[1]), Path(sys.argv[2])
    with safe_open(str(vec), "pt") as f:
        keys = [k for k in f.keys() if k.startswith("layers.")]
        if len(keys) != 1:
            sys.exit(f"{vec}: expected one tensor layers.L, found {list(f.keys())}")
        layer = int(keys[0].split(".")[1])
        u = f.get_tensor(keys[0]).float()
    d_in = u.numel()
    u = u / u.norm()
    g = torch.Generator().manual_seed(19)
    dirs = torch.randn(D_SAE, d_in, generator=g)
    dirs[0] = u
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    for name, cls, cfgc, kw in [
        ("standard", StandardSAE, StandardSAEConfig, {}),
        ("topk", TopKSAE, TopKSAEConfig, {"k": 4}),
        ("jumprelu", JumpReLUSAE, JumpReLUSAEConfig, {}),
    ]:
        sae = cls(cfgc(d_in=d_in, d_sae=D_SAE, **kw))
        with torch.no_grad():
            sae.W_enc.copy_(dirs.T)
            sae.W_dec.copy_(dirs)
            sae.b_enc.zero_()
            sae.b_dec.zero_()
            if hasattr(sae, "threshold"):
                sae.threshold.fill_(0.5)
                sae.threshold[0] = 1.0
        sae.cfg.metadata.model_name = "SmolLM2-135M-Instruct"
        sae.cfg.metadata.hook_name = f"blocks.{layer}.hook_resid_post"
        d = out / name
        sae.save_model(str(d))
        print(f"wrote {d} ({name}, d_in {d_in}, {D_SAE} latents, blocks.{layer}.hook_resid_post)")


if __name__ == "__main__":
    main()
