"""A Colab runtime, simulated offline, for tests/test_colab_path.py.

What a reader gets in Colab is a Python that already holds a fixed set of libraries (torch, numpy, pandas,
transformers, Jupyter's kernel...) and nothing of this book; the first code cell of every chapter then runs
``%pip install -q "git+{REPO_URL}"`` (the PPO chapter: ``"dlbook-helpers[baselines] @ git+{REPO_URL}"``), and
every later import has to be satisfied by those two sources together. This module rebuilds that situation:

1. **Preinstalled libraries.** A fresh virtual environment (``python -m venv --without-pip``, no access to
   the system's or the repository's site-packages) receives exactly the distributions Colab preinstalls that
   matter here (:data:`COLAB_PREINSTALLED`, plus pip itself) and their transitive requirements. Installing
   torch again from the registry would take gigabytes, so they are taken from the repository's ``.venv``
   (the interpreter running the tests): the closure of their requirements is computed with
   :mod:`importlib.metadata` (markers evaluated for this machine; optional extras not followed, except those a
   requirement names itself, such as torch's ``cuda-toolkit[cublas, ...]``), and each distribution's files,
   as listed in its ``RECORD``, are made visible by symlinks in the new ``site-packages``: a whole top-level
   folder when every distribution owning something in it is part of the closure, otherwise folder by folder
   down to single files (shared folders such as ``__pycache__``), and the ``.dist-info`` folder so that pip
   and :mod:`importlib.metadata` see them as installed (namespace packages such as ``nvidia/`` are real
   folders, so that pip never writes through a link). Nothing else is visible: no gymnasium, pygame,
   Stable-Baselines3, nbformat or nbclient unless a preinstalled library requires it, and not the
   repository's editable ``helpers``.
2. **The install cell.** A wheel of the repository is built (``pip wheel --no-deps``) from a copy of the files
   git would clone (tracked and untracked-but-not-ignored), the ``%pip install ...`` line of a notebook's first
   code cell is parsed, its ``git+{REPO_URL}`` is replaced by the wheel's ``file://`` URL (extras such as
   ``[baselines]`` kept) and that pip command runs in the new environment. Dependencies come from the package
   registry (or pip's cache), as in Colab. A constraints file pins every preinstalled distribution to the
   version present: the install must not replace Colab's torch (and pip, which removes files through the
   links, must never touch the repository's ``.venv``). pip's ``--report`` lists what it installed.
3. **Imports.** The top-level module of every ``import`` in a notebook's code cells (IPython magics and ``!``
   lines turned into Python by IPython's own input transformer) and in the ```` ```python ```` fences of its
   Markdown (the exercise solutions) must be found by :func:`importlib.util.find_spec` in the new interpreter,
   run from a folder outside the repository.
4. **Running a chapter.** :func:`execute_notebook` runs a notebook from a folder outside the repository with a
   Jupyter kernel on the new interpreter (a kernelspec pointing at it; nbclient itself runs from ``.venv``,
   as Colab's frontend is not part of the runtime either).

Differences from Colab that remain: the wheel is built from the working tree instead of cloned from GitHub;
the install cell's ``if "google.colab" in sys.modules`` branch is applied by the test before the kernel starts
(the kernel has no ``google.colab`` module and skips it); the preinstalled versions are those of ``.venv``, not
Colab's current ones; data comes from ``DLBOOK_DATA`` (Colab downloads it); no GPU.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections import defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

#: What Colab preinstalls that matters to this book (their own requirements come along).
COLAB_PREINSTALLED = (
    "torch",
    "torchvision",
    "numpy",
    "matplotlib",
    "pandas",
    "scikit-learn",
    "statsmodels",
    "transformers",
    "tqdm",
    "ipykernel",
)
#: Colab has pip too (the install cell needs it); linked rather than bootstrapped with ensurepip (faster).
TOOLS = ("pip",)
#: The placeholder of the install cells that stands for the repository.
REPO_PLACEHOLDER = "git+{REPO_URL}"
#: pip flags an install line may use: none of them lets pip remove or overwrite a preinstalled distribution.
SAFE_PIP_FLAGS = frozenset(
    {"-q", "-qq", "-qqq", "--quiet", "-U", "--upgrade", "--no-cache-dir", "--pre"}
)
#: Modules of ``helpers`` that are developer tools (slide decks, the results page), not used by a chapter.
DEVELOPER_MODULES = ("helpers.slides", "helpers.__main__")


# ----------------------------------------------------------------------------------------------------------
# 1. the preinstalled libraries


def requirement_closure(names) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` and everything they require, recursively (canonical name -> dist).

    Markers are evaluated for this interpreter with no optional extra selected; the extras a requirement asks for
    itself (``cuda-toolkit[cublas]``) are followed. A requirement that applies here but is not installed raises:
    the simulated runtime would be missing something the real one has.
    """
    found: dict[str, metadata.Distribution] = {}
    todo = [(name, frozenset()) for name in names]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        try:
            dist = found.get(key) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise RuntimeError(
                f"{name} is required by the simulated Colab runtime but not installed in "
                f"{sys.prefix}"
            ) from None
        found[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = [""] + sorted(extras)
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": e}) for e in wanted
            ):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return found


