#!/usr/bin/env python3
"""Lists the engine's public items: what a user of the `atmostonce` crate can name.

    scripts/public-items.py [--features a,b,...] [--root src/lib.rs]

The method (the same before and after a change, so counts compare):

- Modules are followed from `src/lib.rs` through `mod` declarations; a
  module is public when every `mod` on its path is `pub mod`.
- An item (`fn`, `struct`, `enum`, `trait`, `type`, `const`, `static`,
  `union`, `macro`) declared `pub` (not `pub(crate)`/`pub(super)`) counts
  when its module is public or when a public module re-exports it by name
  (`pub use`); it is listed once, under its shortest public path.
- Inside a public type's inherent `impl` or a public trait, every `pub fn` /
  `pub const` (and every trait item) counts as `Type::name`; a `pub` field
  of a public struct counts as `Type.field`. Enum variants and trait impls
  of other traits are not counted (they come with their type).
- An item under `#[cfg(test)]`, or under `#[cfg(feature = "x")]` with `x`
  not in `--features`, is left out; `#[cfg(not(feature = "x"))]` the other
  way round. Other `cfg`s count as on.

It reads source text (a brace-depth scan, comments and strings stripped), not
the compiler's view, so a macro-generated item would be missed; the engine
generates none.
"""

import argparse
import re
import sys
from pathlib import Path

ITEM = re.compile(
    r"^pub\s+(?:(?:const|async|unsafe|extern\s+\"C\")\s+)*"
    r"(fn|struct|enum|trait|type|const|static|union|mod)\s+([A-Za-z_][A-Za-z0-9_]*)"
)
USE = re.compile(r"^pub\s+use\s+(.*);$", re.S)
MOD = re.compile(r"^(pub\s+)?mod\s+([a-z_][a-z0-9_]*)\s*(;|\{)")
IMPL = re.compile(r"^impl(?:<.*?>)?\s+(?:([A-Za-z_:<>, ]+?)\s+for\s+)?([A-Za-z_][A-Za-z0-9_]*)")
TRAIT = re.compile(r"^pub\s+trait\s+([A-Za-z_][A-Za-z0-9_]*)")
FIELD = re.compile(r"^pub\s+([a-z_][a-z0-9_]*)\s*:")
MEMBERS = {}  # type name -> members, wherever the impl is
CFG_FEATURE = re.compile(r'#\[cfg\((not\()?feature\s*=\s*"([^"]+)"\)?\)\]')


