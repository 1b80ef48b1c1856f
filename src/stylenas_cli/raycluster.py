"""Joining Ray: the cluster address checked before Ray starts, the connection bounded in time.

``ray.init`` takes any string and then either raises its own ``ValueError`` or retries an
unreachable address for minutes, printing warnings. Here an address is ``auto``,
``HOST:PORT`` (a cluster's GCS) or ``ray://HOST:PORT`` (Ray Client), checked by
:func:`parse_address`; :func:`init_ray` first opens a plain TCP connection to it, then waits at
most ``timeout`` seconds for Ray, and every failure is one :class:`RayConnectError` line.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import threading
from dataclasses import dataclass

from .errors import StylenasError

CONNECT_TIMEOUT = 30.0  # seconds to reach a cluster before giving up
INSTALL = "pip install 'stylenas-cli[ray]'"


class RayConnectError(StylenasError):
    """Ray missing, a malformed address, or a cluster that cannot be reached in time."""


@dataclass(frozen=True)
class Address:
    """A parsed ``--address``: ``auto``, or a host and port, through Ray Client or not."""

    text: str
    host: str | None = None
    port: int | None = None
    client: bool = False  # ray://


def parse_address(text: str) -> Address:
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` (IPv6 hosts in brackets) -> an
    :class:`Address`; anything else raises :class:`RayConnectError` saying what is expected."""
    text = text.strip()
    if text == "auto":
        return Address(text)
    client = text.startswith("ray://")
    rest = text.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ok = sep and host and port.isdigit() and 0 < int(port) < 65536
    if not ok or "/" in host or "://" in rest:
        raise RayConnectError(
            f"Ray address {text!r}: expected auto, HOST:PORT (e.g. 10.0.0.5:6379) or "
            "ray://HOST:PORT (e.g. ray://head:10001)"
        )
    return Address(text, host, int(port), client)


def import_ray():
    """The ``ray`` module, or :class:`RayConnectError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayConnectError(f"the ray backend needs Ray: {INSTALL}") from None
    return ray


def init_ray(ray, address: str | None, timeout: float = CONNECT_TIMEOUT, **kwargs) -> None:
    """``ray.init`` for ``address`` (None: start a local Ray), checked first and bounded by
    ``timeout`` seconds; ``kwargs`` go to ``ray.init``. Raises :class:`RayConnectError`."""
    target = parse_address(address) if address is not None else None
    if target is not None and target.client and importlib.util.find_spec("grpc") is None:
        raise RayConnectError(
            f"Ray address {target.text}: ray:// needs Ray Client (grpcio): {INSTALL}"
        )
    if target is not None and target.host is not None:
        try:
            socket.create_connection((target.host, target.port), timeout=timeout).close()
        except OSError as err:
            reason = "timed out" if isinstance(err, TimeoutError) else err.strerror or str(err)
            raise RayConnectError(
                f"cannot reach a Ray cluster at {target.text} ({reason}); check --address and "
                "that the cluster is running"
            ) from None
    failure: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=address, logging_level=logging.ERROR, **kwargs)
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)

    # Ray starts its workers at niceness 15 (the driver stays responsive); here the workers
    # do all the work, so a local Ray gets normal priority (another job must not starve it).
    before = os.environ.get("RAY_worker_niceness")
    os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        if address is None:  # in this thread: a local Ray's processes die with their parent
            connect()
        else:  # joining a cluster starts no process; the wait is bounded
            thread = threading.Thread(target=connect, name="stylenas-ray-init", daemon=True)
            thread.start()
            thread.join(timeout)
            if thread.is_alive():
                raise RayConnectError(
                    f"no answer from a Ray cluster at {address} within {timeout:g} s; check "
                    "--address or raise --connect-timeout"
                )
    finally:
        if before is None:
            os.environ.pop("RAY_worker_niceness", None)
    if failure:
        first = (str(failure[0]).strip().splitlines() or [type(failure[0]).__name__])[0]
        raise RayConnectError(f"could not join Ray at {address or 'a local Ray'} ({first})")
