#!/usr/bin/env python3
"""Push two apps' metrics to exporter-proxy's Unix socket receiver as Cap'n Proto.

Builds one `InboundMetrics` message per app (default apps `foo_bar_app0` and
`foo_bar_app1`), writes both over ONE connection in standard unpacked
stream framing, half-closes the connection and waits for the proxy's one-line
JSON reply, e.g. `{"ok":true,...}` or `{"ok":false,"error":"..."}`.

The reply is printed to stdout. The exit status is 0 only when a reply
arrived and its `ok` is true; 1 otherwise (2 for bad command-line usage).

Target: `--socket PATH`, else $EXPORTER_PROXY_SOCKET, else
/tmp/exporter-proxy-receiver.sock.
"""

import argparse
import json
import os
import pathlib
import re
import socket
import sys

import capnp

DEFAULT_SOCKET = "/tmp/exporter-proxy-receiver.sock"
SOCKET_ENV = "EXPORTER_PROXY_SOCKET"
DEFAULT_APP_PREFIX = "foo_bar_app"
# The proxy answers after it has processed the whole stream; a few seconds is
# plenty on a local machine, and a bound keeps a silent server from hanging us.
DEFAULT_TIMEOUT_SECONDS = 10.0
# The reply is one short JSON line; refuse to buffer an endless stream.
MAX_REPLY_BYTES = 64 * 1024

SCHEMA_PATH = pathlib.Path(__file__).resolve().parent.parent / "schema" / "metric_data.capnp"


def load_schema():
    return capnp.load(str(SCHEMA_PATH))


def metric_prefix(app_name):
    """Turns an app name into a valid metric-name prefix."""
    prefix = re.sub(r"[^a-zA-Z0-9_]", "_", app_name)
    if not prefix or prefix[0].isdigit():
        prefix = "_" + prefix
    return prefix


def escape_label_value(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def exposition_for(app_name, index):
    """Valid text format 0.0.4 for one app, ending with a newline.

    Every app reports the shared `demo_build_info` family (same HELP and TYPE,
    its own `app` label value) so the proxy has to merge one family across
    apps; the other families are named after the app and so never collide.
    """
    m = metric_prefix(app_name)
    app = escape_label_value(app_name)
    app_help = escape_help(app_name)
    lines = [
        "# HELP demo_build_info Build information of the application that pushed these metrics.",
        "# TYPE demo_build_info gauge",
        f'demo_build_info{{app="{app}",version="1.{index}.0"}} 1',
        f"# HELP {m}_http_requests_total HTTP requests handled by {app_help}, by method and status code.",
        f"# TYPE {m}_http_requests_total counter",
        f'{m}_http_requests_total{{method="post",code="200"}} {1027 + index}',
        f'{m}_http_requests_total{{method="post",code="400"}} {3 + index}',
        f"# HELP {m}_in_flight_requests HTTP requests currently being served by {app_help}.",
        f"# TYPE {m}_in_flight_requests gauge",
        f"{m}_in_flight_requests {4 + index}",
    ]
    return "\n".join(lines) + "\n"


def build_messages(schema, app_prefix):
    messages = []
    for index in range(2):
        app_name = f"{app_prefix}{index}"
        msg = schema.InboundMetrics.new_message()
        msg.appName = app_name
        msg.data = exposition_for(app_name, index)
        messages.append(msg)
    return messages


def read_reply(sock):
    chunks = []
    size = 0
    while size <= MAX_REPLY_BYTES:
        chunk = sock.recv(4096)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def check_reply(raw):
    """Prints the reply and returns the exit status it deserves."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        print("error: the proxy closed the connection without a reply", file=sys.stderr)
        return 1
    print(text)
    try:
        reply = json.loads(text)
    except ValueError as err:
        print(f"error: reply is not JSON: {err}", file=sys.stderr)
        return 1
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        print("error: the proxy did not accept the metrics", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--socket",
        default=os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET,
        help=f"path of the proxy's Unix socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--app-prefix",
        default=DEFAULT_APP_PREFIX,
        help=f"app names are PREFIX0 and PREFIX1 (default: {DEFAULT_APP_PREFIX})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for connecting and for the reply (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    args = parser.parse_args(argv)

    messages = build_messages(load_schema(), args.app_prefix)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(args.timeout)
            sock.connect(args.socket)
            # msg.write() hands the raw fd to Cap'n Proto, which expects a
            # blocking fd: a socket with a timeout is non-blocking underneath.
            sock.settimeout(None)
            for msg in messages:
                msg.write(sock)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(args.timeout)
            raw = read_reply(sock)
    except (OSError, capnp.KjException) as err:
        print(f"error: {args.socket}: {err}", file=sys.stderr)
        return 1
    apps = ", ".join(msg.appName for msg in messages)
    print(f"sent {len(messages)} messages ({apps}) to {args.socket}", file=sys.stderr)
    return check_reply(raw)


if __name__ == "__main__":
    sys.exit(main())
