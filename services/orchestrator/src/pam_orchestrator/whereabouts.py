"""Where and when the user is, read from the chat's context, for the prompt and the offline engine.

People on the road cross time zones: "today" and "tonight" mean the user's local day, which
the server's clock does not know. The moment is the gateway's ``received_at`` (a clock we
trust), shown in the time zone the device reported.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pam_shared.protocol import ChatContext

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def place(context: ChatContext) -> str:
    """``Brisbane, Queensland, Australia`` from what the client sent; "" when it sent nothing."""
    location = context.user_location
    names = [location.city, context.region or location.region, location.country] if location else [context.region]
    unique = [n for i, n in enumerate(names) if n and n not in names[:i]]
    return ", ".join(unique)


def coordinates(context: ChatContext) -> str:
    """``-27.4698, 153.0251``, or "" without a position."""
    point = context.user_location.coordinates if context.user_location else None
    return f"{point[0]:.4f}, {point[1]:.4f}" if point else ""


def local_time(context: ChatContext, at: float) -> datetime | None:
    """The moment ``at`` (epoch seconds) in the user's time zone; None when it is unknown."""
    zone = context.zone
    if not zone:
        return None
    try:
        return datetime.fromtimestamp(at, ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):  # a name no zone database knows, or not a name at all
        return None


def local_date(context: ChatContext, at: float) -> str:
    """The user's date as ``YYYY-MM-DD``: from their time zone, else the date their device sent."""
    moment = local_time(context, at)
    if moment is not None:
        return moment.date().isoformat()
    sent = _ISO_DATE.match(context.current_date or "")
    return sent.group(0) if sent else ""
