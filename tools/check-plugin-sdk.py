#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check what a handler plugin's author gets from an installed upkeep (upkeep-handlers(7)): install the
build's development files (`meson install --tags devel`) into a scratch DESTDIR, then, through the
installed upkeep-handler.pc alone (pkg-config with PKG_CONFIG_LIBDIR and PKG_CONFIG_SYSROOT_DIR in the
DESTDIR, nothing of the source tree on the include path):

- <upkeep/handler.h> compiles on its own, twice in a row, as C99 and C11 with -Wall -Wextra -Werror
  -pedantic;
- tests/plugins/sample-plugin.c and the example plugin of upkeep-handlers(7) (man/upkeep-handlers.7.scd,
  the code under "Example plugin") compile and link into shared objects with -Wall -Wextra -Werror,
  their compiler reads the header from the DESTDIR, and each object exports `upkeep_handler` with
  abi_version UPKEEP_HANDLER_ABI_VERSION (loaded with ctypes);
- a plugin written in C++ (a const table at namespace scope, as a C++ author writes it) builds with
  -Wall -Wextra -Werror and exports `upkeep_handler` unmangled: the header gives the symbol C linkage.

Usage: check-plugin-sdk.py BUILDDIR SOURCEDIR -- CC [CC ARGS...]   (the meson test `plugin-sdk`)
"""
import ctypes
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

PC_NAME = "upkeep-handler"


def fail(msg):
    print(f"check-plugin-sdk: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd, env=None, what=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        fail(f"{what or shlex.join(cmd)} failed (exit status {r.returncode}):\n{shlex.join(cmd)}\n"
             f"{r.stdout}{r.stderr}")
    return r.stdout


def abi_version(header):
    m = re.search(r"^#define UPKEEP_HANDLER_ABI_VERSION (\d+)u?$", header.read_text(encoding="utf-8"), re.M)
    if not m:
        fail(f"{header}: no #define UPKEEP_HANDLER_ABI_VERSION")
    return int(m.group(1))


def man_example(srcdir, tmp):
    """The example plugin of upkeep-handlers(7), written to TMP/copy.c."""
    page = srcdir / "man" / "upkeep-handlers.7.scd"
    text = page.read_text(encoding="utf-8")
    start = text.find("## Example plugin")
    m = re.search(r"^```\n(.*?)^```$", text[start:], re.S | re.M) if start >= 0 else None
    if not m:
        fail(f"{page}: no code block under \"## Example plugin\"")
    path = tmp / "copy.c"
    path.write_text(m.group(1), encoding="utf-8")
    return path


def build_plugin(cc, cflags, env, source, tmp, header, want):
    """Build SOURCE into a plugin as an author would, and check the header it used and its ABI."""
    so = tmp / (source.stem + ".so")
    deps = tmp / (source.stem + ".d")
    run(cc + ["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-MD", "-MF",
              str(deps)] + cflags + ["-o", str(so), str(source)], env=env, what=f"building {source.name}")
    used = [pathlib.Path(p).resolve() for p in deps.read_text(encoding="utf-8").replace("\\\n", " ").split()
            if p.endswith("upkeep/handler.h")]
    if used != [header.resolve()]:
        fail(f"{source.name} was compiled with {[str(p) for p in used]}, not the installed {header}")
    lib = ctypes.CDLL(str(so))
    try:
        got = ctypes.c_uint32.in_dll(lib, "upkeep_handler").value
    except ValueError:
        fail(f"{so.name} does not export upkeep_handler")
    if got != want:
        fail(f"{so.name}: upkeep_handler.abi_version is {got}, the header says {want}")


CXX_PLUGIN = r"""// A handler plugin written in C++, the way its author would write the table.
#include <upkeep/handler.h>
#include <cstdio>

namespace {
int begin(const struct upkeep_payload *, void **ret_state, char *, size_t) { *ret_state = nullptr; return 0; }
int write(void *, const void *, size_t, char *, size_t) { return 0; }
int finish(void *, char *, size_t) { return 0; }
int commit(void *, char *, size_t) { return 0; }
void rollback(void *) {}
}

