#!/usr/bin/python3
"""Check that `meson install --destdir` puts exactly the files that README.md lists under "Installed files"
where a distribution expects them, and that the paths the Yocto recipe and the Buildroot package name are
among them.

Usage: check-install-tree.py BUILDDIR

The README block lists paths for --prefix=/usr --sysconfdir=/etc. A line may end in tags in brackets:
[man] for a file installed only when the build makes man pages, [daemon] only with -Ddaemon=true,
[man,daemon] only with both. A path ending in "/" is a folder installed
empty. For the build's own prefix, /usr/ is read as PREFIX/ and /etc/ as its sysconfdir; updatectl follows
the updatectl-name option. Every installed file, link and empty folder must be listed, and every listed one
installed. Executables must be executable, everything else not.

With the daemon, the defaults compiled into upkeepd (its --help lists them; lib/conf/conf.h, from meson's
directory options) must match the install: the configuration file is the installed upkeep.conf, the keyring
and health.d sit beside it, the handlers folder is the installed one, the data directory is
LOCALSTATEDIR/lib/upkeep and is the one the installed tmpfiles.d entry makes and the unit may write; the
installed sample upkeep.conf shows the same defaults.
"""
import json
import os
import pathlib
import re
import stat
import subprocess
import sys
import tempfile

SOURCE_ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADING = re.compile(r"^#+\s+Installed files\s*$")
ENTRY = re.compile(r"^(/\S+)(?:\s+\[([\w,]+)\])?\s*$")
TAGS = ("man", "daemon")


