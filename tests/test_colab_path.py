"""The Colab path: every chapter's imports are provided by its own install cell in a Colab-like runtime, a
deep-learning chapter runs end to end there from a folder outside the repository, and the PPO chapter's extra
(Stable-Baselines3) trains beside the book's own PPO there.

How the runtime is simulated (offline apart from the package registry) is explained in tests/colab_sim.py.
Notebooks with the same install line share one simulated runtime: one test per distinct install line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.student import write_edition
from tests import colab_sim

ROOT = colab_sim.ROOT
NOTEBOOKS = sorted(ROOT.glob("book/**/*.ipynb"))
#: Executed end to end in the simulated runtime (quick mode): the cheapest chapter, about 15 s of one core.
#: The PPO chapter (the install line with an extra) is not re-run here, it would cost about 60 s more of CI's
#: 15 minutes: nbval runs it in the repository's environment, and SB3_SMOKE below runs what that extra adds.
EXECUTED = ("book/deep_learning/mlp.ipynb",)
#: With the ``[baselines]`` extra: Stable-Baselines3 and the book's PPO train a few updates each on CartPole,
#: from the installed wheel. Catches versions that import but do not work together (gymnasium, SB3, torch).
SB3_SMOKE = """
import helpers, stable_baselines3
from helpers import ppo
from stable_baselines3 import PPO
sb3 = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1,
          seed=0, device="cpu").learn(128)
cfg = ppo.PPOConfig(num_envs=2, num_steps=32, epochs=1, minibatches=2)
ours = ppo.train_ppo("CartPole-v1", 128, cfg, seed=0, progress=False)
print("SB3_STEPS", sb3.num_timesteps, "OURS_STEPS", ours.env_steps, "SB3", stable_baselines3.__version__)
print("HELPERS_FROM", helpers.__file__)
"""
#: Not preinstalled in Colab: the simulated runtime must not see them before the install cell runs.
NOT_PREINSTALLED = (
    "helpers",
    "gymnasium",
    "pygame",
    "stable_baselines3",
    "nbformat",
    "nbclient",
)


def _groups() -> tuple[dict[str, list[str]], dict[str, str]]:
    """Notebooks by install line (as written, e.g. ``git+{REPO_URL}``), and the notebooks without a usable one."""
    groups: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for path in NOTEBOOKS:
        name = str(path.relative_to(ROOT))
        try:
            groups.setdefault(
                colab_sim.install_spec(json.loads(path.read_text())), []
            ).append(name)
        except ValueError as err:
            errors[name] = str(err)
    return groups, errors


GROUPS, INSTALL_CELL_ERRORS = _groups()


def _id(spec: str) -> str:
    extras = re.search(r"\[([^\]]*)\]", spec)
    return f"extras-{extras.group(1)}" if extras else "plain"


def test_every_notebook_has_an_install_cell():
    assert NOTEBOOKS, "no notebook found"
    assert not INSTALL_CELL_ERRORS, "\n".join(
        f"{k}: {v}" for k, v in INSTALL_CELL_ERRORS.items()
    )
    for name in EXECUTED:
        assert any(name in group for group in GROUPS.values()), (
            f"{name} is not in the book any more"
        )


def test_checker_reports_an_import_the_install_cell_does_not_provide(tmp_path):
    """The checker itself: a runtime with only numpy, a notebook importing more, in code and in a solution."""
    install = (
        'import sys\nREPO_URL = "https://example.org/x"\nif "google.colab" in sys.modules:\n'
        '    %pip install -q "git+{REPO_URL}"\n'
    )
    solution = (
        '<details class="solution">\n<summary>Solution</summary>\n\n```python\nimport gymnasium as gym\n'
        'env = gym.make("CartPole-v1")\n```\n\n```python\nfrom statsmodels.api import OLS\n'
        "model = OLS(<your data>)\n```\n\n</details>\n"
    )
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": ["# A chapter\n"]},
            {"cell_type": "code", "source": install},
            {
                "cell_type": "code",
                "source": "%matplotlib inline\n!ls\nimport numpy as np, os.path\n"
                "if np.pi > 3:\n    from stable_baselines3 import PPO\n"
                "from . import local  # relative: not a module to install\n",
            },
            {"cell_type": "markdown", "source": solution},
        ]
    }
    assert colab_sim.install_args(nb) == ["-q", "git+{REPO_URL}"]
    assert colab_sim.install_spec(nb) == "git+{REPO_URL}"
    extra = {
        "cells": [
            {
                "cell_type": "code",
                "source": install.replace(
                    '"git+{REPO_URL}"', '"dlbook-helpers[baselines] @ git+{REPO_URL}"'
                ),
            }
        ]
    }
    assert colab_sim.install_spec(extra) == "dlbook-helpers[baselines] @ git+{REPO_URL}"
    with pytest.raises(ValueError, match="does not install the repository"):
        colab_sim.install_args(
            {"cells": [{"cell_type": "code", "source": "%pip install -q numpy\n"}]}
        )
    with pytest.raises(
        ValueError, match="not simulated"
    ):  # it would reinstall torch through the links
        colab_sim.install_args(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "source": install.replace("-q", "--force-reinstall"),
                    }
                ]
            }
        )
    with pytest.raises(ValueError, match="expected one"):
        colab_sim.install_args(
            {"cells": [{"cell_type": "code", "source": "import helpers\n"}]}
        )

    imports = colab_sim.notebook_imports(nb)
    assert set(imports) == {
        "sys",
        "numpy",
        "os",
        "stable_baselines3",
        "gymnasium",
        "statsmodels",
    }
    assert imports["stable_baselines3"] == {"cell 2"} and imports["statsmodels"] == {
        "markdown cell 3"
    }

    venv = colab_sim.make_colab_venv(tmp_path / "venv", preinstalled=("numpy",))
    assert colab_sim.missing_modules(venv, ["numpy", "sys", "torch", "helpers"]) == [
        "helpers",
        "torch",
    ]
    report = colab_sim.unprovided_imports(venv, {"fake.ipynb": nb})
    assert report == {
        "fake.ipynb": {
            "stable_baselines3": {"cell 2"},
            "gymnasium": {"markdown cell 3"},
            "statsmodels": {"markdown cell 3"},
        }
    }
    message = colab_sim.describe_unprovided(report, "-q git+{REPO_URL}")
    assert "fake.ipynb imports stable_baselines3 (cell 2)" in message


def _assert_helpers_from_wheel(out: str, venv: colab_sim.ColabVenv, what: str) -> None:
    """``out`` printed ``HELPERS_FROM <helpers/__init__.py>``: it must be the installed wheel's copy."""
    location = Path(out.split("HELPERS_FROM", 1)[1].split()[0])
    assert location.parent.parent == venv.site, (
        f"{what}: helpers came from {location}, not the wheel"
    )
    assert not location.is_symlink() and ROOT not in location.resolve().parents


