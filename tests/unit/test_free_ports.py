"""The stack's free ports lie outside the kernel's range for outgoing
connections, whose local ends could take one before its service binds it."""

from __future__ import annotations

import socket

from services.embedded.stack import _ephemeral_ports_start, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < _ephemeral_ports_start() for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))
