"""Appointments: free times, booking, moving and cancelling, on a calendar (CalDAV or Google)."""

from appliance.bookings.calendar import Appointment, Calendar, CalendarUnavailable
from appliance.bookings.chosen import GoogleOrCalDav
from appliance.bookings.dav import CalDavCalendar
from appliance.bookings.google import GoogleCalendar
from appliance.bookings.oauth import DeviceCode, GoogleAuth, GoogleNotConnected
from appliance.bookings.tools import booking_tools

__all__ = [
    "Appointment",
    "CalDavCalendar",
    "Calendar",
    "CalendarUnavailable",
    "DeviceCode",
    "GoogleAuth",
    "GoogleCalendar",
    "GoogleNotConnected",
    "GoogleOrCalDav",
    "booking_tools",
]
