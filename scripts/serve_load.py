#!/usr/bin/env python3
"""Bounded load run against a running `steerlab serve` (or any OpenAI-compatible server).

N concurrent clients each send M streamed chat requests (greedy, fixed max_tokens); with
--vector, every other request is steered (mixed steering). Measures per-request latency (to the
last byte) and time to first token, counts errors, and prints one JSON line: p50/p95 latency,
p50 time to first token, generated tokens per second over the wall time. Standard library only.

Usage: serve_load.py --base-url http://127.0.0.1:8000/v1 --model ID [--vector NAME --scale S]
       [--clients 4] [--requests 10] [--max-tokens 32] [--api-key KEY]
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    "Tell me about your day.",
    "What is a good name for a cat?",
    "Describe the sea in one sentence.",
    "Give me a tip for cooking rice.",
    "Why is the sky blue?",
]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one(url, a, i, steer):
    body = {
        "model": a.model,
        "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        "max_tokens": a.max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if steer:
        body["steering"] = [{"vector": a.vector, "scale": a.scale}]
    headers = {"Content-Type": "application/json"}
    if a.api_key:
        headers["Authorization"] = f"Bearer {a.api_key}"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", url.path.rstrip("/") + "/chat/completions", json.dumps(body), headers)
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    first, tokens, done = None, None, False
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            done = True
            break
        ev = json.loads(data)
        if "error" in ev:
            raise RuntimeError(ev["error"]["message"])
        if ev.get("usage"):
            tokens = ev["usage"]["completion_tokens"]
        if first is None and any(c.get("delta", {}).get("content") for c in ev.get("choices", [])):
            first = time.perf_counter() - t0
    conn.close()
    if not done or tokens is None:
        raise RuntimeError("stream ended without usage and [DONE]")
    return time.perf_counter() - t0, first, tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--vector")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--api-key")
    a = ap.parse_args()
    if not (1 <= a.clients <= 64 and 1 <= a.requests <= 1000 and 1 <= a.max_tokens <= 4096):
        sys.exit("serve_load: --clients 1..64, --requests 1..1000, --max-tokens 1..4096")
    url = urllib.parse.urlparse(a.base_url)
    lat, ttft, toks, errors = [], [], [], []
    lock = threading.Lock()

    def client(c):
        for j in range(a.requests):
            i = c * a.requests + j
            steer = bool(a.vector) and i % 2 == 1
            try:
                l, f, n = one(url, a, i, steer)
                with lock:
                    lat.append(l)
                    toks.append(n)
                    if f is not None:
                        ttft.append(f)
            except Exception as e:  # counted, reported
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out = {
        "clients": a.clients,
        "requests_per_client": a.requests,
        "max_tokens": a.max_tokens,
        "steered_share": 0.5 if a.vector else 0.0,
        "ok": len(lat),
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall, 2),
        "latency_p50_s": round(pct(lat, 50), 3) if lat else None,
        "latency_p95_s": round(pct(lat, 95), 3) if lat else None,
        "ttft_p50_s": round(pct(ttft, 50), 3) if ttft else None,
        "ttft_p95_s": round(pct(ttft, 95), 3) if ttft else None,
        "tokens": sum(toks),
        "tokens_per_s": round(sum(toks) / wall, 2),
        "mean_tokens_per_request": round(statistics.mean(toks), 1) if toks else None,
    }
    print(json.dumps(out))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
