"""The SIP line: calls from a trunk or a PBX, answered in process through pjsua2.

`SipListener` (listener.py) is what the appliance serves; `SipEndpoint` (endpoint.py) owns
pjsua2 on one thread; `SipLine` (line.py) is the CallLine of one call. Only modules in this
package import pjsua2.
"""

from appliance.telephony.sip.config import Registration, SipConfig
from appliance.telephony.sip.endpoint import EndpointEvents, SipEndpoint, SipError
from appliance.telephony.sip.line import SipLine
from appliance.telephony.sip.listener import SinkFactory, SipListener
from appliance.telephony.sip.status import RegistrationStatus, SipStatus

__all__ = [
    "EndpointEvents",
    "Registration",
    "RegistrationStatus",
    "SinkFactory",
    "SipConfig",
    "SipEndpoint",
    "SipError",
    "SipLine",
    "SipListener",
    "SipStatus",
]
