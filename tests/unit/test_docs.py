"""The README stays a door, and the docs keep up with the code: every route, every setting, every link.

docs/api.md must name every path of the OpenAPI document, docs/operations.md every PARLEY_* setting of
deploy/env.example, and every relative link in README.md and docs/*.md must lead to a file or folder
that exists. None of these needs a database or a server.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 300

# `](target)` of a markdown link; the target ends at the first space (a title may follow) or `)`
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def openapi_paths() -> list[str]:
    with tempfile.TemporaryDirectory() as d:
        app = create_app(Settings(database_url=f"{d}/p.db", signing_key_file=f"{d}/k", run_webhooks=False, run_projections=False))
        with TestClient(app) as client:
            return sorted(client.get("/schema/openapi.json").json()["paths"])


def env_example_settings() -> list[str]:
    return sorted(set(re.findall(r"PARLEY_[A-Z0-9_]+", (ROOT / "deploy" / "env.example").read_text())))


def names(text: str, name: str) -> bool:
    """`name` written whole: not the start or the end of a longer path or variable."""
    return re.search(rf"(?<![\w/{{}}.-]){re.escape(name)}(?![\w/{{}}.-])", text) is not None


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def relative_links(path: Path) -> list[str]:
    text = path.read_text()
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # no links inside code blocks
    targets = (m.group(1) for m in LINK.finditer(text))
    return [t for t in targets if not t.startswith(("http://", "https://", "#", "mailto:"))]


def test_the_readme_is_at_most_300_lines_and_says_how_to_run_the_tests() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, f"README.md has {len(text.splitlines())} lines; move the detail into docs/"
    assert "make test" in text


def test_every_route_of_the_openapi_document_is_in_docs_api() -> None:
    paths = openapi_paths()
    assert len(paths) > 30, paths  # the document was built, not empty
    api = (DOCS / "api.md").read_text()
    missing = [p for p in paths if not names(api, p)]
    assert missing == [], "routes missing from docs/api.md (write the OpenAPI path template in its routes table)"


def test_every_setting_of_env_example_is_in_docs_operations() -> None:
    settings = env_example_settings()
    assert "PARLEY_DATABASE_URL" in settings, settings
    operations = (DOCS / "operations.md").read_text()
    missing = [s for s in settings if not names(operations, s)]
    assert missing == [], "settings missing from docs/operations.md (add them to its configuration table)"


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_that_exists(doc: Path) -> None:
    broken = [t for t in relative_links(doc) if not (doc.parent / t.split("#", 1)[0]).exists()]
    assert broken == [], f"links in {doc.relative_to(ROOT)} to nothing"


def test_the_readme_links_every_document() -> None:
    links = set(relative_links(README))
    wanted = {"docs/architecture.md", "docs/model.md", "docs/api.md", "docs/operations.md", "docs/performance.md",
              "docs/development.md", "docs/record/"}
    assert wanted - links == set()