def _site_files(dist: metadata.Distribution) -> list[tuple[str, ...]]:
    """The dist's files inside its site-packages, as path parts (scripts in ../../bin and data are left out).

    Read from RECORD directly (paths there always use "/"): ``dist.files`` makes a path object per file, which
    for torch and the CUDA libraries' tens of thousands of files took most of this test's set-up time.
    """
    record = dist.read_text("RECORD")
    if record is not None:
        parts = [
            tuple(row[0].split("/")) for row in csv.reader(record.splitlines()) if row
        ]
    elif dist.files is not None:
        parts = [Path(f).parts for f in dist.files]
    else:
        raise RuntimeError(
            f"{dist.metadata['Name']} has no RECORD: cannot tell which files are its own"
        )
    return [p for p in parts if p and p[0] != ".."]


def link_distributions(dists: dict[str, metadata.Distribution], site: Path) -> int:
    """Symlink the files of ``dists`` (all from one site-packages) into ``site``; returns the number of links.

    A path is linked whole when every installed distribution owning a file under it is in ``dists``; otherwise a
    real folder is made and its entries are considered one by one, so that nothing of another distribution
    becomes visible. Namespace packages (folders without ``__init__.py``, such as ``nvidia/``) are real folders
    too: a distribution pip installs later into the same namespace then writes into the new venv, not
    through a link into the source environment.
    """
    source = {Path(d.locate_file("")).resolve() for d in dists.values()}
    assert len(source) == 1, (
        f"the preinstalled distributions come from several places: {source}"
    )
    source_site = source.pop()
    closure = set(dists)
    owners: dict[tuple[str, ...], set[str]] = defaultdict(
        set
    )  # path prefix -> owning distributions
    wanted: dict[tuple[str, ...], set[str]] = defaultdict(
        set
    )  # path prefix -> children to make visible
    files = {key: _site_files(dist) for key, dist in dists.items()}
    for key, paths in files.items():
        for parts in paths:
            for i in range(1, len(parts) + 1):
                owners[parts[:i]].add(key)
                if i < len(parts):
                    wanted[parts[:i]].add(parts[i])
    for dist in metadata.distributions(
        path=[str(source_site)]
    ):  # the others: where they share a folder
        key = canonicalize_name(dist.metadata["Name"])
        if key in closure:
            continue
        for parts in _site_files(dist):
            for i in range(1, len(parts) + 1):
                if parts[:i] not in owners:
                    break
                owners[parts[:i]].add(key)
    links = 0

    def visit(prefix: tuple[str, ...]) -> None:
        nonlocal links
        target = source_site.joinpath(*prefix)
        if not (target.exists() or target.is_symlink()):
            return  # listed in RECORD, since removed (e.g. a stale .pyc)
        namespace = (
            target.is_dir()
            and "." not in target.name
            and not (target / "__init__.py").exists()
        )
        if not target.is_dir() or (owners[prefix] <= closure and not namespace):
            site.joinpath(*prefix).symlink_to(target)
            links += 1
            return
        site.joinpath(*prefix).mkdir()
        for child in sorted(wanted[prefix]):
            visit(prefix + (child,))

    for top in sorted({parts[0] for paths in files.values() for parts in paths}):
        visit((top,))
    return links


