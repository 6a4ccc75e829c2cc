"""Adding a defense or an attack takes one class and one registry line, and a recipe with options of its
own one module and one registry line; the package has no import circle, and the attack command line does
not import the training code."""

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch.nn.functional as F

from rift_fast.attacks import RECIPES, SearchMethod, SearchOutcome
from rift_fast.attacks.recipes import Recipe, register_recipe, register_search
from rift_fast.attacks.recipes.options import ModificationBudgetOption, option
from rift_fast.cli import train
from rift_fast.training.defenses import DEFENSES, Defense, register_defense

PACKAGE = Path(__file__).resolve().parents[1] / "rift_fast"


@dataclass(frozen=True)
class LabelSmoothingSettings:
    smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the toy defense"})


class LabelSmoothing(Defense):
    name = "toy-smoothing"
    summary = "cross-entropy with label smoothing (a toy defense of the tests)"
    settings_type = LabelSmoothingSettings

    def forward(self, batch):
        logits, _ = self.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        ce = F.cross_entropy(logits, batch["labels"], label_smoothing=self.settings.smoothing)
        return {"loss": ce, "ce": ce}


@pytest.fixture
def toy_defense():
    register_defense(LabelSmoothing)  # the one registry line
    yield LabelSmoothing
    DEFENSES.pop(LabelSmoothing.name)


def test_a_toy_defense_is_one_class_and_one_registry_line(toy_defense, tiny_model_dir, tmp_path):
    args = train.build_parser().parse_args(["--method", "toy-smoothing", "--smoothing", "0.2"])
    assert args.method == ["toy-smoothing"] and args.smoothing == 0.2
    method_help = train.build_parser()._option_string_actions["--method"].help
    assert "toy-smoothing: cross-entropy with label smoothing" in method_help
    output = tmp_path / "run"
    argv = [
        "--model",
        str(tiny_model_dir),
        "--method",
        "toy-smoothing",
        "--train-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "16",
        "--dev-examples",
        "4",
        "--test-examples",
        "2",
        "--ga-population",
        "2",
        "--ga-generations",
        "1",
        "--dev-adversary-steps",
        "1",
        "--output-dir",
        str(output),
    ]
    assert train.main(argv) == 0
    assert (output / "toy-smoothing" / "best" / "model.safetensors").exists()


def test_registering_a_name_twice_is_refused(toy_defense):
    with pytest.raises(ValueError, match="a defense named 'toy-smoothing' is registered already"):
        register_defense(toy_defense)


