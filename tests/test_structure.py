"""The shape of the code: no import cycles between product modules, no module reaching into
another's privates (docs/architecture.md, "Packages and what they may import")."""

from __future__ import annotations

from pathlib import Path

from import_graph import (
    ALLOWED_PRIVATE,
    PRODUCT,
    cycles,
    describe,
    load,
    private_uses,
)


def test_product_modules_import_each_other_one_way_only() -> None:
    modules = load()
    assert len(modules) > 100  # the product was found
    found = [describe(cycle, modules) for cycle in cycles(modules)]
    assert found == [], "\n".join(found)


def test_no_module_uses_another_modules_privates() -> None:
    modules = load()
    found = [
        f"{use.module}:{use.line}: {use.text}"
        for use in private_uses(modules)
        if (use.module, use.name) not in ALLOWED_PRIVATE
    ]
    assert found == [], "\n".join(found)


def test_the_private_allow_list_names_only_uses_that_exist() -> None:
    uses = {(use.module, use.name) for use in private_uses(load())}
    stale = sorted(set(ALLOWED_PRIVATE) - uses)
    assert stale == [], f"allowed but no longer used, remove: {stale}"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_finds_a_cycle_however_the_import_is_written(tmp_path: Path) -> None:
    # a type-only import and an import inside a function still make a cycle
    _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.b import B\n",
            "b.py": "def f():\n    from . import c\n",
            "c.py": "import pkg.a\n",
            "d.py": "from pkg import a\n",  # outside the cycle
        },
    )
    modules = load({"pkg": tmp_path / "pkg"})
    found = cycles(modules)
    assert len(found) == 1
    assert [(i.source, i.target) for i in found[0]] == [
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.c"),
        ("pkg.c", "pkg.a"),
    ]
    assert describe(found[0], modules).startswith("cycle: pkg.a → pkg.b")


def test_the_check_finds_a_private_used_across_modules(tmp_path: Path) -> None:
    _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "class A:\n    def _hidden(self): ...\n    def ok(self): self._hidden()\n",
            "b.py": "from pkg.a import A, _x\ndef f(a: A): a._hidden()\n",
        },
    )
    uses = sorted((u.module, u.text) for u in private_uses(load({"pkg": tmp_path / "pkg"})))
    assert uses == [("pkg.b", "a._hidden"), ("pkg.b", "from pkg.a import")]


def test_the_product_is_every_package_setup_installs() -> None:
    assert all(path.is_dir() for path in PRODUCT.values())
