#!/usr/bin/env python3
"""Reference posterior for steerlab's factor dissection (src/dissect), from NumPyro NUTS.

Model (GAIR-NLP Preference-Dissection): Bayesian logistic regression without intercept,
alpha_j ~ Laplace(0, b), y_i ~ Bernoulli(logits = x_i . alpha).

1. Generates a small planted data set (seeded; X entries in {-1, 0, 1} like sign(f(A) - f(B))
   features, y sampled from the planted weights) and writes it to
   tests/fixtures/dissect/nuts_fixture.json (X, y, prior scales, planted weights), unless it
   already exists (pass --regenerate to overwrite).
2. Fits it with NumPyro NUTS (500 warm-up, 2000 draws x 4 chains, as GAIR does) for each prior
   scale and writes posterior means, sds and 95% intervals plus wall-clock times to
   tests/fixtures/dissect/numpyro_posterior.json.

The Rust test tests/dissect_numpyro.rs asserts steerlab's NUTS and Laplace-approximation means
are within 0.05 of these. Run from the repository root:

    pip install numpyro jax
    python3 scripts/numpyro_check.py
"""
import argparse
import json
import os
import time

import numpy as np

FIX_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "dissect")
FIXTURE = os.path.join(FIX_DIR, "nuts_fixture.json")
OUT = os.path.join(FIX_DIR, "numpyro_posterior.json")


def make_fixture(seed=7, n=400):
    rng = np.random.default_rng(seed)
    names = ["f_strong_pos", "f_medium_neg", "f_small_pos", "f_zero", "f_strong_neg", "f_sparse"]
    w = np.array([1.2, -0.6, 0.25, 0.0, -1.0, 0.8])
    p = len(w)
    # sign features: mostly +-1 with some ties (0); the last one is sparse (mostly 0)
    probs_zero = np.array([0.2, 0.3, 0.25, 0.2, 0.15, 0.8])
    X = np.zeros((n, p))
    for j in range(p):
        z = rng.random(n) < probs_zero[j]
        s = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        X[:, j] = np.where(z, 0.0, s)
    logits = X @ w
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    return {
        "description": "planted sign features for the NumPyro comparison (scripts/numpyro_check.py)",
        "names": names,
        "planted": w.tolist(),
        "X": X.astype(int).tolist(),
        "y": y.tolist(),
        "prior_scales": [0.1, 1.0],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=OUT, help="where to write the reference (default: the committed fixture)")
    args = ap.parse_args()

    os.makedirs(FIX_DIR, exist_ok=True)
    if args.regenerate or not os.path.exists(FIXTURE):
        fx = make_fixture()
        with open(FIXTURE, "w") as f:
            json.dump(fx, f)
    with open(FIXTURE) as f:
        fx = json.load(f)

    import numpyro

    numpyro.set_host_device_count(4)
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    X = jnp.asarray(np.array(fx["X"], dtype=np.float32))
    y = jnp.asarray(np.array(fx["y"]))

    def model(X, y, scale):
        alpha = numpyro.sample("alpha", dist.Laplace(jnp.zeros(X.shape[1]), scale))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("obs", dist.Bernoulli(logits=X @ alpha), obs=y)

    results = []
    for b in fx["prior_scales"]:
        times = []
        for rep in range(2):  # the first run includes JIT compilation
            mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=2000, num_chains=4,
                        progress_bar=False, chain_method="parallel")
            t0 = time.perf_counter()
            mcmc.run(jax.random.PRNGKey(args.seed + rep), X, y, b)
            s = mcmc.get_samples(group_by_chain=True)["alpha"]
            s.block_until_ready()
            times.append(time.perf_counter() - t0)
        s = np.asarray(s)
        flat = s.reshape(-1, s.shape[-1])
        results.append({
            "prior_scale": b,
            "mean": flat.mean(0).tolist(),
            "sd": flat.std(0, ddof=1).tolist(),
            "lo95": np.quantile(flat, 0.025, axis=0).tolist(),
            "hi95": np.quantile(flat, 0.975, axis=0).tolist(),
            "rhat": np.asarray(split_gelman_rubin(s)).tolist(),
            "ess": np.asarray(effective_sample_size(s)).tolist(),
            "seconds_first_run_with_jit": times[0],
            "seconds_second_run": times[1],
        })
        print(f"b={b}: mean={np.round(flat.mean(0), 3)} time={times[1]:.2f}s (first {times[0]:.2f}s)")
    out = {
        "numpyro_version": numpyro.__version__,
        "jax_version": jax.__version__,
        "settings": {"num_warmup": 500, "num_samples": 2000, "num_chains": 4, "chain_method": "parallel"},
        "fits": results,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
