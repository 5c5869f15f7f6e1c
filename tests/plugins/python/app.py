"""A text-stage plugin in Python (componentize-py): proves that components
built for WASI by a non-Rust toolchain load and run in voxpipe, that what
they print reaches the host's logs, and that WASI grants them nothing.

Config: {"suffix": str} appended to the title-cased text, or
{"probe": true} to report what the sandbox allows instead. Misbehaving on
purpose: {"sleep_s": n} sleeps (a WASI poll the host must cut at the
deadline), {"exit": n} calls os._exit (wasi:cli/exit); {"check_sleep_s": n}
sleeps in check-config.
"""
import json
import os
import time

import wit_world
from wit_world.imports import log, types
from componentize_py_types import Err


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="py-title",
            version="0.1.0",
            kind=types.StageKind.TEXT,
            description="Title-cases text (a Python plugin)",
            passes=types.Passes.ONE,
            applies=[],
        )

    def check_config(self, config: str) -> None:
        cfg = json.loads(config)
        if cfg.get("check_sleep_s"):
            time.sleep(cfg["check_sleep_s"])
        if not isinstance(cfg.get("suffix", ""), str):
            raise Err(types.StageError_InvalidConfig("`suffix` must be a string"))

    def normalize(self, ctx: types.RequestContext, config: str, text: str) -> str:
        cfg = json.loads(config)
        if cfg.get("probe"):
            return probe()
        if cfg.get("sleep_s"):
            time.sleep(cfg["sleep_s"])
        if "exit" in cfg:
            os._exit(cfg["exit"])
        print(f"py-title: request {ctx.request_id}, {len(text)} chars")
        log.log(log.Level.INFO, "py-title says hello through the log import")
        return text.title() + cfg.get("suffix", "")


def probe() -> str:
    found = {"env": len(os.environ)}
    for name, path in [("root", "/"), ("etc", "/etc/passwd"), ("cwd", ".")]:
        try:
            found[name] = len(os.listdir(path)) if os.path.isdir(path) else len(open(path).read())
        except OSError:
            found[name] = "denied"
    try:
        import socket

        socket.create_connection(("127.0.0.1", 80), timeout=1)
        found["net"] = "open"
    except Exception:
        found["net"] = "denied"
    return json.dumps(found, sort_keys=True)
