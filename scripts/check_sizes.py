#!/usr/bin/env python3
"""Checks the size rules of ARCHITECTURE.md ("Cross-cutting concerns"): no
source file over 1,200 lines and no function over 150 lines, outside tests
(`tests.rs`, `*_tests.rs`, `tests/`, inline `mod tests`) and generated code
(`src/generated/`). A function runs from its `fn` line to the closing brace
at the same indentation.

Exit 1 with one line per violation.
"""
import pathlib
import re
import sys

MAX_FILE_LINES = 1200
MAX_FN_LINES = 150
FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def exempt(rel: pathlib.PurePath) -> bool:
    return (
        rel.parts[0] == "generated"
        or rel.name == "tests.rs"
        or rel.name.endswith("_tests.rs")
        or "tests" in rel.parts[:-1]
    )


def main() -> int:
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    problems = []
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        if exempt(rel):
            continue
        lines = f.read_text().split("\n")
        cut = next(
            (i for i in range(len(lines) - 1)
             if lines[i].strip() == "#[cfg(test)]" and lines[i + 1].startswith("mod tests {")),
            len(lines),
        )
        lines = lines[:cut]
        if len(lines) > MAX_FILE_LINES:
            problems.append(f"src/{rel}: {len(lines)} lines (at most {MAX_FILE_LINES})")
        for i, line in enumerate(lines):
            m = FN.match(line)
            if not m or line.rstrip().endswith(";"):
                continue
            indent = m.group(1)
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j] == indent + "}"),
                None,
            )
            if end is not None and end - i + 1 > MAX_FN_LINES:
                problems.append(
                    f"src/{rel}:{i + 1}: fn {m.group(7)} is {end - i + 1} lines (at most {MAX_FN_LINES})"
                )
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} size violation(s)", file=sys.stderr)
        return 1
    print("sizes: every file and function within the limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
