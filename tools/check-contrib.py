#!/usr/bin/python3
"""Check what can be checked of contrib/yocto and contrib/buildroot without bitbake or Buildroot:

- the shell functions of the recipe and the class parse with `sh -n`, the Python ones compile;
- every line of the recipe, the class and layer.conf is an assignment, an inherit, a function or a comment;
  every UPKEEP_BUNDLE_* variable the class reads is given a default there;
- upkeep.mk is valid make with Buildroot's package macros stubbed, defines the variables a meson-package
  needs, and its install hook puts the device files where the README's list has them;
- every BR2_PACKAGE_UPKEEP* symbol the .mk reads is defined in Config.in, which is indented with tabs;
- every installed path the recipe (FILES, CONFFILES, SYSTEMD_SERVICE) and the .mk name is one the README's
  "Installed files" list has (or a folder above one), or one still PENDING from a branch not merged yet.

Usage: check-contrib.py
"""
import hashlib
import importlib.util
import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent
YOCTO = ROOT / "contrib" / "yocto"
BUILDROOT = ROOT / "contrib" / "buildroot" / "package" / "upkeep"

# Installed by branches that land later (the daemon: unit, bus policy, activation, tmpfiles, polkit; the
# client: bash completion). Once README.md lists one of these, it is checked like any other path: remove it
# from here then.
PENDING = {}

# Yocto's path variables for a /usr, /etc distribution.
YOCTO_PATHS = {
    "sysconfdir": "/etc", "bindir": "/usr/bin", "sbindir": "/usr/sbin", "datadir": "/usr/share",
    "nonarch_libdir": "/usr/lib", "systemd_system_unitdir": "/usr/lib/systemd/system",
    "mandir": "/usr/share/man",
}

problems = []


def problem(msg):
    problems.append(msg)


