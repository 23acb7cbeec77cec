"""docs/how-pynn-works.md still tells the truth about the code: every quoted block equals the
lines of the file it names, every `file::name` reference names a function or class that exists
there, every file it names exists, and every picture it shows is in docs/pictures/."""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOUR = REPO / "docs" / "how-pynn-works.md"
TEXT = TOUR.read_text()

QUOTE = re.compile(r"`(pynn/[\w/]+\.py)`, lines (\d+)-(\d+):\n\n```python\n(.*?)```", re.S)
NAME = re.compile(r"`(pynn/[\w/]+\.py)::([\w.]+)`")
FILE = re.compile(r"`((?:pynn|tests|docs|notebooks|examples|benchmarks)/[\w/.-]+\.(?:py|ipynb))`")
PICTURE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def _names(path):
    """Every dotted name (Class, Class.method, function) defined in a file."""
    tree = ast.parse((REPO / path).read_text())
    found = set()

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                found.add(name)
                visit(child, name + ".")
    visit(tree, "")
    return found


def test_the_tour_has_references_of_each_kind():
    assert len(QUOTE.findall(TEXT)) >= 3 and len(NAME.findall(TEXT)) >= 20


@pytest.mark.parametrize("path, start, end, code", QUOTE.findall(TEXT),
                         ids=lambda v: v if isinstance(v, str) and v.startswith("pynn") else "")
def test_quoted_code_equals_the_lines_it_names(path, start, end, code):
    lines = (REPO / path).read_text().splitlines()
    actual = "\n".join(lines[int(start) - 1:int(end)]) + "\n"
    if actual != code:
        # say where the quoted code is now, if it moved
        text = "\n".join(lines)
        at = text.find(code.rstrip("\n"))
        hint = (f"it now starts at line {text[:at].count(chr(10)) + 1}" if at >= 0
                else "it is no longer in the file")
        pytest.fail(f"{path} lines {start}-{end} differ from the tour's quote; {hint}")


@pytest.mark.parametrize("path, name", sorted(set(NAME.findall(TEXT))))
def test_named_functions_and_classes_exist(path, name):
    assert (REPO / path).is_file(), f"{path} does not exist"
    assert name in _names(path), f"{path} defines no {name}"


@pytest.mark.parametrize("path", sorted(set(FILE.findall(TEXT))))
def test_named_files_exist(path):
    assert (REPO / path).exists(), path


@pytest.mark.parametrize("picture", PICTURE.findall(TEXT))
def test_pictures_exist(picture):
    assert (TOUR.parent / picture).is_file(), picture
