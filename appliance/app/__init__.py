"""The composition root: the only package that names concrete engines, lines and stores.

- `box.py`: `Appliance`, built from settings, started, serving, closed; `answer` is every call's
  path (`CallDesk.answer`, in `appliance/telephony/calls.py`).
- `engines.py`: the local engines behind the conversation's ports, with fallback chains.
- `records.py`: the database, recordings, caller memory and post-call jobs.
- `lines.py`: admission, the SIP trunk's configuration, Twilio's endpoints.
- `web.py`: the status page, its health sources, /metrics and the zeroconf advertisement.
"""

from appliance.app.box import Appliance

__all__ = ["Appliance"]
