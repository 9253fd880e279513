"""The suspension file: survives restarts, fails safe when torn."""

from __future__ import annotations

from pathlib import Path

from reconciler.state.suspend import load_suspension, resume, suspend, suspension_path


def test_suspend_keeps_its_start_when_repeated_and_resume_clears_it(tmp_path: Path) -> None:
    first = suspend(tmp_path, "tuning\nby hand")
    again = suspend(tmp_path, "still tuning")
    loaded = load_suspension(tmp_path)
    assert loaded is not None and loaded.since == first.since and loaded.reason == "still tuning"
    assert first.reason == "tuning by hand"  # one line: it is printed in the push output
    assert resume(tmp_path) == again and load_suspension(tmp_path) is None
    assert resume(tmp_path) is None


def test_a_torn_suspension_file_still_suspends(tmp_path: Path) -> None:
    suspension_path(tmp_path).write_text('{"since": "2026-12')
    torn = load_suspension(tmp_path)
    assert torn is not None and "unreadable" in torn.reason and "resume clears it" in torn.reason
