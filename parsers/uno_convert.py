"""Run by the system python3 (the one python3-uno belongs to), never imported by intake: converts
files with a LibreOffice that is already running, reached over its UNO pipe.

    /usr/bin/python3 parsers/uno_convert.py PIPE_NAME CONNECT_SECONDS

Prints {"ready": true} once connected; then reads one request a line on stdin,
{"in": path, "out": path, "filter": LibreOffice's export filter, e.g. "MS Word 2007 XML"},
and answers each with one line, {"ok": true} or {"ok": false, "error": "..."}. The paths are
files intake wrote in the LibreOffice's private folder.
"""
import json
import sys
import time

import uno  # noqa: E402 — only the system python3 has it
from com.sun.star.beans import PropertyValue  # noqa: E402


def _prop(name, value):
    prop = PropertyValue()
    prop.Name, prop.Value = name, value
    return prop


def connect(pipe: str, seconds: float):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + seconds
    while True:
        try:
            ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        except Exception:  # noqa: BLE001 — not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def convert(desktop, source: str, target: str, filter_name: str) -> None:
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(source), "_blank", 0, (
        _prop("Hidden", True), _prop("ReadOnly", True)))
    if doc is None:
        raise RuntimeError("LibreOffice could not open the file")
    try:
        doc.storeToURL(uno.systemPathToFileUrl(target), (_prop("FilterName", filter_name),))
    finally:
        doc.close(True)


def main() -> None:
    desktop = connect(sys.argv[1], float(sys.argv[2]))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            convert(desktop, request["in"], request["out"], request["filter"])
            answer = {"ok": True}
        except Exception as exc:  # noqa: BLE001 — a bad file is the file's fault, the next one goes on
            answer = {"ok": False, "error": type(exc).__name__}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
