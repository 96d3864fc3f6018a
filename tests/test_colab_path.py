"""The Colab path, simulated offline: `helpers` installed from a wheel into a fresh virtual environment,
and a chapter executed from a folder outside the repository (as Colab runs a notebook opened from GitHub)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "deep_learning" / "mlp.ipynb"


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_wheel_install_runs_a_chapter_outside_the_repo(tmp_path, real_data_dir):
    # 1. Build the wheel that `pip install git+<repo>` would build.
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT])
    wheel = next(dist.glob("*.whl"))

    # 2. A fresh virtual environment. The heavy libraries (torch, jupyter...) stand in for what Colab
    #    preinstalls: reached through a .pth file, so neither the repository nor an editable install is visible.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "colab_preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", site, wheel])

    # 3. Run the chapter from a folder outside the repository, with the kernel of the new environment.
    work = tmp_path / "colab"
    work.mkdir()
    nb = json.loads(CHAPTER.read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": "import helpers\nprint('HELPERS_FROM', helpers.__file__)"})
    (work / CHAPTER.name).write_text(json.dumps(nb))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", DLBOOK_QUICK="1",
               DLBOOK_DATA=str(real_data_dir), TQDM_DISABLE="1", MPLBACKEND="Agg")
    # nbclient executes the notebook with the "python3" kernel of the interpreter that runs it: the new venv's.
    execute = ("import nbformat, nbclient; nb = nbformat.read('mlp.ipynb', as_version=4); "
               "nbclient.NotebookClient(nb, timeout=900, kernel_name='python3').execute(); "
               "nbformat.write(nb, 'executed.ipynb')")
    run([python, "-c", execute], cwd=work, env=env)

    executed = json.loads((work / "executed.ipynb").read_text())
    texts = [o.get("text", "") for o in executed["cells"][-1]["outputs"]]
    printed = "".join("".join(t) if isinstance(t, list) else t for t in texts)  # nbformat may store lines as a list
    assert "HELPERS_FROM" in printed
    location = Path(printed.split("HELPERS_FROM", 1)[1].strip())
    assert site in location.parents, f"helpers came from {location}, not from the installed wheel"
    assert ROOT not in location.parents
    shutil.rmtree(venv)
