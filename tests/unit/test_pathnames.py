"""One safe SharePoint path segment, and paths encoded segment by segment."""

from __future__ import annotations

import pytest

from syncd.pathnames import encoded, path_problem, segment_problem


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "x\x07y", "rtl\u202eexe.vtt",
                                  " lead", "trail ", "CON", "lpt1", "desktop.ini", ".lock",
                                  "~$draft.docx", "my_vti_file", "a:b", "x" * 256])
def test_unsafe_segments_are_refused_with_a_reason(name: str) -> None:
    assert segment_problem(name)


@pytest.mark.parametrize("name", ["Kestrel Foods", "#1 stocktake call.vtt", ".. - weekly.vtt",
                                  "50% + tax;v=1.vtt", "Zoë & Co"])
def test_ordinary_names_pass(name: str) -> None:
    assert segment_problem(name) is None


def test_a_path_names_its_first_bad_segment() -> None:
    assert "'..' is a relative path step" in (path_problem("Clients/../Meetings") or "")
    assert path_problem("/Clients/Kestrel Foods/Meetings/") is None


def test_each_segment_is_encoded_on_its_own_and_dot_segments_never_leave() -> None:
    assert encoded("Clients/A #2/50%") == "Clients/A%20%232/50%25"
    for path in ("Clients/../Meetings", "Clients/./x", "a//b"):
        with pytest.raises(ValueError, match="not one safe path segment"):
            encoded(path)
