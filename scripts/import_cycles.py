#!/usr/bin/env python3
"""Lists import cycles between the files of src/ (issue 15: the layering has none).

A file imports another when it names an item path that resolves to that file: `use crate::a::b`,
`crate::a::b::f(...)` in code, `super::x`, `self::x`. A path resolves to the deepest module file it
names (src/a/b.rs or src/a/b/mod.rs); re-exports through a parent `mod.rs` count as imports of that
parent. Child `tests` modules (#[cfg(test)] mod tests in the same file) are ignored, and so are
doc comments. Prints each strongly connected component of more than one file; exit 1 if any.

Usage: python3 scripts/import_cycles.py [SRC_DIR]
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
src = os.path.normpath(src)


def module_of(path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod" or rel == ["lib"]:
        rel = rel[:-1]
    return tuple(rel)


files = {}
for root, _, names in os.walk(src):
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(root, n)
            files[module_of(p)] = p
files.pop(("main",), None)


def resolve(mod_path):
    """The deepest existing module file along mod_path."""
    for k in range(len(mod_path), -1, -1):
        if tuple(mod_path[:k]) in files:
            return tuple(mod_path[:k])
    return None


def strip(text):
    # drop #[cfg(test)] mod tests { ... } at the end of files, comments and strings
    i = text.find("#[cfg(test)]\nmod tests")
    if i >= 0:
        text = text[:i]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    return text


edges = {m: set() for m in files}
path_re = re.compile(r"\b(crate|super|self)((?:::\s*\w+)+)")
for m, p in files.items():
    text = strip(open(p, encoding="utf-8").read())
    # expand `use x::{a, b::{c}}` groups into single paths
    for use in re.finditer(r"\buse\s+([^;]+);", text):
        body = re.sub(r"\s+", "", use.group(1))

        def expand(prefix, s):
            if "{" not in s:
                return [prefix + s]
            head, rest = s.split("{", 1)
            inner = rest[: rest.rfind("}")]
            parts, depth, cur = [], 0, ""
            for ch in inner:
                if ch == "," and depth == 0:
                    parts.append(cur)
                    cur = ""
                    continue
                depth += ch == "{"
                depth -= ch == "}"
                cur += ch
            parts.append(cur)
            out = []
            for part in parts:
                if part:
                    out += expand(prefix + head, part)
            return out

        for full in expand("", body):
            text += "\n" + full.split(" as ")[0] + "\n"
    for mt in path_re.finditer(text):
        root, rest = mt.group(1), [x for x in re.split(r"::", re.sub(r"\s+", "", mt.group(2))) if x]
        if root == "crate":
            target = rest
        elif root == "self":
            target = list(m) + rest
        else:  # super: the parent module (module_of already maps a/mod.rs to a)
            target = list(m[:-1])
            while rest and rest[0] == "super":
                target = target[:-1]
                rest = rest[1:]
            target = target + rest
        t = resolve(target)
        if t is not None and t != m and t != ():
            edges[m].add(t)

# Tarjan's SCC
index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(10000)


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(comp)


for v in list(edges):
    if v not in index:
        strong(v)
for comp in sccs:
    names = sorted(os.path.relpath(files[c], src) for c in comp)
    print(f"cycle of {len(names)} files: " + ", ".join(names))
    for c in sorted(comp):
        outs = sorted(os.path.relpath(files[t], src) for t in edges[c] if t in comp)
        print(f"  {os.path.relpath(files[c], src)} -> {', '.join(outs)}")
print(f"{len(files)} files, {sum(len(e) for e in edges.values())} import edges, {len(sccs)} cycles")
sys.exit(1 if sccs else 0)
