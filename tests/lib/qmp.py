#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Send QMP commands to a running QEMU and print the replies.

    tests/lib/qmp.py SOCKET JSON [JSON...]

Each JSON is one QMP command object, e.g. '{"execute":"system_wakeup"}'.
Negotiates capabilities, sends the commands in order, prints one line per
reply ("OK <json>" or "ERROR <json>"), asynchronous events as "EVENT <json>",
and exits 1 if any command failed or the socket could not be reached.
"""
import json
import socket
import sys
import time


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    path, cmds = argv[1], argv[2:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(50):
        try:
            sock.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    else:
        print(f"ERROR cannot connect to {path}")
        return 1
    stream = sock.makefile("rw", encoding="utf-8", newline="\n")

    def reply():
        while True:
            line = stream.readline()
            if not line:
                raise EOFError("QEMU closed the QMP socket")
            msg = json.loads(line)
            if "event" in msg:
                print("EVENT " + json.dumps(msg), flush=True)
                continue
            return msg

    status = 0
    try:
        stream.readline()  # greeting
        for cmd in ['{"execute":"qmp_capabilities"}'] + cmds:
            stream.write(json.dumps(json.loads(cmd)) + "\n")
            stream.flush()
            msg = reply()
            if cmd.find("qmp_capabilities") >= 0:
                continue
            tag = "ERROR" if "error" in msg else "OK"
            status |= tag == "ERROR"
            print(f"{tag} {cmd} -> {json.dumps(msg)}", flush=True)
    except (EOFError, OSError, ValueError) as err:
        print(f"ERROR {err}")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