const struct upkeep_handler upkeep_handler = {
        UPKEEP_HANDLER_ABI_VERSION, "cxx", begin, write, finish, commit, rollback,
};
"""


def cxx_compiler():
    """The C++ compiler that goes with the C one (g++ beside gcc, clang++ beside clang), or None."""
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return [name]
    return None


def main(argv):
    if len(argv) < 5 or argv[3] != "--":
        fail("usage: check-plugin-sdk.py BUILDDIR SOURCEDIR -- CC [CC ARGS...]")
    builddir, srcdir, cc = pathlib.Path(argv[1]), pathlib.Path(argv[2]), argv[4:]
    sample = srcdir / "tests" / "plugins" / "sample-plugin.c"

    with tempfile.TemporaryDirectory(prefix="upkeep-plugin-sdk-") as tmp:
        tmp = pathlib.Path(tmp)
        destdir = tmp / "destdir"
        run(["meson", "install", "-C", str(builddir), "--no-rebuild", "--quiet", "--tags", "devel",
             "--destdir", str(destdir)], what="meson install --tags devel")

        pcs = sorted(destdir.rglob(f"{PC_NAME}.pc"))
        headers = sorted(destdir.rglob("upkeep/handler.h"))
        if len(pcs) != 1 or len(headers) != 1:
            fail(f"expected one {PC_NAME}.pc and one upkeep/handler.h in the install, found "
                 f"{[str(p.relative_to(destdir)) for p in pcs + headers]}")
        header = headers[0]

        # pkg-config sees only the DESTDIR: its own folders are replaced, the sysroot prefixes -I paths.
        env = {k: v for k, v in os.environ.items()
               if k not in ("PKG_CONFIG_PATH", "CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH")}
        env["PKG_CONFIG_LIBDIR"] = str(pcs[0].parent)
        env["PKG_CONFIG_SYSROOT_DIR"] = str(destdir)
        cflags = shlex.split(run(["pkg-config", "--cflags", PC_NAME], env=env))
        include_dirs = [f[2:] for f in cflags if f.startswith("-I")]
        if not include_dirs:
            fail(f"pkg-config --cflags {PC_NAME} gives no -I folder: {cflags}")
        for d in include_dirs:
            if not pathlib.Path(d).resolve().is_relative_to(destdir.resolve()):
                fail(f"pkg-config --cflags {PC_NAME} names {d}, outside the DESTDIR {destdir}")
        handlersdir = run(["pkg-config", "--variable=handlersdir", PC_NAME], env=env).strip()
        if not handlersdir.startswith("/") or not handlersdir.endswith("/upkeep/handlers"):
            fail(f"{PC_NAME}.pc: handlersdir={handlersdir!r}, not PREFIX/lib/upkeep/handlers")

        # The header on its own (and its include guard), in strict ISO C.
        only = tmp / "header-only.c"
        only.write_text("#include <upkeep/handler.h>\n#include <upkeep/handler.h>\n", encoding="utf-8")
        for std in ("c99", "c11"):
            run(cc + [f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"] + cflags +
                [str(only)], env=env, what=f"<upkeep/handler.h> alone, -std={std} -pedantic")

        # The sample plugin and the man page's example, built as an author would build theirs.
        want = abi_version(header)
        for source in (sample, man_example(srcdir, tmp)):
            build_plugin(cc, cflags, env, source, tmp, header, want)

        # A C++ author's plugin: without C linkage in the header its table would be file-local.
        cxx = cxx_compiler()
        if cxx is None:
            fail("no C++ compiler (c++, g++ or clang++) to build the C++ plugin with: apt-get install g++")
        cxx_source = tmp / "cxx-plugin.cc"
        cxx_source.write_text(CXX_PLUGIN, encoding="utf-8")
        build_plugin(cxx + ["-std=c++17"], cflags, env, cxx_source, tmp, header, want)

    print(f"check-plugin-sdk: OK: {PC_NAME}.pc and <upkeep/handler.h> install; the header compiles alone "
          f"(C99, C11, -pedantic); the sample plugin, the man page's example and a C++ plugin build against them (ABI {want})")


if __name__ == "__main__":
    main(sys.argv)
