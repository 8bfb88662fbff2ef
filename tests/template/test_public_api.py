from __future__ import annotations

import tokbill.template


def test_all_is_sorted_and_names_every_public_member() -> None:
    public = {
        name
        for name, value in vars(tokbill.template).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("tokbill.template")
    }

    assert tokbill.template.__all__ == sorted(tokbill.template.__all__)
    assert set(tokbill.template.__all__) == public
