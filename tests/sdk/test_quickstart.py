"""docs/quickstart.md's counter example, run as written against a live vault while the person approves."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time

import pytest

from tests.conftest import PROJECT_ROOT
from tests.sdk.conftest import Live

pytestmark = pytest.mark.sqlite_only


def python_blocks() -> list[str]:
    text = (PROJECT_ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def run_while_the_person_approves(live: Live, block: int) -> str:
    """Run the documented example `block` as written while person 0 approves what reaches their inbox; its output."""
    code = python_blocks()[block].replace("http://127.0.0.1:8000", live.url)

    def approve_when_asked() -> None:
        for _ in range(200):
            try:
                live.approve_inbox(0)
                return
            except ValueError:  # nothing in the inbox yet
                time.sleep(0.1)

    approver = threading.Thread(target=approve_when_asked)
    approver.start()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/quickstart.md", "exec"), {})  # noqa: S102 -- the documented example, as written
    approver.join(timeout=30)
    return printed.getvalue()


def test_the_quickstart_counter_example_gets_a_first_read(live: Live) -> None:
    shown = run_while_the_person_approves(live, 0)
    assert "resident-id-card" in shown and "110105198503121234" in shown, shown


def test_the_quickstart_redirect_example_gets_a_first_read(live: Live) -> None:
    import httpx2

    code = python_blocks()[1].replace("http://127.0.0.1:8000", live.url)
    printed = io.StringIO()

    def person_approves(prompt: str) -> str:
        """What the reader does: open the printed URL, log in, approve, copy the address the browser ended on."""
        url = printed.getvalue().split("open: ", 1)[1].split()[0]
        with httpx2.Client() as browser:
            consent = browser.get(url, follow_redirects=False).headers["location"]
        return live.approve(consent)

    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/quickstart.md", "exec"), {"input": person_approves})  # noqa: S102
    shown = printed.getvalue()
    assert "'name'" in shown and "110105198503121234" in shown, shown


def test_the_quickstart_questions_example_gets_answers_without_values(live: Live) -> None:
    lines = run_while_the_person_approves(live, 2).splitlines()
    assert len(lines) == 3 and all(" True active " in line for line in lines), lines
    assert "C1" in lines[0] and "18" in lines[2]


def test_the_quickstart_counter_request_and_mandate_example_runs(live: Live) -> None:
    shown = run_while_the_person_approves(live, 3)
    assert "'driving-licence'" in shown, shown  # the counter's grant
    assert "resident-id-card" in shown and "110105198503121234" in shown, shown  # read under the mandate
