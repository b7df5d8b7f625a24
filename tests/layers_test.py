#!/usr/bin/env python3
"""The layers of the source tree, checked from its #include lines (README, Design).

    common   policyd/common/   may include: common
    engine   policyd/engine/   common, engine; no libev, hiredis, c-ares, jansson
    store    store/            common, store
    resolver resolver/         common, resolver
    daemon   policyd/daemon/   all of the above, daemon
    cli      policyd/cli/      common, engine, store, cli: not the daemon

A module is a file name without .c/.h (defense.c + defense.h).  A module uses another when it
includes its header or calls a function the other's .c defines (a header may be implemented by
a file of another name: the call is what counts).  No two modules may use each other, directly
or round a longer circle.  Exit 0 and a summary, or 1 and every
breach found.
"""
import argparse
import os
import re
import sys

LAYERS = {
    "policyd/common": "common",
    "policyd/engine": "engine",
    "policyd/daemon": "daemon",
    "policyd/cli": "cli",
    "store": "store",
    "resolver": "resolver",
}
ALLOWED = {
    "common": {"common"},
    "engine": {"common", "engine"},
    "store": {"common", "store"},
    "resolver": {"common", "resolver"},
    "daemon": {"common", "engine", "store", "resolver", "daemon"},
    "cli": {"common", "engine", "store", "cli"},
}
# System headers that mean I/O libraries: the engine is pure.
FORBIDDEN_SYSTEM = {"engine": re.compile(r"^(ev\.h|hiredis/|ares|event2/|jansson\.h)")}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
# A function definition: at the start of a line, not static, its name, its parameters, a brace.
DEFINITION = re.compile(r'^(?!static\b)[A-Za-z_][\w \t*]*?\b(\w+)\(([^;{}()]|\([^()]*\))*\)\s*\{', re.M)
LOCAL_DEFINITION = re.compile(r'^static\b[\w \t*]*?\b(\w+)\(', re.M)
WORD = re.compile(r'\b\w+\b')
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)


def sources(root):
    found = {}
    for folder, layer in LAYERS.items():
        path = os.path.join(root, folder)
        for name in sorted(os.listdir(path)):
            if name.endswith((".c", ".h")):
                found[f"{folder}/{name}"] = layer
    return found


def check(root):
    files = sources(root)
    by_name = {}
    for rel in files:
        by_name.setdefault(os.path.basename(rel), []).append(rel)
    problems = []
    module_edges = {}
    texts = {}
    defined_in = {}
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            texts[rel] = COMMENT.sub(" ", f.read())
        if rel.endswith(".c"):
            for m in DEFINITION.finditer(texts[rel]):
                if m.group(1) != "main":
                    defined_in[m.group(1)] = rel[:-2]
    for rel, layer in files.items():
        text = texts[rel]
        module = rel[:-2]
        if rel.endswith(".c"):
            # A static function of this file shadows a namesake elsewhere.
            local = set(LOCAL_DEFINITION.findall(text))
            for word in sorted(set(WORD.findall(text)) - local):
                callee = defined_in.get(word)
                if callee is None or callee == module:
                    continue
                callee_layer = files[callee + ".c"]
                if callee_layer not in ALLOWED[layer]:
                    problems.append(f"{rel}: calls {word} ({callee}.c): the {layer} may not use "
                                    f"the {callee_layer}")
                module_edges.setdefault(module, set()).add(callee)
        for kind, name in INCLUDE.findall(text):
            if kind == "<":
                bad = FORBIDDEN_SYSTEM.get(layer)
                if bad and bad.match(name):
                    problems.append(f"{rel}: includes <{name}>: the {layer} does no I/O")
                continue
            targets = by_name.get(os.path.basename(name), [])
            if len(targets) != 1:
                problems.append(f"{rel}: \"{name}\" is {'ambiguous' if targets else 'not in the tree'}")
                continue
            target = targets[0]
            target_layer = files[target]
            if target_layer not in ALLOWED[layer]:
                problems.append(f"{rel}: includes {target}: the {layer} may not use the {target_layer}")
            # A header with no .c of its own (types, inline helpers, a backend table) holds no
            # code that could call back: what it includes cannot close a circle.
            if target[:-2] != module and (module + ".c") in files:
                module_edges.setdefault(module, set()).add(target[:-2])
    # Circles between modules: a depth-first search that reports each back edge's loop once.
    seen_loops = set()
    state = {}

    def visit(m, stack):
        state[m] = "open"
        stack.append(m)
        for n in sorted(module_edges.get(m, ())):
            if state.get(n) == "open":
                loop = stack[stack.index(n):] + [n]
                key = frozenset(loop)
                if key not in seen_loops:
                    seen_loops.add(key)
                    problems.append("circle: " + " -> ".join(loop))
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[m] = "done"

    for m in sorted(module_edges):
        if m not in state:
            visit(m, [])
    return files, module_edges, problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    args = ap.parse_args()
    files, edges, problems = check(os.path.abspath(args.root))
    for p in problems:
        print(p)
    print(f"{len(files)} files, {sum(len(v) for v in edges.values())} module includes, "
          f"{len(problems)} breaches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
