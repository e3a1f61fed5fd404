#!/usr/bin/env python3
"""Runs SAELens itself on steerlab's SAE folders and compares its encode/decode with steerlab's.

  python3 scripts/check_saelens.py [--steerlab BIN] [--work DIR] [RUN_DIR PAIRS]...

1. Signed SAEs (steerlab's own): for each RUN_DIR (a `steerlab sae run` output) with the PAIRS
   it should encode (default: one run made here on 300 `steerlab data synth` pairs with MiniLM,
   M = 32, K = 4), `steerlab sae encode --sae RUN_DIR --data PAIRS` writes `inputs` (embedding
   differences), `activations` (steerlab's signed form) and `reconstructions`; SAELens loads
   RUN_DIR with `SAE.load_from_disk`, encodes the same inputs (2M jumprelu latents; feature j =
   acts[2j] - acts[2j+1]) and decodes them. Also on 200 random rows of the inputs' scale
   (`sae encode --inputs`).
2. Unsigned SAEs (SAELens' own): SAELens writes `standard`, `topk` (with and without
   `rescale_acts_by_decoder_norm`) and `jumprelu` SAEs with random weights; steerlab encodes
   random rows with them (`sae encode --inputs`); SAELens' encode/decode are the reference.

Passes when every activation and reconstruction agrees within 1e-5 (entries whose SAELens
pre-activation lies within 1e-5 of a threshold, or ties at the k-th place, are counted and
reported, not compared). SAELens is installed on first use into its own cached virtual
environment ($STEERLAB_SAELENS_ENV, else ~/.cache/steerlab/saelens-env) with `pip install
sae-lens`; when ~/.cache/steerlab/torchenv exists its torch is reused (a .pth file) instead of
downloading torch again.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOME = Path(os.environ.get("STEERLAB_HOME") or Path.home() / ".cache" / "steerlab")
ENV = Path(os.environ.get("STEERLAB_SAELENS_ENV") or HOME / "saelens-env")
PIN = "sae-lens==6.54.12"
TOL = 1e-5


def ensure_env():
    """Re-executes this script under the SAELens environment, creating it when missing."""
    py = ENV / "bin" / "python"
    if os.environ.get("STEERLAB_IN_SAELENS_ENV") == "1":
        return
    if not (ENV / ".steerlab-ready").exists():
        t0 = time.time()
        print(f"installing {PIN} into {ENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
        torchenv = HOME / "torchenv" / "lib"
        site = next((ENV / "lib").glob("python3*/site-packages"))
        if torchenv.exists():
            tsite = next(torchenv.glob("python3*/site-packages"), None)
            if tsite is not None:
                (site / "torchenv.pth").write_text(str(tsite) + "\n")
        subprocess.run([str(py), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", PIN], check=True)
        (ENV / ".steerlab-ready").write_text(PIN + "\n")
        print(f"installed in {time.time() - t0:.0f} s", file=sys.stderr)
    env = dict(os.environ, STEERLAB_IN_SAELENS_ENV="1")
    os.execve(str(py), [str(py), *sys.argv], env)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def compare(name, got, want, ambiguous):
    """Max |got - want| over entries not marked ambiguous; returns (max diff, n compared)."""
    import torch
    mask = ~ambiguous
    d = (got - want).abs()
    worst = float(d[mask].max()) if mask.any() else 0.0
    return worst, int(mask.sum())


def check_signed(steerlab, run_dir, pairs, work, results):
    import torch
    from safetensors.torch import load_file, save_file
    from sae_lens import SAE

    enc = work / f"{run_dir.name}.encoded.safetensors"
    run([steerlab, "sae", "encode", "--sae", run_dir, "--data", pairs, "--out", enc])
    sae = SAE.load_from_disk(str(run_dir))
    cfg = json.loads((run_dir / "cfg.json").read_text())
    st = cfg["metadata"]["steerlab"]
    m = st["features"]
    assert sae.cfg.d_sae == 2 * m, (sae.cfg.d_sae, m)
    t = load_file(str(enc))
    x = t["inputs"]
    rnd = work / f"{run_dir.name}.random.safetensors"
    g = torch.Generator().manual_seed(0)
    xr = torch.randn(200, x.shape[1], generator=g) * x.std(0) + x.mean(0)
    save_file({"inputs": xr.contiguous()}, str(rnd))
    renc = work / f"{run_dir.name}.random.encoded.safetensors"
    run([steerlab, "sae", "encode", "--sae", run_dir, "--inputs", rnd, "--out", renc])
    for label, tt in [("pairs", t), ("random rows", load_file(str(renc)))]:
        x = tt["inputs"]
        with torch.no_grad():
            z = sae.encode(x)
            recon = sae.decode(z)
            pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        signed = z[:, 0::2] - z[:, 1::2]
        amb = ((pre.abs() - sae.threshold).abs() < TOL)
        amb_feat = amb[:, 0::2] | amb[:, 1::2]
        da, n = compare("activations", tt["activations"], signed, amb_feat)
        row_amb = amb_feat.any(1, keepdim=True).expand_as(recon)
        dr, _ = compare("reconstructions", tt["reconstructions"], recon, row_amb)
        l0_sl = float((signed != 0).sum(1).float().mean())
        l0_st = float((tt["activations"] != 0).sum(1).float().mean())
        same_rows = int(((tt["activations"] - signed).abs().max(1).values <= TOL).sum())
        results.append({
            "sae": f"{run_dir.name} (signed, {m} features as {2 * m} jumprelu latents)",
            "inputs": f"{label} ({x.shape[0]})",
            "max |activation diff|": da, "max |reconstruction diff|": dr,
            "rows identical": f"{same_rows}/{x.shape[0]}",
            "L0 steerlab / SAELens": f"{l0_st:.3f} / {l0_sl:.3f}",
            "at threshold (skipped)": int(amb_feat.sum()),
            "ok": da <= TOL and dr <= TOL,
        })


def check_unsigned(steerlab, work, results):
    import torch
    from safetensors.torch import load_file, save_file
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    d_in, d_sae = 48, 96
    x = torch.randn(200, d_in)
    xp = work / "unsigned.inputs.safetensors"
    save_file({"inputs": x.contiguous()}, str(xp))
    cases = [
        ("standard", StandardSAE, StandardSAEConfig, {}),
        ("topk k=8", TopKSAE, TopKSAEConfig, {"k": 8}),
        ("topk k=8 rescaled", TopKSAE, TopKSAEConfig, {"k": 8, "rescale_acts_by_decoder_norm": True}),
        ("jumprelu", JumpReLUSAE, JumpReLUSAEConfig, {}),
    ]
    for name, cls, cfgc, kw in cases:
        sae = cls(cfgc(d_in=d_in, d_sae=d_sae, **kw))
        with torch.no_grad():
            for p in sae.parameters():
                p.copy_(torch.randn_like(p) * 0.3)
            if hasattr(sae, "threshold"):
                sae.threshold.copy_(torch.rand_like(sae.threshold) * 0.5)
        sae.cfg.metadata.model_name = "random"
        sae.cfg.metadata.hook_name = "blocks.0.hook_resid_post"
        d = work / ("saelens_" + name.replace(" ", "_").replace("=", ""))
        sae.save_model(str(d))
        out = work / f"{d.name}.encoded.safetensors"
        run([steerlab, "sae", "encode", "--sae", d, "--inputs", xp, "--out", out])
        t = load_file(str(out))
        with torch.no_grad():
            z = sae.encode(x)
            recon = sae.decode(z)
            pre = sae.process_sae_in(x) @ sae.W_enc + sae.b_enc
            if kw.get("rescale_acts_by_decoder_norm"):
                pre = pre * sae.W_dec.norm(dim=-1)
        if hasattr(sae, "threshold"):
            amb = (pre - sae.threshold).abs() < TOL
        elif "k" in kw:
            kth = pre.topk(kw["k"], dim=-1).values[:, -1:]
            nxt = pre.topk(kw["k"] + 1, dim=-1).values[:, -1:]
            tie = (kth - nxt).abs() < TOL
            amb = tie.expand_as(pre).clone()
        else:
            amb = pre.abs() < TOL
        da, _ = compare("activations", t["activations"], z, amb)
        row_amb = amb.any(1, keepdim=True).expand_as(recon)
        dr, _ = compare("reconstructions", t["reconstructions"], recon, row_amb)
        same_rows = int(((t["activations"] - z).abs().max(1).values <= TOL).sum())
        results.append({
            "sae": f"SAELens {name} ({d_sae} latents, d_in {d_in})",
            "inputs": f"random rows ({x.shape[0]})",
            "max |activation diff|": da, "max |reconstruction diff|": dr,
            "rows identical": f"{same_rows}/{x.shape[0]}",
            "L0 steerlab / SAELens": f"{float((t['activations'] != 0).sum(1).float().mean()):.3f} / "
                                      f"{float((z != 0).sum(1).float().mean()):.3f}",
            "at threshold (skipped)": int(amb.sum()),
            "ok": da <= TOL and dr <= TOL,
        })


def main():
    ensure_env()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steerlab", default=None, help="steerlab binary (default: build release)")
    ap.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("runs", nargs="*", help="RUN_DIR PAIRS pairs")
    a = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    steerlab = a.steerlab
    if steerlab is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
        steerlab = str(root / "target" / "release" / "steerlab")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="check-saelens-"))
    work.mkdir(parents=True, exist_ok=True)
    if len(a.runs) % 2:
        sys.exit("give RUN_DIR PAIRS pairs")
    runs = [(Path(a.runs[i]), Path(a.runs[i + 1])) for i in range(0, len(a.runs), 2)]
    if not runs:
        data = work / "synth.jsonl"
        run([steerlab, "data", "synth", "--out", data, "--n", "300", "--seed", "1"])
        out = work / "run_minilm"
        run([steerlab, "sae", "run", "--data", data, "--out", out, "--seed", "1", "--epochs", "10"])
        runs = [(out, data)]
    import sae_lens
    import torch
    results = []
    for run_dir, pairs in runs:
        check_signed(steerlab, run_dir, pairs, work, results)
    check_unsigned(steerlab, work, results)
    print(f"SAELens {sae_lens.__version__}, torch {torch.__version__}; tolerance {TOL}")
    keys = list(results[0].keys())
    for r in results:
        print("- " + "; ".join(
            f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    bad = [r for r in results if not r["ok"]]
    if bad:
        sys.exit(f"FAILED: {len(bad)} of {len(results)} checks differ by more than {TOL}")
    print(f"OK: {len(results)} checks")


if __name__ == "__main__":
    main()
