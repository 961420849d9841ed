"""A user's privacy settings: whether we may store their conversations, and analytics about them.

Persistence keeps them (``privacy_settings``) and mirrors each change into a key-value bucket
keyed by user token; every gateway follows that bucket (``pam_gateway.consent``).
"""

from __future__ import annotations

import msgspec
from nats.js.api import KeyValueConfig

from pam_shared.subjects import Subjects


class Privacy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a user lets us keep.  Off, ``store_conversations`` keeps their messages out of
    PostgreSQL (answers still stream and resume, recent turns still carry the conversation);
    off, ``analytics`` strips everything that identifies them from their analytics rows."""

    store_conversations: bool = True
    analytics: bool = True


class PrivacyChange(msgspec.Struct, forbid_unknown_fields=True):
    """A change of settings: a field left out keeps its value (``PUT /api/v1/users/me/privacy``)."""

    store_conversations: bool | None = None
    analytics: bool | None = None


class PrivacyRequest(msgspec.Struct):
    """Gateway -> persistence: read a user's settings, or change them (``change``)."""

    user_id: str
    change: PrivacyChange | None = None


privacy_encoder = msgspec.json.Encoder()
privacy_decoder = msgspec.json.Decoder(Privacy)
privacy_request_decoder = msgspec.json.Decoder(PrivacyRequest)
privacy_change_decoder = msgspec.json.Decoder(PrivacyChange)


def bucket_config(names: Subjects, replicas: int) -> KeyValueConfig:
    """The mirror bucket: one entry per user who ever chose, kept until they are erased."""
    return KeyValueConfig(bucket=names.privacy_bucket, history=1, replicas=replicas)
