"""The durations profile that orders the xdist hand-out (tests/durations.py): it names only test
modules that exist, and a session names the modules it has gone stale for. No server is used."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests import durations


def test_given_the_committed_profile_then_every_module_in_it_exists():
    known = durations.profile()
    assert known and all((durations.ROOT / module).is_file() for module in known)


def test_given_a_module_far_slower_than_its_profile_or_missing_then_it_is_named(monkeypatch):
    monkeypatch.setattr(durations, "profile", lambda: {"tests/a.py": 100, "tests/b.py": 100})
    plugin = durations.Durations(pytest.Config.__new__(pytest.Config))
    for module, seconds in (("tests/a.py", 229.0), ("tests/b.py", 231.0), ("tests/new.py", 31.0)):
        plugin.pytest_runtest_logreport(SimpleNamespace(nodeid=f"{module}::t", duration=seconds))  # type: ignore[arg-type]
    assert plugin.stale() == [
        "tests/b.py: 231 s (profile: 100 s)",
        "tests/new.py: 31 s (profile: 0 s)",
    ]
