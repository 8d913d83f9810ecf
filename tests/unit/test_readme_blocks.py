"""How README.md's code blocks are read for `tests/integration/test_readme.py` (issue 20): every
block is run or says why not, and the rewriting for the test's ports is the same everywhere."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests import readme
from tests.container import ROOT


def test_every_block_of_the_readme_is_run_or_says_why_not() -> None:
    blocks = readme.read(ROOT / "README.md")  # raises, naming each line, if one is not
    kinds = {block.kind for block in blocks}
    assert {"run", "output", "background", "skip"} <= kinds
    assert all(block.note for block in blocks if block.kind in ("skip", "background"))


def test_the_readme_starts_its_server_with_make_run_before_any_block_talks_to_it() -> None:
    blocks = [b for b in readme.read(ROOT / "README.md") if b.kind != "skip"]
    assert blocks[0].kind == "background" and blocks[0].text.startswith("make run ")


def _problems(markdown: str) -> list[str]:
    return readme.parse(markdown)[1]


@pytest.mark.parametrize(
    ("markdown", "problem"),
    [
        ("text\n\n```json\n{}\n```\n", "3: a ```json block is not run"),
        ("```\nplain\n```\n", "1: a ```(no language) block is not run"),
        ("<!-- readme-test: skip -->\n```sh\nmake test\n```\n", "1: unknown marking"),
        ("<!-- readme-test: skip ( ) -->\n```sh\nmake test\n```\n", "1: unknown marking"),
        ("<!-- readme-test: run -->\n```sh\nls\n```\n", "1: unknown marking 'run'"),
        ("<!-- readme-test: output -->\n```sh\nls\n```\n", "1: `output` is for a ```console"),
        (
            "<!-- readme-test: background until http://h/ answers -->\n```tsx\nx\n```\n",
            "1: a background block is a shell block",
        ),
        ("<!-- readme-test: skip (why) -->\n\n```sh\nls\n```\n", "1: a marking not right"),
        ("```sh\nls\n```\n<!-- readme-test: skip (why) -->\n", "4: a marking not right"),
    ],
)
def test_a_block_not_accounted_for_is_a_problem_naming_its_line(
    markdown: str, problem: str
) -> None:
    problems = _problems(markdown)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_readme_with_problems_is_refused_naming_each(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(
        (ROOT / "README.md").read_text()
        + "\n```python\nprint()\n```\n<!-- readme-test: skip (no fence) -->\n"
    )
    lines = len(path.read_text().splitlines())
    with pytest.raises(ValueError) as refused:
        readme.read(path)
    assert str(refused.value).splitlines() == [
        f"README.md:{lines - 3}: a ```python block is not run: mark it skip (why)",
        f"README.md:{lines}: a marking not right above a fence",
    ]


def test_marked_blocks_carry_their_kind_and_note() -> None:
    markdown = (
        "<!-- readme-test: skip (needs Docker) -->\n```sh\ndocker compose up\n```\n"
        "<!-- readme-test: background until http://127.0.0.1:8001/ answers -->\n"
        "```bash\nserve --port 8001\n```\n"
        "  ```sh\n  echo indented\n  ```\n"
    )
    blocks, problems = readme.parse(markdown)
    assert problems == []
    assert [(b.line, b.kind, b.note, b.text) for b in blocks] == [
        (2, "skip", "needs Docker", "docker compose up\n"),
        (6, "background", "http://127.0.0.1:8001/", "serve --port 8001\n"),
        (9, "run", "", "echo indented\n"),
    ]


def test_a_console_block_runs_its_dollar_lines_and_expects_the_rest() -> None:
    markdown = (
        "<!-- readme-test: output -->\n```console\n"
        "$ curl -s http://127.0.0.1:8000/ \\\n       | python3 -m json.tool\n"
        '{\n    "id": 1\n}\n$ echo done\ndone\n```\n'
    )
    [block], problems = readme.parse(markdown)
    assert problems == [] and block.kind == "output"
    assert block.commands() == (
        "curl -s http://127.0.0.1:8000/ \\\n       | python3 -m json.tool\necho done"
    )
    assert block.expected() == '{\n    "id": 1\n}\ndone'


def test_example_ports_become_the_tests_own_and_stay_the_same_everywhere() -> None:
    given = itertools.count(40000)
    ports: dict[int, int] = {}

    def port(example: int) -> int:
        if example not in ports:
            ports[example] = next(given)
        return ports[example]

    text = (
        "make run\ncurl http://127.0.0.1:8000/a localhost:8000\n"
        "replay --port 8001 && check --url http://127.0.0.1:8001 http://127.0.0.1:8000\n"
        "psql postgresql://127.0.0.1:5432/test; make run PORT=8000\n"
    )
    assert readme.as_here(text, port) == (
        "make -o .venv/.installed run PORT=40000\n"
        "curl http://127.0.0.1:40000/a localhost:40000\n"
        "replay --port 40001 && check --url http://127.0.0.1:40001 http://127.0.0.1:40000\n"
        "psql postgresql://127.0.0.1:5432/test; make -o .venv/.installed run PORT=40000\n"
    )


def test_output_compares_equal_whatever_the_ids_timestamps_and_spacing() -> None:
    shown = '{"id": "thr_cc9afc925bb047338168363dd9d5fa6c", "at": "2026-12-07T15:11:11Z"}\n\n'
    printed = '{"id":  "thr_606bab45410d451583a4db08f5f10df6", "at": "2027-01-01T00:00:00.5Z"}'
    assert readme.comparable(shown) == readme.comparable(printed)
    assert readme.comparable(shown) != readme.comparable(printed.replace('"at"', '"on"'))
    # The same id twice is one placeholder; two different ids are two.
    twice = "thr_cc9afc925bb047338168363dd9d5fa6c thr_cc9afc925bb047338168363dd9d5fa6c"
    two = "thr_cc9afc925bb047338168363dd9d5fa6c thr_606bab45410d451583a4db08f5f10df6"
    assert readme.comparable(twice) != readme.comparable(two)
