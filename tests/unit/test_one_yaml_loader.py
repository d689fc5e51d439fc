"""One YAML 1.2 loader everywhere (ruamel.yaml): a fixture or rule file means the same to the
sandbox, the demo, the rule loader and the tests. PyYAML (YAML 1.1) reads `9:30` as 570 and
`no` as false."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from syncd.sandbox.server import load_fixture

ROOT = Path(__file__).resolve().parents[2]


def test_a_fixture_reads_as_yaml_1_2(tmp_path: Path) -> None:
    fixture = tmp_path / "seed.yaml"
    fixture.write_text("graph:\n  lists:\n    - {name: Shifts, items: [{fields: "
                       "{Start: 9:30, Remote: no, Day: 2026-03-02}}]}\n")
    fields = load_fixture(fixture)["graph"]["lists"][0]["items"][0]["fields"]
    assert fields["Start"] == "9:30" and fields["Remote"] == "no"
    assert str(fields["Day"]) == "2026-03-02"


def test_nothing_imports_pyyaml_and_it_is_not_a_dependency() -> None:
    importers = []
    for path in sorted([*ROOT.glob("syncd/**/*.py"), *ROOT.glob("tests/**/*.py"),
                        *ROOT.glob("bench/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name == "yaml" or name.startswith("yaml.") for name in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    assert not [d for d in declared if d.lower().startswith("pyyaml")]
