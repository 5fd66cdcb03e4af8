#!/usr/bin/env python3
"""The import graph of a Rust source tree and its cycles: for each module, the
modules it names as `crate::X` / `super::X` (a use or a path), then every
strongly connected component of more than one module.
Usage: import-cycles.py SRC_DIR (e.g. userspace/ghost-exp/src).
Module = file path under SRC without .rs (mod.rs names its directory); the
crate root (main.rs/lib.rs) is left out."""
import os, re, sys
src = sys.argv[1]
mods = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith('.rs'): continue
        p = os.path.join(root, f)
        rel = os.path.relpath(p, src)[:-3]
        parts = rel.split(os.sep)
        if parts[-1] in ('mod', 'main', 'lib'): parts = parts[:-1]
        mods['::'.join(parts) or 'crate'] = p
names = set(mods)
def resolve(cur, path):
    # path like crate::a::b::c or super::x
    segs = path.split('::')
    if segs[0] == 'crate': base = []; segs = segs[1:]
    elif segs[0] in ('super', 'self'):
        base = cur.split('::') if cur != 'crate' else []
        # a file module foo/bar.rs : self = foo::bar, super = foo
        while segs and segs[0] in ('super', 'self'):
            if segs[0] == 'super': base = base[:-1]
            segs = segs[1:]
    else: return None
    full = base + segs
    # longest prefix that is a module
    for i in range(len(full), 0, -1):
        m = '::'.join(full[:i])
        if m in names: return m
    return None
edges = {m: set() for m in names}
for m, p in mods.items():
    txt = open(p).read()
    # strip comments
    txt = re.sub(r'//[^\n]*', '', txt)
    # expand `use crate::{a, b::{c}}` groups roughly: capture crate::ident and super::ident and crate::{...}
    for mm in re.finditer(r'\b(crate|super)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)(::\{([^;]*?)\})?', txt):
        head = mm.group(1) + mm.group(2)
        targets = []
        if mm.group(4):
            for item in re.split(r',', mm.group(4)):
                item = item.strip().lstrip('{').strip()
                if not item: continue
                first = re.split(r'::|\s', item)[0]
                targets.append(head + '::' + first)
        else:
            targets.append(head)
        for t in targets:
            r = resolve(m, t)
            if r and r != m and not m.startswith(r + '::') and r != 'crate':
                edges[m].add(r)
            elif r == 'crate' and t.count('::') >= 1:
                pass
for m in sorted(edges):
    print(f"{m:32} -> {', '.join(sorted(edges[m])) or '-'}")
# Tarjan SCC
idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in sorted(edges):
    if v not in idx: sc(v)
print()
if not sccs: print("cycles: none")
for s in sccs: print(f"cycle ({len(s)} modules): {' '.join(s)}")
sys.exit(1 if sccs else 0)
