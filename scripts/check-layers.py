#!/usr/bin/env python3
"""check-layers.py [SRC] — the layer rule of the README's Layout section, checked on includes.

Each folder of src/ is a layer; a file may include headers of its own layer and of those
under it, never of one above or beside it:

    util < disk < fs < node, flash < build < cmd < piflash.c

node and flash sit side by side and include neither each other. In C a call needs a
declaration, so an include the rule allows is also the only way to call across layers (a
hand-written extern declaration would slip past; grep for 'extern' if in doubt). The files'
own includes must not form a circle either: a header that includes another that includes
it, or .c files pulled into each other.

Prints every include that breaks the rule and every circle, and exits 1 if there is one;
prints one summary line and exits 0 otherwise.
"""
import os
import re
import sys

RANK = {"util": 0, "disk": 1, "fs": 2, "node": 3, "flash": 3, "build": 4, "cmd": 5, "": 6}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer(path):
    """The layer of a path relative to src/ ("" for piflash.c at the top)."""
    return path.split("/", 1)[0] if "/" in path else ""


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith((".c", ".h")):
                p = os.path.relpath(os.path.join(root, n), src)
                with open(os.path.join(root, n), encoding="utf-8", errors="replace") as f:
                    files[p] = INCLUDE.findall(f.read())
    bad = []
    edges = {}
    for p, incs in sorted(files.items()):
        own = layer(p)
        if own not in RANK:
            bad.append(f"{p}: in a folder the layer rule does not know ('{own}')")
            continue
        for inc in incs:
            if inc not in files:
                continue  # generated (version.h) or a system header in quotes
            other = layer(inc)
            edges.setdefault(p, set()).add(inc)
            if other == own:
                continue
            if RANK.get(other, 99) >= RANK[own]:
                where = "beside" if RANK.get(other) == RANK[own] else "above"
                bad.append(f"{p}: includes {inc}, of the layer {where} it ({other or 'piflash.c'})")
    bad += circles(edges)
    for b in bad:
        print(b)
    if bad:
        return 1
    n = sum(len(v) for v in edges.values())
    print(f"check-layers: {len(files)} files, {n} includes of their own, no include up or "
          "beside the layers, no circle")
    return 0


def circles(edges):
    """Every circle of includes, each once, as 'circle: a -> b -> a'."""
    found, seen, state = [], set(), {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                loop = stack[stack.index(nxt):]
                key = frozenset(loop)
                if key not in seen:
                    seen.add(key)
                    found.append("circle: " + " -> ".join(loop + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


if __name__ == "__main__":
    sys.exit(main())
