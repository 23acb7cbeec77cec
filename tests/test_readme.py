"""The README's examples run as they are written: every ```python block of the sections listed
here is executed, in a fresh namespace each, in a temporary working folder."""
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: sections whose code blocks are self-contained and quick
SECTIONS = ["### Building graphs", "### Freezing and fine-tuning", "### Saving"]


def _blocks():
    text = README.read_text()
    found = []
    for heading in SECTIONS:
        start = text.index(heading + "\n")
        nxt = re.search(r"\n#{2,3} ", text[start + len(heading):])
        body = text[start:start + len(heading) + nxt.start()] if nxt else text[start:]
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", body, re.S)):
            found.append(pytest.param(code, id=f"{heading.strip('# ')}-{i}"))
    return found


@pytest.mark.parametrize("code", _blocks())
def test_readme_block_runs(code, tmp_path, capsys):
    os.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out      # each block prints what it shows
