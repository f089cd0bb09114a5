#!/usr/bin/env python3
"""Checks the layering of src/ (ARCHITECTURE.md, "Layers"): every
`crate::` path in a module must name a module of a lower layer, or the
module's own top-level module. Test files (tests.rs, tests/) are exempt.

Exit 1 with one line per violation: file, line, the path, both layers.
"""
import pathlib
import re
import sys

# Top-level modules of src/lib.rs by layer, lowest first. A module may use
# modules of lower layers only (and its own submodules).
LAYERS = [
    {"exposition", "secret", "netacl", "activation", "generated", "ttl", "fsutil", "units"},
    {"telemetry"},
    {"store"},
    {"outbound"},
    {"ingest", "collect", "providers", "sinks", "persist"},
    # Poll targets and registrations may turn JSON into metrics with a
    # collector mapping (collect::mapping).
    {"poll"},
    # The HTTP port. Its pages show the configuration in effect through
    # `http::ui::ConfigFacts`, which `config` builds: http never reads Config.
    {"http"},
    # config walks the TOML and assembles the subsystems' own types (the
    # HTTP port's `http::gates::Gates` among them).
    {"config"},
    {"app", "cli", "healthcheck"},
]
# Pure leaves inside a subsystem: they may use only layer 0.
PURE = {"ingest/codec.rs": 0}

LAYER_OF = {m: i for i, layer in enumerate(LAYERS) for m in layer}
PATH = re.compile(r"\bcrate::([a-z_]+)")
USE_GROUP = re.compile(r"use crate::\{([^;]*)\}", re.S)


def top_module(rel: pathlib.Path) -> str:
    first = rel.parts[0]
    return first[:-3] if first.endswith(".rs") else first


def main() -> int:
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    problems = []
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        if rel.name == "tests.rs" or "tests" in rel.parts[:-1] or rel.parts[0] == "bin":
            continue
        if rel.name in ("lib.rs", "main.rs") and len(rel.parts) == 1:
            continue
        me = top_module(rel)
        if me not in LAYER_OF:
            problems.append(f"src/{rel}: module {me} has no layer in scripts/check_layers.py")
            continue
        pure = PURE.get(str(rel))
        # Comments may name any module (doc links).
        text = "\n".join(
            "" if l.lstrip().startswith("//") else l for l in f.read_text().split("\n")
        )
        # Test modules inside the file are exempt.
        cut = text.find("#[cfg(test)]\nmod tests {")
        if cut >= 0:
            text = text[:cut]
        names = []
        for m in PATH.finditer(text):
            names.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
        for m in USE_GROUP.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            for part in re.split(r",\s*", m.group(1)):
                head = part.strip().split("::")[0].strip("{} \n")
                if head:
                    names.append((line, head))
        for line, other in names:
            if other == me or other not in LAYER_OF:
                continue
            if pure is not None:
                if LAYER_OF[other] > pure:
                    problems.append(
                        f"src/{rel}:{line}: crate::{other} (layer {LAYER_OF[other]}) "
                        f"used from the pure src/{rel}: it may use layer {pure} only"
                    )
            elif LAYER_OF[other] >= LAYER_OF[me]:
                problems.append(
                    f"src/{rel}:{line}: crate::{other} (layer {LAYER_OF[other]}) "
                    f"used from {me} (layer {LAYER_OF[me]}): imports must point down"
                )
    # Only the outbound layer builds HTTP clients (ARCHITECTURE.md, Layers).
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        if rel.parts[0] in ("outbound", "bin") or rel.name == "tests.rs":
            continue
        for i, line in enumerate(f.read_text().split("\n")):
            if "Client::builder(" in line and not line.lstrip().startswith("//"):
                problems.append(f"src/{rel}:{i + 1}: builds an HTTP client: use outbound::build_client")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering violation(s); see ARCHITECTURE.md, Layers", file=sys.stderr)
        return 1
    print("layers: every crate:: import points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
