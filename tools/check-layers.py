#!/usr/bin/python3
"""Checks that libupkeep's layers depend one way (lib/meson.build draws them): a file in lib/FOLDER may
include upkeep headers only from FOLDER and from the folders below it. The build enforces the same with
include directories; this check also catches a relative path ("../install/install.h") and names the
file and line.

Usage: check-layers.py SOURCE_ROOT | --self-test
"""
import re
import sys
from pathlib import Path

# Each folder and the folders it may use (besides itself).
LAYERS = {
    "base": set(),
    "conf": {"base"},
    "bundle": {"base", "conf"},
    "boot": {"base", "conf"},
    "net": {"base", "conf"},
    "tuf": {"base", "conf"},
    "install": {"base", "conf", "bundle", "boot", "include"},
    "policy": {"base", "conf", "bundle"},
    "source": {"base", "conf", "bundle", "net", "tuf"},
    "bus": {"base"},
    "include": set(),
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def header_index(lib):
    """Header name (as included) -> the folder that has it."""
    index = {}
    for folder in LAYERS:
        for h in (lib / folder).rglob("*.h"):
            index[str(h.relative_to(lib / folder))] = folder
    return index


def check_tree(lib):
    problems = []
    index = header_index(lib)
    for folder, allowed in LAYERS.items():
        for f in sorted((lib / folder).rglob("*.[ch]")):
            text = f.read_text(encoding="utf-8")
            for m in INCLUDE.finditer(text):
                name = m.group(1)
                lineno = text.count("\n", 0, m.start()) + 1
                target = Path(name).parts[-2] if name.startswith("../") and len(Path(name).parts) >= 2 else None
                owner = target if target in LAYERS else index.get(name)
                if owner is None:
                    if (f.parent / name).exists():
                        continue
                    problems.append(f"{f.relative_to(lib.parent)}:{lineno}: includes \"{name}\", which is in no lib folder")
                elif owner != folder and owner not in allowed:
                    problems.append(f"{f.relative_to(lib.parent)}:{lineno}: lib/{folder} includes \"{name}\" from lib/{owner}, "
                                    f"a layer it may not use (it may use: {', '.join(sorted(allowed)) or 'nothing'})")
    missing = [d.name for d in lib.iterdir() if d.is_dir() and d.name not in LAYERS]
    for d in missing:
        problems.append(f"lib/{d}: a folder that tools/check-layers.py does not know: add it to LAYERS")
    return problems


def self_test():
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        for folder in LAYERS:
            (lib / folder).mkdir(parents=True)
        (lib / "base" / "util.h").write_text("#pragma once\n")
        (lib / "conf" / "conf.h").write_text('#include "util.h"\n')
        (lib / "install" / "install.h").write_text('#include "conf.h"\n')
        assert check_tree(lib) == [], check_tree(lib)
        (lib / "conf" / "conf.c").write_text('#include "conf.h"\n#include "install.h"\n')
        (lib / "base" / "util.c").write_text('#include "../install/install.h"\n')
        problems = check_tree(lib)
        assert len(problems) == 2, problems
        assert any("lib/conf/conf.c:2" in p and "from lib/install" in p for p in problems), problems
        assert any("lib/base/util.c:1" in p for p in problems), problems
    print("check-layers: self-test passed")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check_tree(Path(sys.argv[1]) / "lib")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"check-layers: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
