"""The model registry: a light table (no torch to list it), classes imported only when built."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from eegmusic.offline_training.models.registry import (
    ALL_MODELS,
    GENERATIVE_MODELS,
    MODELS,
    SPECS,
    architectures_help,
    build_model,
)
from eegmusic.stream.errors import ConfigError


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_table_agrees_with_the_model_classes():
    pytest.importorskip("torch")
    from eegmusic.offline_training.models.base import MelDecoder

    names = [spec.name for spec in SPECS]
    assert len(names) == len(set(names)), f"a name is registered twice: {names}"
    for spec in SPECS:
        cls = spec.load()
        assert issubclass(cls, MelDecoder) and cls.name == spec.name, spec
        assert spec.generative == (cls.training_loop in ("gan", "diffusion")), spec
        assert spec.summary and "\n" not in spec.summary, spec
    assert set(MODELS) | set(GENERATIVE_MODELS) == set(ALL_MODELS) == set(names)
    assert not set(MODELS) & set(GENERATIVE_MODELS)


def test_listing_the_registry_imports_no_model_and_no_torch():
    result = _python(
        "import sys\n"
        "from eegmusic.offline_training.models import registry as r\n"
        "text = r.architectures_help(); names = list(r.ALL_MODELS); known = 'convnet' in r.MODELS\n"
        "pre = 'eegmusic.offline_training.models.'\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith(pre))\n"
        "print(known, len(names), loaded)\n"
    )
    assert result.returncode == 0, result.stderr
    registry_only = "['eegmusic.offline_training.models.registry']"
    assert result.stdout.split() == ["True", str(len(SPECS)), registry_only], result.stdout


def test_building_a_model_imports_that_model_only():
    pytest.importorskip("torch")
    result = _python(
        "import sys\n"
        "from eegmusic.offline_training.models.registry import SPECS, build_model\n"
        "build_model('linear')\n"
        "others = [s.name for s in SPECS if s.name != 'linear' and s.target.split(':')[0] in sys.modules]\n"
        "print('linear' in sys.modules['eegmusic.offline_training.models.linear'].__name__, others)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "[]"], result.stdout


def test_help_lists_each_model_once_with_its_summary():
    text = " ".join(architectures_help().split())
    for spec in SPECS:
        assert len(re.findall(rf"\b{spec.name} \(", text)) == 1 and spec.summary in text, spec


def test_unknown_architecture_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; use one of linear, cnn"):
        build_model("nope")


def test_train_help_states_every_models_default_learning_rate():
    """``train --lr``'s help names each model's own default (it once said 1.5e-3 for sourcenet, whose
    default is 3e-3): a model whose default differs from the base class's is named beside its rate."""
    pytest.importorskip("torch")
    import argparse

    from eegmusic.offline_training.cli_train import add_train_arguments
    from eegmusic.offline_training.models.base import MelDecoder

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    (lr,) = [action for action in parser._actions if "--lr" in action.option_strings]
    clauses = re.search(r"default: the model's own: (.*)\)", lr.help).group(1).split(", ")
    stated = {}
    for clause in clauses:
        names, rate = clause.rsplit(" ", 1)
        for name in re.split(r" and ", names):
            stated[name] = float(rate)
    others = stated.pop("the others")
    assert others == MelDecoder.default_lr
    assert set(stated) <= {spec.name for spec in SPECS}, stated
    for spec in SPECS:
        assert stated.get(spec.name, others) == spec.load().default_lr, spec.name
