"""The gateway's privacy book: each user's settings, and who is being erased."""

from __future__ import annotations

from pam_gateway.consent import PrivacyBook
from pam_shared.privacy import Privacy
from pam_shared.subjects import Subjects

PRIVATE = Privacy(store_conversations=False, analytics=False)


def book() -> PrivacyBook:
    return PrivacyBook(None, Subjects("t"), Privacy())  # type: ignore[arg-type]  # no bucket needed here


def test_a_user_who_never_chose_has_the_default_and_a_change_applies_at_once():
    settings = book()
    assert settings.of("ana") == Privacy()
    settings.learn("ana", PRIVATE)
    assert settings.of("ana") == PRIVATE and settings.of("ben") == Privacy()


def test_an_erasure_drops_the_users_entry_and_refuses_them_until_it_is_done():
    settings = book()
    settings.learn("ana", PRIVATE)
    settings.erase("ana", done=False)
    assert settings.erasing("ana") and not settings.erasing("ben")
    assert settings.of("ana") == Privacy()
    settings.erase("ana", done=True)
    assert not settings.erasing("ana")
