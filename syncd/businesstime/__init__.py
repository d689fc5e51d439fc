"""Business time: calendars of working hours and holidays (`calendars`), the offsets admins
write and their exact arithmetic (`durations`), and the same arithmetic fast enough for the
engine's hot loop (`spans`).

Imports only the standard library, `holidays` and `syncd.errors` (the exception tree, which
imports nothing): nothing from the rules, the daemon or the vendors, so anything may use it.
"""
