#!/usr/bin/env python3
"""Lists pairs of source files in a crate that import each other.

Usage: python3 scripts/import_cycles.py [impl/src]

Every `crate::`, `super::` and `self::` path in a file (in `use` lines and in code; test
modules included) is resolved to the file that defines the module it names, the longest
module prefix that is a file. A file's own child modules declared inline are part of it.
Prints each pair of files that reach each other this way, and exits 1 if there is one.
"""

import os
import re
import sys


def module_of(root, path):
    rel = os.path.relpath(path, root)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def expand_use(prefix, body):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (good enough for module paths)."""
    out = []
    depth = 0
    start = 0
    brace = body.find("{")
    if brace < 0:
        return [prefix + body.strip()]
    head = body[:brace]
    inner = body[brace + 1 : body.rfind("}")]
    parts = []
    for i, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    for p in parts:
        p = p.strip()
        if p:
            out.extend(expand_use(prefix + head, p))
    return out


def inline_mod_spans(text):
    """The (start, end) character spans of every inline `mod name { .. }` block."""
    spans = []
    for m in re.finditer(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{", text):
        depth = 0
        for i in range(m.end() - 1, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    spans.append((m.start(), i))
                    break
    return spans


def strip_supers(p, depth):
    """A path written `depth` inline modules deep, as seen from the file's module: each
    leading `super` climbs one inline module first; `self` stays inside it (ignored)."""
    segs = p.split("::")
    while depth > 0 and segs and segs[0].strip() == "super":
        segs = segs[1:]
        depth -= 1
    if depth > 0:
        # Still inside the inline module: `self::`/bare paths name its own items.
        if segs and segs[0].strip() == "crate":
            return "::".join(segs)
        return None
    if not segs:
        return None
    if segs[0].strip() in ("crate", "super", "self"):
        return "::".join(segs)
    return "self::" + "::".join(segs)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "impl/src"
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(d, n)
                files[module_of(root, p)] = p
    deps = {m: set() for m in files}
    path_re = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
    for mod, path in files.items():
        text = open(path).read()
        text = re.sub(r"//[^\n]*", "", text)
        # String and char literals may hold braces that are not code.
        text = re.sub(r'r#+"(?:.|\n)*?"#+', '""', text)
        text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
        text = re.sub(r"'(?:\\.|[^'\\])'", "' '", text)
        inline = inline_mod_spans(text)
        children = set(re.findall(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", text))
        found = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            for u in expand_use("", " ".join(m.group(1).split())):
                found.append((m.start(), u))
        for m in path_re.finditer(text):
            found.append((m.start(), m.group(1)))
        for child in children:
            for m in re.finditer(r"(?<![:\w])" + child + r"((?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
                found.append((m.start(), child + m.group(1)))
        for p in found:
            pos, p = p
            # Inside `mod tests { .. }` (or any inline module) `super` is this file's module.
            depth = sum(1 for a, b in inline if a < pos < b)
            first = p.split("::")[0].strip()
            if first in children:
                p = "self::" + p
            p = "::".join(["self"] * 0 + [p]) if depth == 0 else strip_supers(p, depth)
            if p is None:
                continue
            segs = [s.strip() for s in p.replace(" ", "").split("::") if s.strip()]
            if not segs:
                continue
            if segs[0] == "crate":
                target = []
                segs = segs[1:]
            elif segs[0] in ("super", "self"):
                # A file's `super` is its parent module (a mod.rs's own module is itself).
                is_mod_file = os.path.basename(path) in ("mod.rs", "lib.rs")
                target = list(mod) if is_mod_file else list(mod[:-1])
                if segs[0] == "self":
                    target = list(mod)
                segs = segs[1:]
                while segs and segs[0] == "super":
                    target = target[:-1]
                    segs = segs[1:]
            else:
                continue
            full = tuple(target + [s for s in segs if s not in ("{", "}", "*")])
            best = None
            for k in range(len(full), -1, -1):
                if full[:k] in files:
                    best = full[:k]
                    break
            if best is not None and best != mod:
                deps[mod].add(best)
    pairs = sorted(
        {tuple(sorted((a, b))) for a in deps for b in deps[a] if a in deps.get(b, set())}
    )
    for a, b in pairs:
        print(f"{files[a]} <-> {files[b]}")
    print(f"{len(pairs)} pair(s) of files importing each other among {len(files)} files")
    sys.exit(1 if pairs else 0)


if __name__ == "__main__":
    main()
