#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for polkitd on a private bus: org.freedesktop.PolicyKit1 with CheckAuthorization, which
answers after DELAY_MS with ANSWER (yes|no|challenge) and appends one JSON line per query to LOG.

usage: fake-polkit.py ADDRESS ANSWER DELAY_MS LOG"""

import json
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

address, answer, delay_ms, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


class Authority(dbus.service.Object):
    @dbus.service.method("org.freedesktop.PolicyKit1.Authority", in_signature="(sa{sv})sa{ss}us",
                         out_signature="(bba{ss})", async_callbacks=("reply", "error"))
    def CheckAuthorization(self, subject, action, details, flags, cancel_id, reply, error):
        with open(log, "a") as f:
            f.write(json.dumps({"kind": str(subject[0]), "name": str(subject[1].get("name", "")),
                                "action": str(action), "flags": int(flags)}) + "\n")

        def answer_now():
            reply((answer == "yes", answer == "challenge", {}))
            return False
        GLib.timeout_add(delay_ms, answer_now)


dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(address)
name = dbus.service.BusName("org.freedesktop.PolicyKit1", bus)
Authority(bus, "/org/freedesktop/PolicyKit1/Authority")
print("ready", flush=True)
GLib.MainLoop().run()
