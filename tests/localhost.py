"""Helpers for tests that start TensorFlow cluster workers on localhost."""

import socket


def free_ports(count):
    """`count` TCP ports on 127.0.0.1 that nothing held a moment ago (fresh
    ports: a worker that finds its port taken waits for a peer that never
    comes)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
