#!/usr/bin/env python3
"""A real zeroconf browser (python-zeroconf, the library Home Assistant's
discovery is built on): browses `_wyoming._tcp.local.` for SECONDS and prints
one JSON object: every instance seen, with its port and addresses, and the
instances that were withdrawn (goodbye packets) while browsing.

Usage: browse.py SECONDS [WAIT_FOR_REMOVAL_OF_NAME]
"""
import json
import sys
import time

from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

TYPE = "_wyoming._tcp.local."
seconds = float(sys.argv[1])
watch = sys.argv[2] if len(sys.argv) > 2 else None
found, removed = {}, []


def on_change(zeroconf, service_type, name, state_change):
    if state_change is ServiceStateChange.Removed:
        removed.append(name)
        return
    info = zeroconf.get_service_info(service_type, name, timeout=3000)
    if info is not None:
        found[name] = {"port": info.port, "addresses": info.parsed_addresses(),
                       "server": info.server}


zc = Zeroconf()
browser = ServiceBrowser(zc, TYPE, handlers=[on_change])
deadline = time.time() + seconds
while time.time() < deadline:
    if watch and any(n.startswith(watch + ".") for n in removed):
        break
    if not watch and found:
        break
    time.sleep(0.1)
zc.close()
print(json.dumps({"found": found, "removed": removed}))
