import ast
from pathlib import Path

from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def test_ml_never_imports_django():
    offenders = []
    for path in (ROOT / "ml").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("django", "rest_framework", "celery", "recognition")
            ]
    assert offenders == []


def test_the_openapi_schema_generates_without_warnings(tmp_path, db):
    # --fail-on-warn turns drf-spectacular's warnings (name clashes, unknown types) into errors.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    schema = (tmp_path / "schema.yml").read_text()
    assert "/api/v1/submissions/{submission_id}/correction:" in schema
