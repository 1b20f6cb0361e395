"""The README and docs stay true: every setting and command is documented, every linked file exists."""

from __future__ import annotations

import re
from pathlib import Path

from openline.settings import CONFIG_FILE_VARIABLE, ENV_PREFIX, Settings

from .test_cli import commands

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(OPENLINE_\w+)` \|", README, re.MULTILINE))
    expected = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {CONFIG_FILE_VARIABLE}
    assert documented == expected


def test_documented_defaults_match_the_code() -> None:
    for name, field in Settings.model_fields.items():
        row = re.search(rf"^\| `{ENV_PREFIX}{name.upper()}` \| ([^|]+) \|", README, re.MULTILINE)
        assert row, name
        default = field.default
        if isinstance(default, bool):
            default = str(default).lower()
        if default is not None:
            assert f"`{default}`" in row.group(1), (name, row.group(1))


def test_every_command_is_documented() -> None:
    for command in commands():
        assert f"openline {' '.join(command)}" in DOCS, command


def test_linked_files_exist() -> None:
    for path in re.findall(r"`((?:docs|bench)/[\w./-]+\.md)`", DOCS):
        assert (ROOT / path).is_file(), path


def test_the_quick_start_has_exactly_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quick_start, re.DOTALL)
    assert [b.strip().count("\n") for b in blocks] == [0, 0]
    assert blocks[0].strip().endswith("openline serve")
    assert blocks[1].strip().endswith(".venv/bin/pytest")
