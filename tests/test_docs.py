"""The README documents every setting once, in its configuration table: the name, the
``_config.yml`` key, the flag, the environment variable and the default, exactly as
feeds.config.OPTIONS declares them; and no setting that does not exist.

When a setting is added or changed, print the table to paste into README.md with
``python -c "from tests.test_docs import table; print(table())"``.
"""

from __future__ import annotations

import re

import pytest

from feeds.config import OPTIONS, Option

from .conftest import ROOT

README = ROOT / "README.md"
HEADER = ("Setting", "`_config.yml` key", "Flag", "Environment variable", "Default",
          "Meaning")
NONE = "—"


def default_text(value: object) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "":
        return '`""`'
    if isinstance(value, tuple):
        return "`" + ", ".join(map(str, value)) + "`"
    return f"`{value}`"


def expected_cells(option: Option) -> tuple[str, ...]:
    flag = NONE
    if option.flag:
        flag = f"`{option.flag}`"
        if isinstance(option.default, bool):
            flag += f", `--no-{option.flag[2:]}`"
    return (f"`{option.name}`",
            f"`{option.config_key}`" if option.config_key else NONE,
            flag,
            f"`{option.env}`" if option.env else NONE,
            default_text(option.default))


def table() -> str:
    """The configuration table, generated from OPTIONS."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for option in OPTIONS:
        lines.append("| " + " | ".join((*expected_cells(option), option.help)) + " |")
    return "\n".join(lines)


def configuration_rows() -> list[tuple[str, ...]]:
    """The rows of the table in the README's 'Configuration' section, as cells."""
    assert README.exists(), f"{README} is missing; its configuration table:\n{table()}"
    lines = README.read_text("utf-8").splitlines()
    start = next((i for i, line in enumerate(lines)
                  if re.match(r"#+ Configuration\b", line)), None)
    assert start is not None, f"README.md has no Configuration section; its table:\n{table()}"
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    body = []
    for line in lines[start + 1:]:
        heading = re.match(r"(#+) ", line)
        if heading and len(heading.group(1)) <= level:
            break
        body.append(line)
    rows = []
    for line in body:
        if not line.startswith("|"):
            continue
        cells = tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
        if set("".join(cells)) <= set("-: ") or cells[0] == "Setting":
            continue  # the header and the separator
        rows.append(cells)
    return rows


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_readme_documents_each_setting_once(option: Option) -> None:
    rows = [cells for cells in configuration_rows() if cells[0] == f"`{option.name}`"]
    expected = expected_cells(option)
    assert len(rows) == 1, (f"README.md's configuration table should have one row for "
                            f"{option.name}:\n| {' | '.join(expected)} | {option.help} |")
    row = rows[0]
    assert row[: len(expected)] == expected
    assert len(row) == len(HEADER) and row[-1], f"{option.name}: say what it means"


def test_readme_documents_no_setting_that_does_not_exist() -> None:
    names = {f"`{option.name}`" for option in OPTIONS}
    unknown = [cells[0] for cells in configuration_rows() if cells[0] not in names]
    assert unknown == []