@dataclass
class ColabVenv:
    """A simulated Colab runtime: ``python`` is its interpreter, ``site`` its site-packages."""

    root: Path
    python: Path
    site: Path
    preinstalled: dict[str, str]  # canonical name -> version

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process in this runtime: nothing of the repository's venv or PYTHONPATH."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "PYTHONPATH",
                "PYTHONHOME",
                "VIRTUAL_ENV",
                "PYTHONSTARTUP",
                "PYTHONUSERBASE",
            )
            and not k.startswith(("DLBOOK_", "PYTEST_"))
        }
        env["PATH"] = os.pathsep.join(
            [str(self.python.parent)]
            + [
                p
                for p in env.get("PATH", "").split(os.pathsep)
                if Path(sys.prefix) not in Path(p).parents
            ]
        )
        env["VIRTUAL_ENV"] = str(self.root)
        env.update(extra)
        return env

    def run(
        self, *args, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess:
        """Run this interpreter with ``args`` from ``cwd`` (default: its own folder, outside the repository)."""
        return run([self.python, *args], cwd=cwd or self.root, env=self.env(**env))


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def make_colab_venv(path: Path, preinstalled=COLAB_PREINSTALLED + TOOLS) -> ColabVenv:
    """A fresh virtual environment at ``path`` that sees exactly ``preinstalled`` and their requirements."""
    run([sys.executable, "-m", "venv", "--without-pip", path])
    python = path / "bin" / "python"
    site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    assert Path(sysconfig.get_paths()["purelib"]).resolve() != site.resolve()
    dists = requirement_closure(preinstalled)
    link_distributions(dists, site)
    return ColabVenv(path, python, site, {k: d.version for k, d in dists.items()})


# ----------------------------------------------------------------------------------------------------------
# 2. the install cell


def build_wheel(out: Path, root: Path = ROOT) -> Path:
    """The wheel ``pip install git+<repo>`` would build, from the files a clone of the working tree would hold."""
    src = out / "src"
    try:
        listed = run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
        ).stdout
        files = [f for f in listed.split("\0") if f and (root / f).is_file()]
    except (
        RuntimeError,
        FileNotFoundError,
    ):  # not a git checkout (e.g. an unpacked archive)
        files = [
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file()
            and not {".git", ".venv", "_build", "__pycache__", "build", "dist"}
            & set(p.relative_to(root).parts)
            and ".egg-info" not in str(p)
        ]
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, src / f)
    dist = out / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            dist,
            src,
        ]
    )
    (wheel,) = dist.glob("*.whl")
    return wheel


def first_code_cell(nb: dict) -> str:
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not cells:
        raise ValueError("the notebook has no code cell")
    return "".join(cells[0]["source"])


def install_args(nb: dict) -> list[str]:
    """The arguments of the ``%pip install`` line in the notebook's first code cell (the Colab install cell)."""
    lines = [
        m.group(1)
        for m in re.finditer(r"^\s*%pip\s+install\s+(.*)$", first_code_cell(nb), re.M)
    ]
    if len(lines) != 1:
        raise ValueError(
            f"the first code cell has {len(lines)} `%pip install` lines, expected one:\n"
            + first_code_cell(nb)
        )
    args = shlex.split(lines[0])
    unsafe = [a for a in args if a.startswith("-") and a not in SAFE_PIP_FLAGS]
    if (
        unsafe
    ):  # e.g. --force-reinstall would remove the linked files of .venv, see pip_install
        raise ValueError(
            f"pip flags {unsafe} are not simulated (allowed: {sorted(SAFE_PIP_FLAGS)})"
        )
    if sum(REPO_PLACEHOLDER in a for a in args) != 1:
        raise ValueError(
            f"the install line does not install the repository ({REPO_PLACEHOLDER}): {lines[0]}"
        )
    return args


