#!/usr/bin/env python3
"""Talk to a running `steerlab serve` with the official `openai` Python client.

Checks plain, streamed and steered requests on /v1/chat/completions and /v1/completions, that
a steered greedy answer equals the text in --expected-steered (what `steerlab generate --steer`
printed with the same settings), that a steered and an unsteered request in flight at the same
time each get their own answer, stop strings, and the client-visible errors (400 naming the
field, 401, 404). Prints one JSON summary line; exits 1 on the first failed check.

Usage: check_serve_openai.py --base-url URL --model ID --api-key KEY --vector NAME --scale S
       --prompt TEXT --max-tokens N --expected-steered FILE
"""
import argparse
import json
import sys
import threading

import openai


def fail(msg):
    print(f"check_serve_openai: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def extra(obj, key):
    """A field the OpenAI schema does not know (kept by the client as an extra)."""
    d = obj.model_dump() if hasattr(obj, "model_dump") else dict(obj)
    return d.get(key)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--vector", required=True)
    ap.add_argument("--scale", type=float, required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-tokens", type=int, required=True)
    ap.add_argument("--expected-steered", required=True)
    a = ap.parse_args()

    client = openai.OpenAI(base_url=a.base_url, api_key=a.api_key, max_retries=0, timeout=600)
    summary = {"openai_version": openai.__version__}

    # /v1/models
    ids = [m.id for m in client.models.list().data]
    check(a.model in ids, f"/v1/models lists {ids}, not {a.model}")

    messages = [{"role": "user", "content": a.prompt}]
    greedy = dict(model=a.model, messages=messages, max_tokens=a.max_tokens, temperature=0)
    steering = [{"vector": a.vector, "scale": a.scale}]

    # Plain chat.
    r = client.chat.completions.create(**greedy)
    plain = r.choices[0].message.content
    check(isinstance(plain, str) and plain.strip(), f"empty plain answer: {r}")
    check(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")
    check(r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0, f"usage {r.usage}")
    check(extra(r, "steering") == {"applied": []}, f"unsteered steering field {extra(r, 'steering')}")
    summary["plain"] = plain

    # Streamed chat: the same text, a role first, [DONE] handled by the client, usage at the end.
    parts, finish, usage, role = [], None, None, None
    for chunk in client.chat.completions.create(
        **greedy, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                role = c.delta.role
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    streamed = "".join(parts)
    check(streamed == plain, f"streamed {streamed!r} != plain {plain!r}")
    check(role == "assistant", f"stream role {role}")
    check(finish == r.choices[0].finish_reason, f"stream finish {finish}")
    check(usage is not None and usage.completion_tokens == r.usage.completion_tokens, f"stream usage {usage}")
    summary["stream_chunks"] = len(parts)

    # Steered chat equals `steerlab generate --steer`, and says what it applied.
    expected = open(a.expected_steered, encoding="utf-8").read()
    r = client.chat.completions.create(**greedy, extra_body={"steering": steering})
    steered = r.choices[0].message.content
    check(steered == expected, f"steered {steered!r} != steerlab generate --steer {expected!r}")
    check(steered != plain, f"steering changed nothing: {steered!r}")
    applied = extra(r, "steering")["applied"]
    check(
        len(applied) == 1 and applied[0]["vector"] == a.vector and applied[0]["scale"] == a.scale,
        f"applied {applied}",
    )
    summary["steered"] = steered

    # Streamed steered chat: same text.
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(**greedy, stream=True, extra_body={"steering": steering})
        if c.choices
    )
    check(text == steered, f"streamed steered {text!r} != {steered!r}")

    # /v1/completions, plain and streamed.
    comp = dict(model=a.model, prompt="The capital of France is", max_tokens=8, temperature=0)
    r = client.completions.create(**comp)
    ctext = r.choices[0].text
    check(ctext.strip(), f"empty completion {r}")
    stext = "".join(c.choices[0].text for c in client.completions.create(**comp, stream=True) if c.choices)
    check(stext == ctext, f"streamed completion {stext!r} != {ctext!r}")
    summary["completion"] = ctext

    # Stop strings: cut before the first occurrence, finish_reason stop.
    words = plain.split()
    if len(words) >= 3:
        stop = " " + words[2]
        cut = plain[: plain.find(stop)] if stop in plain else None
        if cut is not None:
            r = client.chat.completions.create(**greedy, stop=[stop])
            check(r.choices[0].message.content == cut, f"stop {stop!r}: {r.choices[0].message.content!r} != {cut!r}")
            check(r.choices[0].finish_reason == "stop", f"stop finish {r.choices[0].finish_reason}")
            summary["stop_checked"] = stop

    # A steered and an unsteered request in flight at once: each gets its own answer.
    results = {}

    def run(key, body):
        try:
            out = []
            for c in client.chat.completions.create(**greedy, stream=True, extra_body=body):
                if c.choices and c.choices[0].delta.content:
                    out.append(c.choices[0].delta.content)
            results[key] = "".join(out)
        except Exception as e:  # reported below
            results[key] = e

    threads = [
        threading.Thread(target=run, args=("steered", {"steering": steering})),
        threading.Thread(target=run, args=("plain", {})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(results.get("steered") == steered, f"concurrent steered: {results.get('steered')!r}")
    check(results.get("plain") == plain, f"concurrent plain: {results.get('plain')!r}")

    # Errors the client sees.
    for name, field in [("../" + a.vector, "steering[0].vector"), ("no_such_vector", "steering[0].vector")]:
        try:
            client.chat.completions.create(**greedy, extra_body={"steering": [{"vector": name}]})
            fail(f"vector {name!r} was accepted")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and field in str(e), f"vector {name!r}: {e}")
    try:
        client.chat.completions.create(**{**greedy, "temperature": 7})
        fail("temperature 7 was accepted")
    except openai.BadRequestError as e:
        check("temperature" in str(e), f"temperature error {e}")
    try:
        client.chat.completions.create(**{**greedy, "model": "not-this-model"})
        fail("an unknown model was accepted")
    except openai.NotFoundError as e:
        check(e.status_code == 404, f"model error {e}")
    bad = openai.OpenAI(base_url=a.base_url, api_key=a.api_key + "x", max_retries=0)
    try:
        bad.models.list()
        fail("a wrong API key was accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, f"auth error {e}")

    summary["ok"] = True
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