@pytest.mark.parametrize("spec", sorted(GROUPS), ids=_id)
def test_install_cell_provides_every_import_and_chapters_run(spec, tmp_path, request):
    names = GROUPS[spec]
    notebooks = {name: json.loads((ROOT / name).read_text()) for name in names}
    args = colab_sim.install_args(notebooks[names[0]])

    # The runtime before the install cell: Colab's libraries, nothing of the book.
    venv = colab_sim.make_colab_venv(tmp_path / "venv")
    assert "torch" in venv.preinstalled and "ipykernel" in venv.preinstalled
    leaked = set(NOT_PREINSTALLED) - set(
        colab_sim.missing_modules(venv, NOT_PREINSTALLED)
    )
    assert not leaked, (
        f"the simulated Colab runtime already has {sorted(leaked)} before the install cell"
    )
    listed = json.loads(venv.run("-m", "pip", "list", "--format=json").stdout)
    unseen = set(venv.preinstalled) - {
        colab_sim.canonicalize_name(d["name"]) for d in listed
    }
    assert not unseen, f"pip does not see the linked {sorted(unseen)} as installed"

    # The install cell, with a wheel of this repository in place of the GitHub URL.
    wheel = colab_sim.build_wheel(tmp_path / "wheel")
    installed = colab_sim.pip_install(venv, args, wheel, tmp_path / "pip")
    print(f"%pip install {' '.join(args)} installed: {', '.join(installed)}")
    assert any(i.startswith("dlbook-helpers==") for i in installed), installed
    replaced = {colab_sim.canonicalize_name(i.split("==")[0]) for i in installed} & set(
        venv.preinstalled
    )
    assert not replaced, (
        f"the install cell replaced Colab's preinstalled {sorted(replaced)}"
    )
    venv.run("-m", "pip", "check")  # every requirement satisfied, old and new

    # Every import of every notebook with this install line (code cells and solutions), and of helpers itself.
    report = colab_sim.unprovided_imports(venv, notebooks)
    assert not report, colab_sim.describe_unprovided(report, " ".join(args))
    missing = colab_sim.missing_modules(venv, colab_sim.helpers_imports())
    assert not missing, (
        f"helpers imports {missing}, which `%pip install {' '.join(args)}` does not provide"
    )
    modules = colab_sim.chapter_modules()
    venv.run(
        "-c", "import " + ", ".join(modules)
    )  # importing them for real: versions fit together
    if (
        "[" not in spec
    ):  # the checker can fail here: the plain line must not bring the PPO chapter's baseline
        assert colab_sim.missing_modules(venv, ["stable_baselines3"]) == [
            "stable_baselines3"
        ]

    # The cheapest deep-learning chapter end to end, quick mode, from a folder outside the repository, in its
    # student edition: the copy a course hands out to open in Colab. (nbval runs the book's own copy.) An
    # unfinished exercise prints what is still to do instead of stopping the notebook.
    for name in (n for n in EXECUTED if n in names):
        env = {
            "DLBOOK_QUICK": "1",
            "TQDM_DISABLE": "1",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "DLBOOK_RESULTS": str(tmp_path / "results"),
        }
        if "deep_learning" in name:
            env["DLBOOK_DATA"] = str(
                request.getfixturevalue("real_data_dir")
            )  # skips where there is none
        work = tmp_path / "colab" / Path(name).stem
        (edition,) = write_edition(tmp_path / "student", notebooks=[ROOT / name])
        executed = colab_sim.execute_notebook(venv, edition["path"], work, **env)
        out = colab_sim.printed(executed)
        _assert_helpers_from_wheel(out, venv, name)
        assert Path(out.split("PYTHON_PREFIX", 1)[1].split()[0]) == venv.root
        code = [i for i, c in enumerate(executed["cells"]) if c["cell_type"] == "code"]
        assert all(executed["cells"][i]["execution_count"] for i in code), (
            "every cell ran"
        )
        printed = "".join(colab_sim.printed(executed, i) for i in code)
        assert "❌ softmax_cross_entropy: not implemented yet" in printed

    if "[" in spec:  # the extra's library trains, and the book's own PPO beside it
        out = venv.run("-c", SB3_SMOKE, OMP_NUM_THREADS="1").stdout
        assert "SB3_STEPS 128 OURS_STEPS 128" in out, out
        _assert_helpers_from_wheel(out, venv, "the [baselines] check")
