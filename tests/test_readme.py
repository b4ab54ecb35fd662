"""The README shows a shipped study as it is, lists every shipped study, and points to the
study-file reference and `ablate schema`."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
STUDIES = sorted((ROOT / "studies").rglob("*.yaml"))


def _names_in_tables(text: str) -> set[str]:
    """The first cell of every markdown table row that is one `code` span."""
    return set(re.findall(r"^\| `([^`|]+)` \|", text, flags=re.MULTILINE))


def test_the_first_yaml_example_is_a_shipped_study_verbatim() -> None:
    block = re.search(r"^```yaml\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)
    assert block is not None
    shipped = {p.read_text(encoding="utf-8"): p for p in STUDIES}
    assert block.group(1) in shipped, (
        "the README's first yaml block differs from every file in studies/: show one as it is"
    )
    name = shipped[block.group(1)].relative_to(ROOT).as_posix()
    assert f"`{name}`" in README[: block.start()].rsplit("\n## ", 1)[-1]  # named above it


def test_every_shipped_study_has_a_row_in_a_studies_table() -> None:
    listed = _names_in_tables(README.split("\n## Shipped studies\n", 1)[1].split("\n## ", 1)[0])
    missing = [
        p.relative_to(ROOT).as_posix()
        for p in STUDIES
        if p.relative_to(ROOT).as_posix() not in listed
        and not (p.parent.name == "studies" and p.stem in listed)
    ]
    assert missing == []


def test_the_study_file_section_links_the_reference_and_the_schema() -> None:
    section = README.split("\n## A study file\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/study-file.md)" in section
    assert "`ablate schema" in section
    assert "(docs/study.schema.json)" in section
    for linked in ("docs/study-file.md", "docs/study.schema.json"):
        assert (ROOT / linked).is_file()
