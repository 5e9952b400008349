"""The SIP line: calls from a trunk or a PBX, answered in process through pjsua2.

`listener.SipListener` is what the appliance serves; `endpoint.SipEndpoint` owns pjsua2 on one
thread; `line.SipLine` is the CallLine of one call. Importing this package (its configuration
and status values) does not load pjsua2; the modules that use it do, and only they.
"""

from appliance.telephony.sip.config import Registration, SipConfig
from appliance.telephony.sip.status import RegistrationStatus, SipStatus

__all__ = ["Registration", "RegistrationStatus", "SipConfig", "SipStatus"]