def install_spec(nb: dict) -> str:
    """The install line as written (without pip's flags): what notebooks are grouped by."""
    return " ".join(a for a in install_args(nb) if not a.startswith("-"))


def pip_install(venv: ColabVenv, args: list[str], wheel: Path, work: Path) -> list[str]:
    """Run the install cell's pip command in ``venv``, the repository replaced by ``wheel``.

    Returns the ``name==version`` of every distribution pip installed. The preinstalled distributions are pinned
    by a constraints file: a requirement that would replace one of them fails here, with pip's explanation.
    """
    args = [a.replace(REPO_PLACEHOLDER, wheel.resolve().as_uri()) for a in args]
    work.mkdir(parents=True, exist_ok=True)
    constraints = work / "colab-preinstalled.txt"
    constraints.write_text(
        "".join(
            f"{name}=={version}\n"
            for name, version in sorted(venv.preinstalled.items())
        )
    )
    report = work / "pip-report.json"
    venv.run(
        "-m",
        "pip",
        "install",
        *args,
        "--constraint",
        constraints,
        "--report",
        report,
        "--progress-bar",
        "off",
        cwd=work,
    )
    installed = json.loads(report.read_text())["install"]
    outside = []  # files of the distributions pip installed that lie outside the venv
    for info in venv.site.glob("*.dist-info"):
        if not info.is_symlink() and (info / "RECORD").exists():
            for line in (info / "RECORD").read_text().splitlines():
                file = venv.site / line.rsplit(",", 2)[0]
                if venv.root.resolve() not in file.resolve().parents:
                    outside.append(str(file))
    assert not outside, (
        f"pip wrote through a link, outside the simulated runtime: {outside[:10]}"
    )
    return [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installed]


# ----------------------------------------------------------------------------------------------------------
# 3. imports


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


_FENCE = re.compile(
    r"^[ \t]*```+[ \t]*(?:python|py|ipython3?)[ \t]*\n(.*?)^[ \t]*```", re.M | re.S
)
_IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([A-Za-z_][\w., \t]*))",
    re.M,
)


def _python_of_cell(source: str) -> str:
    from IPython.core.inputtransformer2 import (
        TransformerManager,
    )  # magics and !shell lines -> Python

    return TransformerManager().transform_cell(source)


def notebook_imports(nb: dict) -> dict[str, set[str]]:
    """Top-level modules imported by the notebook -> where (``cell 12``, ``markdown cell 30``)."""
    found: dict[str, set[str]] = defaultdict(set)
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            try:
                names = _imported(ast.parse(_python_of_cell(source)))
            except SyntaxError as err:
                raise ValueError(
                    f"code cell {i} does not parse: {err}\n{source}"
                ) from None
            for name in names:
                found[name].add(f"cell {i}")
        elif cell["cell_type"] == "markdown":
            for fence in _FENCE.findall(source):
                try:
                    names = _imported(ast.parse(_python_of_cell(fence)))
                except SyntaxError:  # a sketch in a solution: read its import lines
                    names = set()
                    for frm, imp in _IMPORT_LINE.findall(fence):
                        names |= (
                            {frm}
                            if frm
                            else {
                                n.strip().split(".")[0].split()[0]
                                for n in imp.split(",")
                                if n.strip()
                            }
                        )
                for name in names:
                    found[name].add(f"markdown cell {i}")
    return dict(found)


def helpers_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Top-level modules imported anywhere in ``helpers`` (also inside functions), developer tools left out."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted((root / "helpers").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        if module in DEVELOPER_MODULES:
            continue
        for name in _imported(ast.parse(path.read_text())):
            found[name].add(str(path.relative_to(root)))
    found.pop("helpers", None)
    return dict(found)


