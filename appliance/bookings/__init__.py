"""Appointments: free times, booking, moving and cancelling, on a calendar (CalDAV)."""

from appliance.bookings.calendar import Appointment, Calendar, CalendarUnavailable
from appliance.bookings.dav import CalDavCalendar
from appliance.bookings.tools import booking_tools

__all__ = ["Appointment", "CalDavCalendar", "Calendar", "CalendarUnavailable", "booking_tools"]
