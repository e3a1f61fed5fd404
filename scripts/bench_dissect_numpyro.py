#!/usr/bin/env python3
"""NumPyro twin of `steerlab bench dissect`: times a NUTS fit (500 warm-up, 2000 draws x 4 chains,
as GAIR) of the Bayesian logistic regression (no intercept, Laplace(0, b) prior) on the data file
that `steerlab bench dissect --save-data F.json` wrote. The first run includes JIT compilation and
is reported separately. Not a test.

    pip install numpyro jax
    python3 scripts/bench_dissect_numpyro.py F.json [--json]
"""
import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with open(a.data) as f:
        fx = json.load(f)
    import numpyro

    numpyro.set_host_device_count(4)
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    X = jnp.asarray(np.array(fx["X"], dtype=np.float32))
    y = jnp.asarray(np.array(fx["y"]))
    b = fx["prior_scales"][0]

    def model(X, y, scale):
        alpha = numpyro.sample("alpha", dist.Laplace(jnp.zeros(X.shape[1]), scale))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("obs", dist.Bernoulli(logits=X @ alpha), obs=y)

    times = []
    for rep in range(2):
        mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=2000, num_chains=4,
                    progress_bar=False, chain_method="parallel")
        t0 = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(rep), X, y, b)
        s = mcmc.get_samples()["alpha"]
        s.block_until_ready()
        times.append(time.perf_counter() - t0)
    r = {"bench": "dissect", "side": "numpyro-nuts", "pairs": int(X.shape[0]), "factors": int(X.shape[1]),
         "prior_scale": b, "s_per_fit": times[1], "s_first_with_jit": times[0],
         "mean": np.asarray(s).mean(0).tolist()}
    if a.json:
        print(json.dumps(r))
    else:
        print(f"numpyro NUTS {r['pairs']} pairs x {r['factors']} factors, b = {b}: {times[1]:.3f} s per fit "
              f"(first run with JIT {times[0]:.2f} s); mean {np.round(r['mean'], 3).tolist()}")


if __name__ == "__main__":
    main()
