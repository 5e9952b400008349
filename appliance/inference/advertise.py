"""The inference server said on the LAN: `_tel3sis-infer._tcp` (mDNS/DNS-SD, zeroconf).

Beside the box's own advertisement (`web/advertise.py`: the status page and SIP line), on the
same host name `tel3sis-<id>.local`, with TXT records a browsing board reads before it connects:
`path` (the API's root, `/v1`), `box` (the id, so a box that both serves and browses can skip
itself), `version`, and `stt`, `llm`, `tts` (the models it answers with). The key is never in
them. Registration probes in the background (a second or two) and a failure is logged, not
fatal; on exit the service is withdrawn with a goodbye, so browsers forget it at once.

The type is `_tel3sis-infer._tcp`, not the `_tel3sis-inference._tcp` issue 16 names: RFC 6335
allows a service name of at most 15 bytes, and that one has 17. python-zeroconf refused to
register it ("Service name (tel3sis-inference) must be <= 15 bytes", checked here) unless told
`strict=False`, and Apple's mDNSResponder (`dns-sd -B` on an operator's Mac) refuses such names
outright. `interfaces` limits everything to those addresses (tests: `["127.0.0.1"]`, never a
real network); None means every interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from appliance.web.advertise import ZeroconfServices

__all__ = ["API_PATH", "SERVICE_TYPE", "InferenceAdvertisement"]

SERVICE_TYPE: Final = "_tel3sis-infer._tcp.local."
API_PATH: Final = "/v1"


class InferenceAdvertisement(ZeroconfServices):
    """The inference server's one service, on the box's own host name."""

    def __init__(
        self,
        *,
        box: str,
        version: str,
        port: int,
        models: Mapping[str, str],
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] = (),
    ) -> None:
        """`models`: the model name per engine (`stt`, `llm`, `tts`); `addresses` are what the
        name resolves to (default: the interfaces', or the LAN's)."""
        txt = {"path": API_PATH, "box": box, "version": version, **models}
        super().__init__(
            box=box,
            services=[(SERVICE_TYPE, port, txt)],
            interfaces=interfaces,
            addresses=addresses,
        )
