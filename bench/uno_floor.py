"""The floor of bench/parsers.py's `intake run` rows, run by the system python3 (python3-uno):
a LibreOffice that is already running converts the same file over UNO, with the same load
properties and export filter as intake's, and nothing of intake around it. Written apart from parsers/uno_convert.py so the floor does not
move when intake's helper does.

    /usr/bin/python3 bench/uno_floor.py PIPE_NAME

Connects to the LibreOffice listening on PIPE_NAME, prints {"ready": true}, then for each line
{"in": path, "out": path} on stdin converts the file to .docx and prints {"ms": milliseconds},
timed around load, store and close only.
"""
import json
import sys
import time

import uno
from com.sun.star.beans import PropertyValue


def _prop(name, value):
    prop = PropertyValue()
    prop.Name, prop.Value = name, value
    return prop


def main() -> None:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    ctx = resolver.resolve(f"uno:pipe,name={sys.argv[1]};urp;StarOffice.ComponentContext")
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        source, target = uno.systemPathToFileUrl(request["in"]), uno.systemPathToFileUrl(request["out"])
        started = time.perf_counter()
        doc = desktop.loadComponentFromURL(source, "_blank", 0, (_prop("Hidden", True), _prop("ReadOnly", True)))
        doc.storeToURL(target, (_prop("FilterName", "MS Word 2007 XML"),))
        doc.close(True)
        print(json.dumps({"ms": (time.perf_counter() - started) * 1000}), flush=True)


if __name__ == "__main__":
    main()
