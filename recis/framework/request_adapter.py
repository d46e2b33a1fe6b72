"""RecIS's request adapter: an optional function that rewrites a serving request's payload.

>>> adapt_request_payload({"fg_record": {}}, lambda p: {**p, "table_schema": {}})
{'fg_record': {}, 'table_schema': {}}
>>> payload = {"fg_record": {}}
>>> adapt_request_payload(payload) is payload
True
"""

from __future__ import annotations

from collections.abc import Callable


def adapt_request_payload(payload, request_adapter: Callable | None = None):
    """``request_adapter(payload)``, or ``payload`` itself when there is no adapter."""
    return payload if request_adapter is None else request_adapter(payload)
