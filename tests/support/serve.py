"""Serve an app factory with uvicorn on a socket bound here, and say which port it got:

    python -m tests.support.serve PORT_FILE PORT MODULE:FACTORY [ARG ...]

PORT 0 lets the kernel choose. The port file is written (atomically) once the socket listens."""

from __future__ import annotations

import importlib
import os
import socket
import sys
from pathlib import Path

import uvicorn


def main(port_file: str, port: str, factory: str, *args: str) -> None:
    module, name = factory.split(":")
    app = getattr(importlib.import_module(module), name)(*args)
    sock = socket.create_server(("127.0.0.1", int(port)))  # SO_REUSEADDR: a restart rebinds a killed server's port
    tmp = Path(f"{port_file}.tmp")
    tmp.write_text(str(sock.getsockname()[1]))
    os.replace(tmp, port_file)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main(*sys.argv[1:])
