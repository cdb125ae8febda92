"""One set of PEP 508 rules for the used set and for the in-process ``pip check``."""

from __future__ import annotations

from packaging.requirements import Requirement

from migrate.resolve import pep508


def test_markers_hold_for_the_apps_python_and_its_extras() -> None:
    py2 = Requirement('simplejson; python_version < "3"')
    fast = Requirement('cspeed>=1; extra == "fast"')
    assert pep508.applies(py2, "2.7") and not pep508.applies(py2, "3.11")
    assert not pep508.applies(fast, "3.11") and pep508.applies(fast, "3.11", ["fast"])
    assert pep508.applies(Requirement("plain"), "3.11")


def test_what_cannot_be_decided_is_decided_the_safe_way() -> None:
    undecidable = Requirement('thing; os_name ~= "1.0"')  # ~= on a name: cannot compare
    assert pep508.applies(undecidable, "3.11"), "kept: dropping it could change the app"
    assert pep508.admits(Requirement("legacy>=1.0"), "2011.1-legacy-r2"), "nothing proves it wrong"
    assert pep508.admits(Requirement("anything>=2"), None)
    assert not pep508.admits(Requirement("pinned>=2"), "1.5")
    assert pep508.admits(Requirement("pre>=2.0"), "2.1rc1"), "pre-releases count, as pip check"
    assert pep508.parse("not a requirement!!") is None