def load_readme_entries():
    spec = importlib.util.spec_from_file_location("cit", ROOT / "tools" / "check-install-tree.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [p.rstrip("/") for p, _ in mod.readme_entries(ROOT / "README.md")]


def bitbake_functions(text):
    """[(kind, name, body)] for `name() {` shell and `python name() {` functions, up to a `}` line."""
    out = []
    for m in re.finditer(r"^(python )?([\w:\-]+)\(\) \{\n(.*?)^\}$", text, re.S | re.M):
        out.append(("python" if m.group(1) else "shell", m.group(2), m.group(3)))
    return out


def without_functions(text):
    return re.sub(r"^(python )?[\w:\-]+\(\) \{\n.*?^\}$", "", text, flags=re.S | re.M)


def expand_bitbake(body):
    """Replace ${VAR} and ${@python} with a plain word, so that sh -n sees shell syntax only."""
    prev = None
    while prev != body:
        prev = body
        body = re.sub(r"\$\{@[^{}]*\}", "bbexpr", body)
        body = re.sub(r"\$\{[A-Za-z_][\w\-:]*\}", "bbvar", body)
    return body


def check_bitbake_file(path):
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(ROOT)
    for kind, name, body in bitbake_functions(text):
        if kind == "shell":
            r = subprocess.run(["sh", "-n"], input=expand_bitbake(body), capture_output=True, text=True)
            if r.returncode != 0:
                problem(f"{rel}: shell function {name}: sh -n: {r.stderr.strip()}")
        else:
            try:
                compile(textwrap.dedent(body), f"{rel}:{name}", "exec")
            except SyntaxError as e:
                problem(f"{rel}: python function {name}: {e}")
    # Outside functions: assignments (with continuation lines), inherit, addtask, comments.
    statement = re.compile(r"^(export\s+)?[\w\-:${}@\[\].]+(\[[\w\-]+\])?\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*\"")
    logical = re.sub(r"\\\n", " ", without_functions(text))
    for n, line in enumerate(logical.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if re.match(r"^(inherit|addtask|require|include)\s", s):
            continue
        if statement.match(s) and s.endswith('"') and s.count('"') % 2 == 0:
            continue
        problem(f"{rel}: not a BitBake statement: {s[:100]}")
    return text


def check_yocto():
    recipe = YOCTO / "recipes-upkeep" / "upkeep" / "upkeep_git.bb"
    bbclass = YOCTO / "classes" / "upkeep-bundle.bbclass"
    for p in [recipe, bbclass, YOCTO / "conf" / "layer.conf"] + sorted(YOCTO.rglob("*.bbappend")):
        check_bitbake_file(p)
    recipe_text = recipe.read_text(encoding="utf-8")
    class_text = bbclass.read_text(encoding="utf-8")
    for needed in ("LICENSE", "LIC_FILES_CHKSUM", "SRC_URI", "DEPENDS", "PACKAGECONFIG", "SYSTEMD_SERVICE:${PN}",
                   "FILES:${PN}", "BBCLASSEXTEND"):
        if not re.search(r"^" + re.escape(needed) + r"(?=[\s+?:=])", recipe_text, re.M):
            problem(f"{recipe.relative_to(ROOT)}: no {needed}")
    if not re.search(r"^inherit meson pkgconfig systemd$", recipe_text, re.M):
        problem(f"{recipe.relative_to(ROOT)}: does not inherit meson pkgconfig systemd")
    # Every LIC_FILES_CHKSUM md5 matches the source (the whole file, or its lines beginline..endline).
    chksum = re.search(r'^LIC_FILES_CHKSUM\s*=\s*"(.*?)"', recipe_text, re.S | re.M)
    entries = chksum.group(1).replace("\\\n", " ").split() if chksum else []
    if not entries:
        problem(f"{recipe.relative_to(ROOT)}: LIC_FILES_CHKSUM names no file")
    for entry in entries:
        name, *params = entry.split(";")
        params = dict(p.split("=", 1) for p in params if "=" in p)
        if not name.startswith("file://") or "md5" not in params:
            problem(f"{recipe.relative_to(ROOT)}: LIC_FILES_CHKSUM entry without file:// or md5: {entry}")
            continue
        path = ROOT / name[len("file://"):]
        if not path.is_file():
            problem(f"{recipe.relative_to(ROOT)}: LIC_FILES_CHKSUM names {name}, which the repository lacks")
            continue
        lines = path.read_bytes().splitlines(keepends=True)
        first, last = int(params.get("beginline", 1)), int(params.get("endline", len(lines)))
        got = hashlib.md5(b"".join(lines[first - 1:last])).hexdigest()
        if got != params["md5"]:
            problem(f"{recipe.relative_to(ROOT)}: LIC_FILES_CHKSUM md5 {params['md5']} for {name}, "
                    f"the file gives {got}")
    # Every UPKEEP_BUNDLE_* the class reads has a default in the class.
    assigned = set(re.findall(r"^(UPKEEP_BUNDLE_\w+)\s*\??\??=", class_text, re.M))
    for used in sorted(set(re.findall(r"(UPKEEP_BUNDLE_\w+)", class_text)) - assigned):
        problem(f"{bbclass.relative_to(ROOT)}: {used} is used but has no default")
    # Installed paths the recipe names.
    paths = []
    for var in ("FILES:${PN}", "CONFFILES:${PN}"):
        for m in re.finditer(r"^" + re.escape(var) + r'\s*\+?=\s*"(.*?)"', recipe_text, re.S | re.M):
            paths += m.group(1).replace("\\\n", " ").split()
    for unit in re.findall(r'^SYSTEMD_SERVICE:\$\{PN\}\s*=\s*"(.*?)"', recipe_text, re.M):
        paths += ["${systemd_system_unitdir}/" + u for u in unit.split()]
    for f in re.findall(r'^UPKEEP_ETC_FILES\s*=\s*"(.*?)"', recipe_text, re.M)[0].split():
        if f == "upkeep.conf":
            paths.append("${sysconfdir}/upkeep/" + f)
    out = []
    for p in paths:
        for var, value in YOCTO_PATHS.items():
            p = p.replace("${" + var + "}", value)
        if "${" in p:
            problem(f"{recipe.relative_to(ROOT)}: cannot map {p} to a path")
            continue
        out.append(("yocto recipe", p))
    return out


def check_buildroot():
    mk = BUILDROOT / "upkeep.mk"
    out = []
    config_in = (BUILDROOT / "Config.in").read_text(encoding="utf-8") + \
        (BUILDROOT / "Config.in.host").read_text(encoding="utf-8")
    defined = set(re.findall(r"^config (BR2_\w+)", config_in, re.M))
    for sym in sorted(set(re.findall(r"(BR2_PACKAGE_(?:HOST_)?UPKEEP\w*)", mk.read_text(encoding="utf-8")))):
        if sym not in defined:
            problem(f"{mk.relative_to(ROOT)}: {sym} is not defined in Config.in")
    for n, line in enumerate(config_in.splitlines(), 1):
        if line.startswith(" "):
            problem(f"contrib/buildroot Config.in line {n}: indented with spaces, Buildroot wants tabs")
    stub = textwrap.dedent(f"""\
        qstrip = $(strip $(subst ",,$(1)))
        meson-package =
        host-meson-package =
        TARGET_DIR = /TARGET
        INSTALL = install
        BR2_PACKAGE_UPKEEP_UPDATECTL_NAME = "updatectl"
        BR2_PACKAGE_UPKEEP_CONFIG = "board/acme/upkeep.conf"
        BR2_PACKAGE_UPKEEP_KEYRING = "board/acme/ca.pem"
        BR2_PACKAGE_UPKEEP_TUF_ROOT = "board/acme/root.json"
        include {mk}
        VARS = UPKEEP_VERSION UPKEEP_SITE UPKEEP_LICENSE UPKEEP_LICENSE_FILES UPKEEP_DEPENDENCIES \\
               UPKEEP_CONF_OPTS HOST_UPKEEP_DEPENDENCIES HOST_UPKEEP_CONF_OPTS UPKEEP_POST_INSTALL_TARGET_HOOKS
        all:
        \t@$(foreach v,$(VARS),echo '$(v)=$($(v))';)
        \t$(UPKEEP_INSTALL_DEVICE_FILES)
        """)
    with tempfile.TemporaryDirectory() as d:
        (pathlib.Path(d) / "Makefile").write_text(stub, encoding="utf-8")
        r = subprocess.run(["make", "-n", "--no-print-directory", "-C", d], capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"{mk.relative_to(ROOT)}: make -n: {r.stderr.strip()}")
        return out
    # make -n prints the recipe instead of running it: the echo commands carry the values.
    values = dict(re.findall(r"echo '([A-Z_]+)=(.*?)';", r.stdout))
    for v in ("UPKEEP_VERSION", "UPKEEP_SITE", "UPKEEP_LICENSE", "UPKEEP_DEPENDENCIES", "UPKEEP_CONF_OPTS",
              "HOST_UPKEEP_CONF_OPTS"):
        if not values.get(v, "").strip():
            problem(f"{mk.relative_to(ROOT)}: {v} is empty or missing")
    if "-Dupdatectl-name=updatectl" not in values.get("UPKEEP_CONF_OPTS", ""):
        problem(f"{mk.relative_to(ROOT)}: UPKEEP_CONF_OPTS does not pass the updatectl name: "
                f"{values.get('UPKEEP_CONF_OPTS')}")
    if "-Ddaemon=false" not in values.get("HOST_UPKEEP_CONF_OPTS", ""):
        problem(f"{mk.relative_to(ROOT)}: the host package builds the daemon")
    # The license files are in the repository; a hash file, if there is one, has their right sha256.
    license_files = values.get("UPKEEP_LICENSE_FILES", "").split()
    if not license_files:
        problem(f"{mk.relative_to(ROOT)}: UPKEEP_LICENSE_FILES is empty or missing")
    hashes = {}
    hash_file = BUILDROOT / "upkeep.hash"
    if hash_file.exists():
        for line in hash_file.read_text(encoding="utf-8").splitlines():
            f = line.split()
            if len(f) == 3 and f[0] == "sha256":
                hashes[f[2]] = f[1]
    for name in license_files:
        path = ROOT / name
        if not path.is_file():
            problem(f"{mk.relative_to(ROOT)}: UPKEEP_LICENSE_FILES names {name}, which the repository lacks")
        elif name in hashes and hashes[name] != hashlib.sha256(path.read_bytes()).hexdigest():
            problem(f"{hash_file.relative_to(ROOT)}: the sha256 of {name} is not the file's")
        elif hash_file.exists() and name not in hashes:
            problem(f"{hash_file.relative_to(ROOT)}: no sha256 for the license file {name}")
    installs = re.findall(r"^install -D -m 0644 (\S+) /TARGET(/\S+)$", r.stdout, re.M)
    if len(installs) != 3:
        problem(f"{mk.relative_to(ROOT)}: the install hook gives {len(installs)} install commands, expected 3:\n"
                + r.stdout)
    for _, dest in installs:
        if dest == "/etc/upkeep/upkeep.conf":
            out.append(("buildroot upkeep.mk", dest))
    for dest in re.findall(r"\$\(TARGET_DIR\)(/[\w/.\-]+)", mk.read_text(encoding="utf-8")):
        if dest.startswith("/etc/upkeep/") and dest != "/etc/upkeep/upkeep.conf":
            continue  # the image's own files (keyring, TUF root): not installed by upkeep itself
        out.append(("buildroot upkeep.mk", dest))
    return out


def main():
    listed = load_readme_entries()
    paths = check_yocto() + check_buildroot()
    pending = set()
    for who, p in paths:
        p = p.rstrip("/")
        if any(e == p or e.startswith(p + "/") for e in listed):
            continue
        if p in PENDING:
            pending.add(f"{p}: {PENDING[p]}")
            continue
        problem(f"{who} names {p}, which README.md's \"Installed files\" does not list")
    for p in problems:
        print(p, file=sys.stderr)
    for p in sorted(pending):
        print(f"pending (not installed yet): {p}")
    print(f"check-contrib: {len(paths)} installed paths named, {len(pending)} pending, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