def chapter_modules(root: Path = ROOT) -> list[str]:
    """The importable modules of ``helpers`` a chapter may import (developer tools left out)."""
    mods = [
        ".".join(p.relative_to(root).with_suffix("").parts)
        for p in sorted((root / "helpers").glob("*.py"))
    ]
    return [m.removesuffix(".__init__") for m in mods if m not in DEVELOPER_MODULES]


_FIND = """
import importlib.util, json, sys
names = json.loads(sys.argv[1])
print(json.dumps([n for n in names if importlib.util.find_spec(n) is None]))
"""


def missing_modules(venv: ColabVenv, names) -> list[str]:
    """The names among ``names`` that the venv's interpreter cannot find (run from outside the repository)."""
    out = venv.run("-c", _FIND, json.dumps(sorted(names))).stdout
    return json.loads(out.strip().splitlines()[-1])


def unprovided_imports(
    venv: ColabVenv, notebooks: dict[str, dict]
) -> dict[str, dict[str, set[str]]]:
    """For each notebook (name -> JSON), the modules it imports that ``venv`` cannot find, with where."""
    imports = {name: notebook_imports(nb) for name, nb in notebooks.items()}
    missing = (
        set(missing_modules(venv, set().union(*imports.values()))) if imports else set()
    )
    report = {
        name: {m: where for m, where in found.items() if m in missing}
        for name, found in imports.items()
    }
    return {name: found for name, found in report.items() if found}


def describe_unprovided(
    report: dict[str, dict[str, set[str]]], install_line: str
) -> str:
    """A message that names each notebook, module and cell that the install line leaves unprovided."""
    return "\n".join(
        f"{name} imports {module} ({', '.join(sorted(where))}), which a Colab runtime does not have after its "
        f"install cell `%pip install {install_line}`"
        for name, found in sorted(report.items())
        for module, where in sorted(found.items())
    )


# ----------------------------------------------------------------------------------------------------------
# 4. running a chapter


_EXECUTE = """
import sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], as_version=4)
try:
    nbclient.NotebookClient(nb, timeout=int(sys.argv[3]), kernel_name="colab-sim").execute()
finally:
    nbformat.write(nb, sys.argv[2])
"""


def execute_notebook(
    venv: ColabVenv, notebook: Path, work: Path, timeout: int = 600, **env: str
) -> dict:
    """Execute a copy of ``notebook`` in ``work`` (outside the repository) on a kernel of ``venv``.

    A last cell prints where ``helpers`` was imported from (``HELPERS_FROM <path>``). Returns the executed
    notebook; a failing cell raises RuntimeError with nbclient's message.
    """
    work.mkdir(parents=True, exist_ok=True)
    nb = json.loads(notebook.read_text())
    nb["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "import helpers, sys\nprint('HELPERS_FROM', helpers.__file__)\n"
            "print('PYTHON_PREFIX', sys.prefix)",
        }
    )
    copy = work / notebook.name
    copy.write_text(json.dumps(nb))
    spec = work / "jupyter" / "kernels" / "colab-sim"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    str(venv.python),
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "Python 3 (simulated Colab)",
                "language": "python",
            }
        )
    )
    executed = work / f"{notebook.stem}.executed.ipynb"
    kernel_env = venv.env(
        JUPYTER_PATH=str(work / "jupyter"), IPYTHONDIR=str(work / "ipython"), **env
    )
    # nbclient runs from the repository's venv (the frontend); the kernel is the simulated runtime.
    run(
        [sys.executable, "-c", _EXECUTE, copy, executed, timeout],
        cwd=work,
        env=kernel_env,
    )
    return json.loads(executed.read_text())


def printed(nb: dict, cell: int = -1) -> str:
    """The text a cell printed (stream outputs)."""
    texts = [
        o.get("text", "")
        for o in nb["cells"][cell]["outputs"]
        if o.get("output_type") == "stream"
    ]
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)