def readme_entries(readme):
    """[(path, tag or None)] from the first fenced block after the "Installed files" heading."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if HEADING.match(line)), None)
    if start is None:
        raise SystemExit(f"{readme}: no \"Installed files\" heading")
    fence = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("```")), None)
    end = next((i for i in range(fence + 1, len(lines)) if lines[i].startswith("```")), None) if fence else None
    if fence is None or end is None:
        raise SystemExit(f"{readme}: no fenced block under \"Installed files\"")
    entries = []
    for n, line in enumerate(lines[fence + 1:end], fence + 2):
        if not line.strip():
            continue
        m = ENTRY.match(line)
        if not m:
            raise SystemExit(f"{readme}:{n}: not an absolute path with an optional [tag]: {line!r}")
        entries.append((m.group(1), m.group(2)))
    if not entries:
        raise SystemExit(f"{readme}: the \"Installed files\" block is empty")
    return entries


def build_options(builddir):
    out = subprocess.run(["meson", "introspect", "--buildoptions", str(builddir)], check=True,
                         capture_output=True, text=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def builds_man_pages(builddir):
    out = subprocess.run(["meson", "introspect", "--targets", str(builddir)], check=True,
                         capture_output=True, text=True).stdout
    return any(t["name"].endswith(".5") or t["name"].endswith(".1") for t in json.loads(out))


def expected_paths(entries, opts, enabled):
    prefix = opts["prefix"].rstrip("/")
    sysconfdir = opts["sysconfdir"]
    if not sysconfdir.startswith("/"):
        sysconfdir = prefix + "/" + sysconfdir
    name = opts.get("updatectl-name", "updatectl")
    want = {}
    for path, tag in entries:
        tags = tag.split(",") if tag else []
        unknown = [t for t in tags if t not in TAGS]
        if unknown:
            raise SystemExit(f"README.md: unknown tag [{','.join(unknown)}] on {path}")
        if not all(enabled[t] for t in tags):
            continue
        if path.startswith("/usr/"):
            path = prefix + path[4:]
        elif path.startswith("/etc/"):
            path = sysconfdir.rstrip("/") + path[4:]
        path = re.sub(r"/bin/updatectl$", "/bin/" + name, path)
        path = re.sub(r"/man1/updatectl\.1$", f"/man1/{name}.1", path)
        want[path] = tag
    return want


def abs_dir(opts, name):
    d = opts[name]
    return d if d.startswith("/") else opts["prefix"].rstrip("/") + "/" + d


def compiled_defaults(upkeepd):
    """{"configuration": path, "[device] data-dir": path, ...} from the "Defaults of this build" block of
    `upkeepd --help`."""
    r = subprocess.run([upkeepd, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SystemExit(f"{upkeepd} --help exited with {r.returncode}: {r.stderr}")
    lines = r.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Defaults of this build")), None)
    if start is None:
        raise SystemExit(f"{upkeepd} --help: no \"Defaults of this build\" block:\n{r.stdout}")
    out = {}
    for line in lines[start + 1:]:
        m = re.match(r"^  (configuration|\[\w+\] [\w-]+)\s+(/\S*)$", line)
        if not m:
            break
        out[m.group(1)] = m.group(2)
    return out


def check_defaults(destdir, want, opts):
    """Problems with the compiled-in defaults against the installed tree (the daemon build only)."""
    def installed(suffix):
        found = [p for p in want if p.endswith(suffix)]
        return found[0] if len(found) == 1 else None

    problems = []
    upkeepd, conf = installed("/sbin/upkeepd"), installed("/upkeep/upkeep.conf")
    unit, tmpfiles = installed("/upkeepd.service"), installed("/tmpfiles.d/upkeep.conf")
    handlers = installed("/upkeep/handlers/")
    if not all((upkeepd, conf, unit, tmpfiles, handlers)):
        return ["cannot find upkeepd, upkeep.conf, upkeepd.service, tmpfiles.d/upkeep.conf and the handlers "
                "folder among the expected paths"]
    got = compiled_defaults(destdir + upkeepd)
    etc = os.path.dirname(conf)
    data = abs_dir(opts, "localstatedir").rstrip("/") + "/lib/upkeep"
    expect = {
        "configuration": conf,
        "[device] data-dir": data,
        "[keyring] path": etc + "/keyring.pem",
        "[health] dir": etc + "/health.d",
        "[install] handlers-dir": handlers.rstrip("/"),
    }
    for key, path in expect.items():
        if got.get(key) != path:
            problems.append(f"upkeepd --help: the default {key} is {got.get(key)}, "
                            f"the install layout gives {path}")
    # The installed sample configuration shows the same defaults (commented out).
    sample = pathlib.Path(destdir + conf).read_text(encoding="utf-8").splitlines()
    for key, path in list(expect.items())[1:]:
        line = f"#{key.split()[1]} = {path}"
        if line not in sample:
            problems.append(f"{conf}: no line \"{line}\"")
    tmpfiles_text = pathlib.Path(destdir + tmpfiles).read_text(encoding="utf-8")
    if not re.search(r"^d " + re.escape(data) + r" ", tmpfiles_text, re.M):
        problems.append(f"{tmpfiles}: does not make the data directory {data}")
    unit_text = pathlib.Path(destdir + unit).read_text(encoding="utf-8")
    writable = "StateDirectory=upkeep" if data == "/var/lib/upkeep" else f"ReadWritePaths={data}"
    if not re.search(r"^" + re.escape(writable) + r"$", unit_text, re.M):
        problems.append(f"{unit}: no line {writable} for the data directory")
    print("check-install-tree: compiled-in defaults: " + ", ".join(f"{k} {v}" for k, v in got.items()))
    return problems


def installed_paths(destdir):
    """{path: st_mode} for every file and link, and every folder that has nothing in it (as "path/")."""
    got = {}
    for dirpath, dirnames, filenames in os.walk(destdir):
        rel = "/" + os.path.relpath(dirpath, destdir)
        if rel != "/." and not dirnames and not filenames:
            got[rel + "/"] = os.lstat(dirpath).st_mode
        for f in filenames:
            p = os.path.join(dirpath, f)
            got[("/" + os.path.relpath(p, destdir))] = os.lstat(p).st_mode
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if os.path.islink(p):
                got["/" + os.path.relpath(p, destdir)] = os.lstat(p).st_mode
    return got


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    builddir = pathlib.Path(sys.argv[1]).resolve()
    opts = build_options(builddir)
    enabled = {"man": builds_man_pages(builddir), "daemon": opts.get("daemon", True)}
    want = expected_paths(readme_entries(SOURCE_ROOT / "README.md"), opts, enabled)
    problems = []
    with tempfile.TemporaryDirectory(prefix="upkeep-install-") as destdir:
        r = subprocess.run(["meson", "install", "-C", str(builddir), "--no-rebuild", "--quiet",
                            "--destdir", destdir], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            print("check-install-tree: meson install failed", file=sys.stderr)
            return 1
        got = installed_paths(destdir)
        if enabled["daemon"] and not (set(want) - set(got)):
            problems += check_defaults(destdir, want, opts)
    for path in sorted(set(want) - set(got)):
        problems.append(f"listed in README.md but not installed: {path}")
    for path in sorted(set(got) - set(want)):
        problems.append(f"installed but not listed in README.md (\"Installed files\"): {path}")
    for path in sorted(set(want) & set(got)):
        mode = got[path]
        executable = bool(mode & stat.S_IXUSR)
        in_bin = re.search(r"/s?bin/[^/]+$", path) is not None
        if path.endswith("/"):
            continue
        if in_bin and not executable:
            problems.append(f"{path}: a program, but not executable ({stat.filemode(mode)})")
        if not in_bin and executable and not stat.S_ISLNK(mode):
            problems.append(f"{path}: executable, but not a program ({stat.filemode(mode)})")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"check-install-tree: {len(want)} paths expected, {len(problems)} problems (prefix {opts['prefix']}, "
          + ", ".join(f"{t} {'on' if on else 'off'}" for t, on in enabled.items()) + ")")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
