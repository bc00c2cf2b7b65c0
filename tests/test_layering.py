"""Only app/ imports Qt: core/ and training/ must run headless (CLI, tests, training machines)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_and_training_do_not_import_qt():
    files = [p for package in ("core", "training") for p in (ROOT / package).rglob("*.py")]
    assert len(files) > 5
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] in QT_MODULES)
                 for p in files}
    assert not {k: v for k, v in offenders.items() if v}


def test_checker_sees_qt_imports(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from PySide6.QtCore import QTimer\n")
    assert imported_modules(sample) == {"PySide6.QtCore"}