def strip(text):
    """Source without comments, strings and char literals (same line count)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            # The contents stay (a `cfg` names its feature in one), without
            # the characters that delimit statements.
            body = re.sub(r"[{}\[\];,#]", " ", text[i + 1:j])
            out.append('"' + body + '"')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4] + "    "):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def statements(text):
    """(depth, statement text, attributes) for each statement or block opener."""
    depth, buf, attrs = 0, "", []
    for c in text:
        in_use = re.match(r"^(pub(\([a-z]+\))?\s+)?use\s", buf.strip() + " ")
        if in_use and c in "{},":
            buf += c
        elif c == "{":
            yield depth, buf.strip(), attrs, "{"
            buf, attrs = "", []
            depth += 1
        elif c == "}":
            depth -= 1
            yield depth, "", [], "}"
            buf = ""
        elif c == ";":
            yield depth, (buf + ";").strip(), attrs, ";"
            buf, attrs = "", []
        elif c == "]" and buf.strip().startswith("#"):
            attrs.append((buf + "]").strip())
            buf = ""
        elif c == "," and depth > 0:
            yield depth, buf.strip(), attrs, ","
            buf, attrs = "", []
        else:
            buf += c


def enabled(attrs, features):
    for attr in attrs:
        if attr.replace(" ", "") == "#[cfg(test)]":
            return False
        m = CFG_FEATURE.search(attr)
        if m:
            negated, feature = m.group(1) is not None, m.group(2)
            if (feature in features) == negated:
                return False
    return True


class Module:
    def __init__(self, path, public, file):
        self.path, self.public, self.file = path, public, file
        self.items = {}  # name -> kind
        self.members = {}  # type name -> [member]
        self.uses = []  # (name, source path)
        self.children = []


def child_file(parent_file, name, inline_prefix):
    base = parent_file.parent if parent_file.name in ("mod.rs", "lib.rs") else parent_file.with_suffix("")
    base = base.joinpath(*inline_prefix)
    for candidate in (base / f"{name}.rs", base / name / "mod.rs"):
        if candidate.exists():
            return candidate
    return None


def parse(file, path, public, features, modules):
    text = strip(file.read_text())
    module = Module(path, public, file)
    modules[tuple(path)] = module
    # stack of (kind, name, depth) for open blocks
    stack, current = [], module
    mods = [module]
    for depth, stmt, attrs, end in statements(text):
        if end == "}":
            if stack and stack[-1][2] == depth:
                kind, _, _ = stack.pop()
                if kind == "mod":
                    mods.pop()
            continue
        current = mods[-1]
        block = stack[-1] if stack else None
        stmt1 = " ".join(stmt.split())
        if not enabled(attrs, features):
            if end == "{":
                stack.append(("skip", None, depth))
            continue
        if block and block[0] == "skip":
            if end == "{":
                stack.append(("skip", None, depth))
            continue
        in_module = block is None or block[0] == "mod"
        if in_module:
            m = MOD.match(stmt1 + (" {" if end == "{" else ";" if not stmt1.endswith(";") else ""))
            if m and end == "{":
                sub = Module(current.path + [m.group(2)], current.public and bool(m.group(1)), file)
                modules[tuple(sub.path)] = sub
                current.children.append(sub)
                stack.append(("mod", m.group(2), depth))
                mods.append(sub)
                continue
            if m and end == ";":
                inline = [p for p in current.path[len(path):]]
                child = child_file(file, m.group(2), inline)
                if child:
                    sub = parse(child, current.path + [m.group(2)], current.public and bool(m.group(1)), features, modules)
                    current.children.append(sub)
                continue
            u = USE.match(stmt1) if end == ";" else None
            if u:
                for name, source in use_names(u.group(1)):
                    current.uses.append((name, source))
                continue
            t = TRAIT.match(stmt1)
            if t and end == "{":
                current.items[t.group(1)] = "trait"
                stack.append(("trait", t.group(1), depth))
                continue
            i = ITEM.match(stmt1)
            if i and i.group(1) != "mod":
                current.items[i.group(2)] = i.group(1)
                if end == "{":
                    stack.append((i.group(1), i.group(2), depth))
                continue
            im = IMPL.match(stmt1)
            if im and end == "{":
                stack.append(("impl" if im.group(1) is None else "traitimpl", im.group(2), depth))
                continue
            if end == "{":
                stack.append(("other", None, depth))
            continue
        kind, name, block_depth = block
        if depth == block_depth + 1:
            member = None
            if kind == "impl":
                f = re.match(r"^pub\s+(?:(?:const|async|unsafe)\s+)*(fn|const|type)\s+([A-Za-z_][A-Za-z0-9_]*)", stmt1)
                if f:
                    member = f"{name}::{f.group(2)}"
            elif kind == "trait":
                f = re.match(r"^(?:(?:async|unsafe)\s+)*(fn|const|type)\s+([A-Za-z_][A-Za-z0-9_]*)", stmt1)
                if f:
                    member = f"{name}::{f.group(2)}"
            elif kind == "struct":
                f = FIELD.match(stmt1)
                if f:
                    member = f"{name}.{f.group(1)}"
            if member:
                MEMBERS.setdefault(name, []).append(member)
        if end == "{":
            stack.append(("other", None, depth))
    return module


def use_names(tree, prefix=""):
    tree = " ".join(tree.split())
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if m:
        base = prefix + m.group(1)
        parts, level, buf = [], 0, ""
        for c in m.group(2):
            if c == "," and level == 0:
                parts.append(buf)
                buf = ""
                continue
            level += c == "{"
            level -= c == "}"
            buf += c
        parts.append(buf)
        for part in parts:
            if part.strip():
                yield from use_names(part.strip(), base)
        return
    full = (prefix + tree).replace(" ", "")
    alias = re.match(r"^(.*)\bas(\w+)$", (prefix + tree).replace(" as ", " as"))
    if " as " in tree:
        src, name = (prefix + tree).rsplit(" as ", 1)
        yield name.strip(), src.replace(" ", "")
    else:
        yield full.rsplit("::", 1)[-1], full


def resolve(modules, from_path, source):
    parts = source.split("::")
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    elif parts[0] == "super":
        base = list(from_path[:-1])
        parts = parts[1:]
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
    elif parts[0] == "self":
        base, parts = list(from_path), parts[1:]
    else:
        base = list(from_path)
        if tuple(base + [parts[0]]) not in modules:
            base = []
    return tuple(base + parts[:-1]), parts[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", default="")
    parser.add_argument("--root", default="src/lib.rs")
    args = parser.parse_args()
    features = {f for f in args.features.split(",") if f}
    modules = {}
    parse(Path(args.root), ["crate"], True, features, modules)
    # definitions: (module path, name) -> kind; public paths per definition
    paths = {}
    for key, module in modules.items():
        for name, kind in module.items.items():
            if module.public:
                paths.setdefault((key, name), set()).add("::".join(key + (name,)))
    changed = True
    while changed:
        changed = False
        for key, module in modules.items():
            if not module.public:
                continue
            for name, source in module.uses:
                src_mod, src_name = resolve(modules, key, source)
                target = (src_mod, src_name)
                # follow re-export chains through private modules
                seen = 0
                while target not in [(k, n) for k, m in modules.items() for n in m.items if k == target[0]] and seen < 8:
                    hop = modules.get(target[0])
                    nxt = [s for n, s in (hop.uses if hop else []) if n == target[1]]
                    if not nxt:
                        break
                    target = resolve(modules, target[0], nxt[0])
                    seen += 1
                if target[0] + (target[1],) in modules:
                    continue  # a module re-export
                if target[0] in modules and target[1] in modules[target[0]].items:
                    public_path = "::".join(key + (name,))
                    if public_path not in paths.setdefault(target, set()):
                        paths[target].add(public_path)
                        changed = True
    lines = []
    for (mod_key, name), public in paths.items():
        kind = modules[mod_key].items[name]
        shortest = min(public, key=lambda p: (p.count("::"), p))
        lines.append(f"{kind} {shortest}")
        for member in MEMBERS.get(name, []):
            sep = "." if "." in member else "::"
            lines.append(f"{'field' if sep == '.' else 'member'} {shortest}{member[len(name):]}")
    for key, module in modules.items():
        if module.public and len(key) > 1:
            lines.append(f"mod {'::'.join(key)}")
    for line in sorted(set(lines)):
        print(line)


if __name__ == "__main__":
    sys.exit(main())
