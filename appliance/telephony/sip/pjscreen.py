"""`PjScreen`: a pjsip module of our own that puts every received request to `Screen` first.

pjsua2 has no hook that sees a request before pjsip acts on it, so this registers a plain pjsip
module through ctypes (the wheel exports pjsip's C API). Its priority puts it after the
transaction layer (retransmissions are absorbed before it) and before the UA layer (which hands
in-dialog requests to their dialog) and pjsua's own modules (which answer OPTIONS and MESSAGE).
It reads the request from `pjsip_rx_data` at the offsets below, which are those of pjproject
2.15.1 on an LP64 system (x86_64, aarch64) with the default `PJSIP_MAX_PKT_LEN` of 4000 (the
wheel, and firmware-scripts/build-pjproject.sh, which leaves it alone); each request is checked
against them (the message buffer lies inside the packet buffer) and, when a build disagrees, the
screen logs once and lets requests through rather than misread them.

The module is registered and unregistered on the endpoint's owner thread, and pjsip calls it
there, inside `libHandleEvents`; the C structure and the callback live as long as this object.
"""

from __future__ import annotations

import ctypes
import logging

import pjsua2 as pj
from pjsua2 import _pjsua2

from appliance.telephony.sip.screen import DROP, Request, Screen

__all__ = ["PjScreen"]

_log = logging.getLogger(__name__)

_MAX_PKT_LEN = 4000
_PACKET = 320
_PACKET_LEN = 4328
_SRC_NAME = 4368
_MSG_BUF = 4424
_MSG_LEN = 4432
_MSG = 4440
_CID = 4456
_FROM = 4464
_TO = 4472
_TRANSPORT = 8
_TRANSPORT_TYPE = 80
"""In `pjsip_transport`: `key.type`."""
_METHOD_NAME = 16
"""In `pjsip_msg`: `line.req.method.name`."""
_CID_ID = 64
_TAG = 72
"""In `pjsip_fromto_hdr`."""
_PRIORITY = 31
"""PJSIP_MOD_PRIORITY_UA_PROXY_LAYER (32) less one: after the transaction layer (16)."""
_UDP = frozenset({pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_UDP6})


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("slen", ctypes.c_ssize_t)]


_OnRxRequest = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _PjsipModule(ctypes.Structure):
    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("name", _PjStr),
        ("id", ctypes.c_int),
        ("priority", ctypes.c_int),
        ("load", ctypes.c_void_p),
        ("start", ctypes.c_void_p),
        ("stop", ctypes.c_void_p),
        ("unload", ctypes.c_void_p),
        ("on_rx_request", _OnRxRequest),
        ("on_rx_response", ctypes.c_void_p),
        ("on_tx_request", ctypes.c_void_p),
        ("on_tx_response", ctypes.c_void_p),
        ("on_tsx_state", ctypes.c_void_p),
    ]


def _pjsip() -> ctypes.CDLL:
    lib = ctypes.CDLL(_pjsua2.__file__)  # already loaded: this finds the same instance
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_endpt_unregister_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_ua_find_dialog.restype = ctypes.c_void_p
    lib.pjsip_ua_find_dialog.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int]
    lib.pjsip_endpt_respond_stateless.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib


def _pointer(address: int) -> int:
    return ctypes.c_void_p.from_address(address).value or 0


def _text(address: int) -> str:
    name = _PjStr.from_address(address)
    if not name.ptr or name.slen <= 0:
        return ""
    return ctypes.string_at(name.ptr, min(name.slen, 64)).decode("latin-1")


class PjScreen:
    """Our module in pjsip's stack while registered (owner thread only)."""

    def __init__(self, screen: Screen) -> None:
        self._screen = screen
        self._lib = _pjsip()
        self._name = ctypes.create_string_buffer(b"mod-tel3sis-screen")
        self._callback = _OnRxRequest(self._on_rx_request)
        self._module = _PjsipModule(
            name=_PjStr(ctypes.cast(self._name, ctypes.c_void_p), len(self._name.value)),
            id=-1,
            priority=_PRIORITY,
            on_rx_request=self._callback,
        )
        self._endpoint = 0
        self._layout_ok = True
        self._no_tag = _PjStr(None, 0)

    def register(self) -> None:
        """Put the module in pjsip's stack (after `libInit`); raises RuntimeError if refused."""
        endpoint = self._lib.pjsua_get_pjsip_endpt()
        status = self._lib.pjsip_endpt_register_module(endpoint, ctypes.byref(self._module))
        if status != 0:
            raise RuntimeError(f"pjsip refused the request screen (status {status})")
        self._endpoint = endpoint

    def unregister(self) -> None:
        """Take the module out again (before `libDestroy`); nothing when it is not in."""
        endpoint, self._endpoint = self._endpoint, 0
        if endpoint:
            self._lib.pjsip_endpt_unregister_module(endpoint, ctypes.byref(self._module))

    def _on_rx_request(self, rdata: int) -> int:
        """pjsip's `on_rx_request`: 1 when we answered or dropped the request, 0 to pass it on.
        Nothing may raise out of here (it would cross into C)."""
        try:
            request = self._read(rdata) if self._layout_ok else None
            if request is None:
                return 0
            code = self._screen.refusal(request, lambda: self._dialog_known(rdata))
            if code is None:
                return 0
            _log.info("%s from %s refused (%s)", request.method, request.source, code or "dropped")
            if code != DROP:
                self._lib.pjsip_endpt_respond_stateless(self._endpoint, rdata, code, 0, 0, 0)
            self._screen.told(request.method, code)
            return 1
        except Exception:
            _log.exception("the SIP request screen failed; the request goes on to pjsip")
            return 0

    def _read(self, rdata: int) -> Request | None:
        packet_len = ctypes.c_ssize_t.from_address(rdata + _PACKET_LEN).value
        msg_buf = _pointer(rdata + _MSG_BUF)
        msg_len = ctypes.c_int.from_address(rdata + _MSG_LEN).value
        msg, cid, sender, to = (_pointer(rdata + at) for at in (_MSG, _CID, _FROM, _TO))
        packet = rdata + _PACKET
        if not (
            0 < packet_len <= _MAX_PKT_LEN
            and packet <= msg_buf < packet + packet_len
            and 0 < msg_len <= packet_len
            and msg
            and cid
            and sender
            and to
        ):
            self._layout_ok = False
            _log.error("pjsip_rx_data is not laid out as this pjproject's: the screen is off")
            return None
        transport = _pointer(rdata + _TRANSPORT)
        datagram = bool(transport) and (
            ctypes.c_long.from_address(transport + _TRANSPORT_TYPE).value in _UDP
        )
        start, size = (packet, packet_len) if datagram else (msg_buf, msg_len)
        return Request(
            method=_text(msg + _METHOD_NAME).upper(),
            source=ctypes.string_at(rdata + _SRC_NAME).decode("latin-1"),
            in_dialog=_PjStr.from_address(to + _TAG).slen > 0,
            datagram=datagram,
            raw=ctypes.string_at(start, size),
            read_limit=_MAX_PKT_LEN,
        )

    def _dialog_known(self, rdata: int) -> bool:
        """Whether a dialog has this request's Call-ID and tags, as pjsip's UA layer would find
        it (including its one allowance: a dialog whose remote tag is still empty)."""
        call_id = _pointer(rdata + _CID) + _CID_ID
        local = _pointer(rdata + _TO) + _TAG
        remote = _pointer(rdata + _FROM) + _TAG
        find = self._lib.pjsip_ua_find_dialog
        if find(call_id, local, remote, 0):
            return True
        return bool(find(call_id, local, ctypes.addressof(self._no_tag), 0))