def _imports_of(path: Path) -> set[str]:
    """Every rift_fast module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("rift_fast")}


def _import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        # "from a.b import c" names module a.b.c when c is a module, else a.b.
        graph[name] = {imported for imported in _imports_of(path) if imported in modules and imported != name}
    return graph


def _reachable(graph, start):
    seen, stack = set(), [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_the_package_has_no_import_circle():
    graph = _import_graph()
    # A package importing its own submodules (its __init__) is not a circle; anything else is.
    circles = sorted(
        name
        for name in graph
        if any(
            name in _reachable(graph, nxt) and not nxt.startswith(name + ".") and not name.startswith(nxt + ".")
            for nxt in graph[name]
        )
    )
    assert circles == []


# The command-line entry points: ``python -m rift_fast``, ``python -m rift_fast.train`` / ``.attack`` / ``.export``.
ENTRY_POINTS = {"rift_fast.__main__", "rift_fast.train", "rift_fast.attack", "rift_fast.export"}


def test_the_library_never_imports_the_command_line():
    graph = _import_graph()
    library = [name for name in graph if name not in ENTRY_POINTS and not name.startswith("rift_fast.cli")]
    importers = sorted(name for name in library if any(nxt.startswith("rift_fast.cli") for nxt in graph[name]))
    assert len(library) > 50 and importers == []


def test_the_attack_command_line_does_not_import_training():
    reached = _reachable(_import_graph(), "rift_fast.attack")
    assert "rift_fast.models.checkpoint" in reached
    assert not any(name.startswith("rift_fast.training") for name in reached)


class FirstSwap(SearchMethod):
    """Swap the first attackable word for its first candidate (a toy search of the tests)."""

    name = "toy-first-swap"

    def __init__(self, goal):
        self.goal = goal

    def settings(self):
        return {"search": self.name}

    def attack(self, targets, engine, clean):
        chosen = {t.index: {t.attackable[0]: 1} for t in targets}
        answers = engine.answer([t.edit(chosen[t.index]) for t in targets])
        return {
            t.index: SearchOutcome(self.goal.succeeded(p, t.label), chosen[t.index]) for t, p in zip(targets, answers)
        }


@pytest.fixture
def toy_search():
    register_search(FirstSwap)  # the one registry line
    yield FirstSwap
    RECIPES.pop(FirstSwap.name)


def test_a_toy_search_is_one_class_and_one_registry_line(toy_search, tiny_model_dir, tmp_path):
    from rift_fast.cli import attack

    assert "toy-first-swap" in attack.build_parser()._option_string_actions["--attack"].choices
    output = tmp_path / "toy.json"
    assert (
        attack.main(
            [
                "--model",
                str(tiny_model_dir),
                "--attack",
                "toy-first-swap",
                "--num-examples",
                "3",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    report = json.loads(output.read_text())
    assert report["settings"]["search"] == {"search": "toy-first-swap"} and report["summary"]["examples"] == 3
    assert all(r["words_changed"] <= 1 for r in report["results"])


# A recipe with an option of its own: its module is the options dataclass, the search and the recipe below.
@dataclass(frozen=True)
class FirstSwapsOptions(ModificationBudgetOption):
    """The toy recipe's options.

    Attributes:
        toy_swaps: words swapped per example.
    """

    toy_swaps: int = option(1, "toy recipe: words swapped per example", int, positive=True)


class FirstSwaps(SearchMethod):
    """Swap the first ``swaps`` attackable words for their first candidates (a toy search of the tests)."""

    name = "toy-first-swaps"

    def __init__(self, goal, swaps):
        self.goal, self.swaps = goal, swaps

    def settings(self):
        return {"search": self.name, "swaps": self.swaps}

    def attack(self, targets, engine, clean):
        chosen = {t.index: dict.fromkeys(t.attackable[: self.swaps], 1) for t in targets}
        answers = engine.answer([t.edit(chosen[t.index]) for t in targets])
        return {
            t.index: SearchOutcome(self.goal.succeeded(p, t.label), chosen[t.index]) for t, p in zip(targets, answers)
        }


class FirstSwapsRecipe(Recipe[FirstSwapsOptions]):
    name, label, summary = "toy-first-swaps", "toy", "swap the first words (a toy recipe of the tests)"
    options_type = FirstSwapsOptions

    def search(self, goal, victim, synonyms, options):
        return FirstSwaps(goal, options.toy_swaps)


@pytest.fixture
def toy_recipe():
    register_recipe(FirstSwapsRecipe)  # the one registry line
    yield FirstSwapsRecipe
    RECIPES.pop(FirstSwapsRecipe.name)


def test_a_toy_recipe_with_an_option_is_one_module_and_one_registry_line(toy_recipe, tiny_model_dir, tmp_path):
    from rift_fast.cli import attack
    from rift_fast.cli.protocol_arguments import recipe_options

    parser = attack.build_parser()
    assert "toy-first-swaps" in parser._option_string_actions["--attack"].choices
    assert parser._option_string_actions["--toy-swaps"].help == "toy recipe: words swapped per example"
    assert "--toy-swaps" in train.build_parser()._option_string_actions  # an option of --eval-attacks too
    with pytest.raises(SystemExit):
        parser.parse_args(["--toy-swaps", "0"])  # positive=True: integers >= 1
    argv = ["--model", str(tiny_model_dir), "--attack", "toy-first-swaps", "--toy-swaps", "2", "--num-examples", "3"]
    assert recipe_options(parser.parse_args(argv)).value("toy_swaps") == 2
    output = tmp_path / "toy.json"
    assert attack.main([*argv, "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["settings"]["search"] == {"search": "toy-first-swaps", "swaps": 2}  # recorded, as the recipe read it
    assert report["summary"]["examples"] == 3 and all(r["words_changed"] <= 2 for r in report["results"])


def test_a_recipe_option_is_one_flag_with_one_default(toy_recipe):
    @dataclass(frozen=True)
    class OtherOptions(ModificationBudgetOption):
        toy_swaps: int = option(3, "toy recipe: words swapped per example", int, positive=True)

    class Other(FirstSwapsRecipe):
        name = "toy-other"
        options_type = OtherOptions

    with pytest.raises(ValueError, match="option toy_swaps of recipe 'toy-other' differs"):
        register_recipe(Other)
    assert "toy-other" not in RECIPES
