"""Bringing a lab up and down, and the faults users rehearse on it (kill, off, unplug …).

Topology (every piece is a network namespace named with the lab's prefix):

    <prefix>-net       a switch: bridge br0 holding the gateway address, ip_forward=0 and
                       no link to the root namespace, so a lab packet can go nowhere else
    <prefix>-ctl       where swarmctl's clients connect from (no default route)
    <prefix>-registry  Debian's docker-registry, the hosts' mirror for docker.io names
    <prefix>-<host>    one per host: its own sshd and dockerd in private pid, mount and
                       uts namespaces, started by host-init.sh under tini

This module owns processes, namespaces, links and files of the lab; it does not know
about clusters. Images are built by `images`.
"""

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock

from swarmctl import netns
from swarmctl.errors import SwarmctlError
from swarmctl.lab.layout import DEFAULT_LAB, LAB_ROOT, LabHost, LabLayout
from swarmctl.proc import last_line, run

HOST_INIT = Path(__file__).with_name("host-init.sh")
BOOT_TIMEOUT = 60.0
REQUIRED = {  # program -> Debian package
    "ip": "iproute2",
    "iptables": "iptables",
    "arptables": "iptables",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "dockerd": "docker.io",
    "containerd": "containerd",
    "docker-registry": "docker-registry",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "tini": "tini",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
}
CGROUP_ROOT = Path("/sys/fs/cgroup")

Say = Callable[[str], None]


@dataclass(frozen=True)
class HostStatus:
    host: LabHost
    running: bool
    plugged: bool
    ssh: bool
    docker: bool

    @property
    def state(self) -> str:
        if not self.running:
            return "off" if not self.plugged else "crashed"
        if not self.plugged:
            return "unplugged"
        return "ready" if self.ssh and self.docker else "booting"


def preflight() -> None:
    """Refuse early, in one line, on a machine that cannot run the lab."""
    if os.geteuid() != 0:
        raise SwarmctlError("swarmctl lab needs root (network namespaces, mounts): run it as root")
    for program, package in REQUIRED.items():
        if not shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise SwarmctlError(
                f"{program} is missing: install the Debian package {package} "
                f"(scripts/setup installs everything the lab needs)"
            )


class Lab:
    def __init__(self, layout: LabLayout, say: Say = print) -> None:
        self.layout = layout
        self.say = say

    @property
    def label(self) -> str:
        return "lab" if self.layout.name == DEFAULT_LAB else f"lab {self.layout.name}"

    # ----------------------------------------------------------------- records

    @property
    def _lock_path(self) -> Path:
        return LAB_ROOT / f".{self.layout.name}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        LAB_ROOT.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._lock_path)):
            yield

    def recorded_hosts(self) -> list[LabHost]:
        """The hosts of the running lab, from its description file."""
        path = self.layout.description
        if not path.exists():
            return []
        try:
            record = json.loads(path.read_text())
            return self.layout.hosts(len(record["hosts"]), record["managers"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SwarmctlError(
                f"{path}: unreadable lab record ({exc}); run `swarmctl lab down`"
            ) from None

    def host(self, name: str) -> LabHost:
        for host in self.recorded_hosts():
            if host.name == name:
                return host
        names = ", ".join(h.name for h in self.recorded_hosts()) or "none: the lab is down"
        raise SwarmctlError(f"lab host {name!r} does not exist (hosts: {names})")

    def namespaces(self) -> list[str]:
        """Every network namespace that carries this lab's prefix."""
        out = run(["ip", "netns", "list"]).stdout
        names = [line.split()[0] for line in out.splitlines() if line.strip()]
        return [n for n in names if n.startswith(self.layout.prefix + "-")]

    # ---------------------------------------------------------------------- up

    def recorded_offline(self) -> bool:
        """Whether the lab's record says it runs with no registry (`lab up --offline`)."""
        path = self.layout.description
        return path.exists() and bool(json.loads(path.read_text()).get("offline"))

    def up(self, count: int, managers: int = 1, offline: bool | None = None) -> list[LabHost]:
        """Bring the lab up; `offline` None keeps the mode the lab was brought up in."""
        preflight()
        hosts = self.layout.hosts(count, managers)
        with self.locked():
            existing = self.recorded_hosts()
            if not existing and self.namespaces():
                raise SwarmctlError(
                    f"found half-built lab namespaces ({', '.join(self.namespaces())}) with no "
                    f"record at {self.layout.description}: run `swarmctl lab down` first"
                )
            if existing and [h.name for h in existing] != [h.name for h in hosts][: len(existing)]:
                raise SwarmctlError(
                    f"the lab is up with {len(existing)} hosts "
                    f"({', '.join(h.name for h in existing)}); "
                    "run `swarmctl lab down` to rebuild it"
                )
            if len(existing) > len(hosts):
                hosts = existing
            if offline is None:
                offline = self.recorded_offline()
            started = time.monotonic()
            self._prepare_files(hosts, offline)
            self._write_record(hosts, managers, offline)
            self._switch()
            self._ctl()
            self._dns_sink()
            if not offline:
                self._registry()
            todo = [h for h in hosts if not self._running(h)]
            for host in hosts:
                self._cable(host)
            with ThreadPoolExecutor(max_workers=len(todo) or 1) as pool:
                list(pool.map(self._boot, todo))
            from swarmctl.lab import images

            if offline:
                images.load_into_hosts(self.layout, hosts, self.say)
            else:
                self._wait_registry()
                images.ensure(self.layout, hosts[0], self.say)
            self._write_inventory(hosts)
            self.say(f"{self.label}: {len(hosts)} hosts up in {time.monotonic() - started:.1f} s")
        return hosts

    def _prepare_files(self, hosts: list[LabHost], offline: bool) -> None:
        lay = self.layout
        lay.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(lay.dir, 0o755)
        if not lay.key.exists():
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"swarmctl-{lay.name}",
                    "-f",
                    str(lay.key),
                ]
            )
        public_key = lay.key.with_suffix(".pub").read_text()
        etc_hosts = "127.0.0.1\tlocalhost\n" + "".join(f"{h.address}\t{h.name}\n" for h in hosts)
        for host in hosts:
            d = host.dir
            for sub in ("ssh", "root", "etc-docker", "etc", "log", "docker"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            (d / "root").chmod(0o700)
            key = d / "ssh" / "ssh_host_ed25519_key"
            if not key.exists():
                run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(key)]
                )
            (d / "ssh" / "authorized_keys").write_text(public_key)
            (d / "ssh" / "sshd_config").write_text(_sshd_config(host))
            daemon = {"data-root": str(d / "docker"), "cgroup-parent": "/" + lay.cgroup_name(host)}
            if not offline:  # offline hosts know no registry at all
                daemon["insecure-registries"] = [lay.registry]
                daemon["registry-mirrors"] = [f"http://{lay.registry}"]
            (d / "etc-docker" / "daemon.json").write_text(json.dumps(daemon, indent=2) + "\n")
            # Rewritten in place: a running host has these files bind-mounted.
            (d / "etc" / "hosts").write_text(etc_hosts)
            (d / "etc" / "resolv.conf").write_text(f"nameserver {lay.gateway}\n")
        lay.known_hosts.write_text(
            "".join(
                f"{h.name},{h.address} "
                + " ".join((h.dir / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2])
                + "\n"
                for h in hosts
            )
        )

    def _write_record(self, hosts: list[LabHost], managers: int, offline: bool) -> None:
        lay = self.layout
        record = {
            "name": lay.name,
            "offline": offline,
            "prefix": lay.prefix,
            "subnet": str(lay.subnet),
            "managers": sum(1 for h in hosts if h.role == "manager") or managers,
            "ctl_netns": lay.ctl_netns,
            "registry": lay.registry,
            "ssh_key": str(lay.key),
            "known_hosts": str(lay.known_hosts),
            "inventory": str(lay.inventory),
            "hosts": [
                {
                    "name": h.name,
                    "role": h.role,
                    "address": h.address,
                    "netns": h.netns,
                    "docker_socket": str(h.docker_socket),
                    "dir": str(h.dir),
                }
                for h in hosts
            ],
        }
        lay.description.write_text(json.dumps(record, indent=2) + "\n")

    def _write_inventory(self, hosts: list[LabHost]) -> None:
        self.layout.inventory.write_text(render_inventory(self.layout, hosts))

    def _ns_add(self, name: str) -> bool:
        if netns.netns_exists(name):
            return False
        run(["ip", "netns", "add", name])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return True

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])

    def _switch(self) -> None:
        lay = self.layout
        ns = lay.switch_netns
        if not self._ns_add(ns):
            return
        run(
            [
                "ip",
                "-n",
                ns,
                "link",
                "add",
                "br0",
                "address",
                lay.gateway_mac,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
            ]
        )
        run(["ip", "-n", ns, "addr", "add", f"{lay.gateway}/{lay.subnet.prefixlen}", "dev", "br0"])
        run(["ip", "-n", ns, "link", "set", "br0", "up"])
        self._sysctl(ns, "net.ipv4.ip_forward", "0")
        # The hosts' resolver is the switch, which refuses every query at once (ICMP port
        # unreachable). Rate-limited, as the kernel does by default, every other lookup
        # waited out docker's 5 s DNS timeout instead: registry requests from the nodes
        # then cost 0 or 5 s by turns, online as well as offline.
        self._sysctl(ns, "net.ipv4.icmp_ratelimit", "0")

    def _plug_in(
        self, ns: str, veth: str, address: str, mac: str | None = None, default_route: bool = False
    ) -> None:
        """Cable namespace `ns` to the switch, as eth0 with `address`."""
        lay = self.layout
        switch = lay.switch_netns
        peer = ["peer", "name", "eth0"] + (["address", mac] if mac else []) + ["netns", ns]
        run(["ip", "-n", switch, "link", "add", veth, "type", "veth", *peer])
        run(["ip", "-n", switch, "link", "set", veth, "master", "br0", "up"])
        run(["ip", "-n", ns, "addr", "add", f"{address}/{lay.subnet.prefixlen}", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        if default_route:
            run(["ip", "-n", ns, "route", "add", "default", "via", lay.gateway])

    def _ctl(self) -> None:
        ns = self.layout.ctl_netns
        if self._ns_add(ns):
            self._plug_in(ns, f"{self.layout.prefix}-c", self.layout.ctl_address)
            self._sysctl(ns, "net.ipv4.ip_forward", "0")

    # ------------------------------------------------------- control: dead DNS

    @property
    def _control_dir(self) -> Path:
        return self.layout.dir / "control"

    def _dns_sink(self) -> None:
        lay = self.layout
        ctl = self._control_dir
        if _alive(self._read_pid(ctl / "dnssink.pid"), str(lay.dir)):
            return
        ctl.mkdir(parents=True, exist_ok=True)
        (ctl / "resolv.conf").write_text(f"nameserver {lay.dns_sink}\n")
        (ctl / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        run(["ip", "-n", lay.ctl_netns, "link", "set", "lo", "up"])
        with open(ctl / "dnssink.out", "ab") as out:
            proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    lay.ctl_netns,
                    sys.executable,
                    "-m",
                    "swarmctl.lab.dnssink",
                    lay.dns_sink,
                    str(ctl / "dns-queries.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        (ctl / "dnssink.pid").write_text(f"{proc.pid}\n")

    def control_argv(self, command: list[str]) -> list[str]:
        """argv that runs `command` in the control namespace as on an ops laptop whose DNS
        is dead: /etc/resolv.conf names the sink, /etc/hosts knows no lab host."""
        ctl = self._control_dir
        if not (ctl / "resolv.conf").exists():
            raise SwarmctlError(f"{self.label} is not up: `swarmctl lab up`")
        mounts = (
            f"mount --bind {shlex.quote(str(ctl / 'resolv.conf'))} /etc/resolv.conf && "
            f'mount --bind {shlex.quote(str(ctl / "hosts"))} /etc/hosts && exec "$@"'
        )
        return [
            "ip",
            "netns",
            "exec",
            self.layout.ctl_netns,
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            mounts,
            "sh",
            *_shell_form(command),
        ]

    def dns_queries(self) -> list[tuple[str, str]]:
        """The (name, type) of every lookup sent to the control namespace's resolver."""
        path = self._control_dir / "dns-queries.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [tuple(line.split(" ", 1)) for line in lines]  # type: ignore[misc]

    def _cable(self, host: LabHost) -> None:
        if self._ns_add(host.netns):
            self._plug_in(host.netns, host.veth, host.address, host.mac, default_route=True)

    # ---------------------------------------------------------------- registry

    def _registry(self) -> None:
        lay = self.layout
        ns = lay.registry_netns
        if self._ns_add(ns):
            self._plug_in(ns, f"{lay.prefix}-r", lay.registry_address)
        if _alive(self._read_pid(lay.dir / "registry.pid"), str(lay.dir)):
            return
        data = lay.dir / "registry"
        (data / "storage").mkdir(parents=True, exist_ok=True)
        config = data / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "version": 0.1,
                    "log": {"level": "warn"},
                    "storage": {
                        "filesystem": {"rootdirectory": str(data / "storage")},
                        "delete": {"enabled": True},
                    },
                    "http": {"addr": lay.registry},
                }
            )
        )
        with open(data / "registry.log", "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "docker-registry", "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        (lay.dir / "registry.pid").write_text(f"{proc.pid}\n")

    def _wait_registry(self) -> None:
        lay = self.layout
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if http_status(lay.ctl_netns, lay.registry_address, 5000, "/v2/") == 200:
                return
            time.sleep(0.05)
        log = last_line((lay.dir / "registry" / "registry.log").read_text(errors="replace"))
        raise SwarmctlError(f"lab registry at {lay.registry} did not start: {log or 'no log'}")

    # ------------------------------------------------------------------- hosts

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _init_pid(self, host_dir: Path) -> int | None:
        """The PID of the host's tini (its PID 1), if the host is running."""
        outer = self._read_pid(host_dir / "init.pid")
        if not _alive(outer, str(host_dir)):
            return None
        try:
            children = Path(f"/proc/{outer}/task/{outer}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _running(self, host: LabHost) -> bool:
        return self._init_pid(host.dir) is not None

    def _boot(self, host: LabHost) -> None:
        with open(host.dir / "log" / "boot.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/run/netns/{host.netns}",
                    "--",
                    "unshare",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "--mount-proc",
                    str(HOST_INIT),
                    "boot",
                    str(host.dir),
                    host.name,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        (host.dir / "init.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if docker_ping(host.docker_socket) and self._ssh_banner(host):
                return
            time.sleep(0.05)
        for name in ("boot.log", "dockerd.log", "sshd.log"):
            path = host.dir / "log" / name
            line = last_line(path.read_text(errors="replace")) if path.exists() else ""
            if line:
                raise SwarmctlError(f"lab host {host.name} did not boot ({name}: {line})")
        raise SwarmctlError(f"lab host {host.name} did not boot within {BOOT_TIMEOUT:g} s")

    def _ssh_banner(self, host: LabHost, timeout: float = 0.5) -> bool:
        try:
            with netns.connect(
                host.address, 22, netns=self.layout.ctl_netns, timeout=timeout
            ) as sock:
                return sock.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def _link_up(self, host: LabHost) -> bool:
        out = run(
            ["ip", "-n", self.layout.switch_netns, "-o", "link", "show", "dev", host.veth],
            check=False,
        ).stdout
        flags = out.split("<", 1)[-1].split(">", 1)[0].split(",") if "<" in out else []
        return "UP" in flags

    def _set_link(self, host: LabHost, up: bool) -> None:
        run(
            ["ip", "-n", self.layout.switch_netns, "link", "set", host.veth, "up" if up else "down"]
        )

    def status(self) -> list[HostStatus]:
        hosts = self.recorded_hosts()

        def probe(host: LabHost) -> HostStatus:
            running = self._running(host)
            plugged = self._link_up(host)
            return HostStatus(
                host,
                running,
                plugged,
                ssh=running and plugged and self._ssh_banner(host),
                docker=running and docker_ping(host.docker_socket),
            )

        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            return list(pool.map(probe, hosts))

    def kill(self, name: str) -> None:
        """Crash: every process of the host dies at once, containers included."""
        host = self.host(name)
        with self.locked():
            self._kill(host.dir)

    def _kill(self, host_dir: Path) -> None:
        outer = self._read_pid(host_dir / "init.pid")
        init = self._init_pid(host_dir)
        if init is not None:
            os.kill(init, signal.SIGKILL)
        if _alive(outer, str(host_dir)):
            os.kill(outer, signal.SIGKILL)
        if outer is not None:
            _wait_gone(outer)
        with contextlib.suppress(FileNotFoundError):
            (host_dir / "init.pid").unlink()

    def off(self, name: str) -> None:
        """Power off: a crash, and the cable is out, so connections time out."""
        host = self.host(name)
        with self.locked():
            self._set_link(host, up=False)
            self._kill(host.dir)

    def unplug(self, name: str) -> None:
        """A partition: the host keeps running but nobody can reach it."""
        host = self.host(name)
        with self.locked():
            self._set_link(host, up=False)

    def plug(self, name: str) -> None:
        host = self.host(name)
        with self.locked():
            self._set_link(host, up=True)

    def start(self, name: str) -> None:
        """Boot a stopped host again: its disks (Docker data, keys) as they were, its
        network devices new, as after a real reboot (only the cable is the same)."""
        host = self.host(name)
        with self.locked():
            if self._running(host):
                self._set_link(host, up=True)
                return
            # Deleting the cable first: a namespace's own links go away only later, in the
            # kernel's cleanup of the deleted namespace.
            run(["ip", "-n", self.layout.switch_netns, "link", "del", host.veth], check=False)
            run(["ip", "netns", "delete", host.netns], check=False)
            self._cable(host)
            self._boot(host)

    def docker_restart(self, name: str) -> None:
        """Stop the host's dockerd (SIGTERM, as systemctl would) and start it again."""
        host = self.host(name)
        init = self._init_pid(host.dir)
        if init is None:
            raise SwarmctlError(f"lab host {name} is not running: `swarmctl lab start {name}`")
        run(
            [
                "nsenter",
                "-t",
                str(init),
                "-a",
                "--",
                str(HOST_INIT),
                "restart-dockerd",
                str(host.dir),
            ]
        )
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not docker_ping(host.docker_socket):
            if time.monotonic() > deadline:
                raise SwarmctlError(f"lab host {name}: dockerd did not come back")
            time.sleep(0.05)

    def exec_argv(self, name: str, command: list[str]) -> list[str]:
        """argv that runs `command` inside the host (its namespaces, as root)."""
        init = self._init_pid(self.host(name).dir)
        if init is None:
            raise SwarmctlError(f"lab host {name} is not running: `swarmctl lab start {name}`")
        return ["nsenter", "-t", str(init), "-a", "--", *_shell_form(command)]

    def ssh_argv(self, name: str, command: list[str]) -> list[str]:
        """argv that runs `command` on the host over SSH, from the control namespace."""
        host = self.host(name)
        remote = command[0] if len(command) == 1 else shlex.join(command)
        return [
            "ip",
            "netns",
            "exec",
            self.layout.ctl_netns,
            "ssh",
            "-q",
            "-i",
            str(self.layout.key),
            "-o",
            f"UserKnownHostsFile={self.layout.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{host.address}",
            *([remote] if command else []),
        ]

    # -------------------------------------------------------------------- down

    def down(self) -> None:
        """Remove every process, namespace, link, mount, cgroup and file of the lab."""
        if os.geteuid() != 0:
            raise SwarmctlError(
                "swarmctl lab needs root (network namespaces, mounts): run it as root"
            )
        lay = self.layout
        with self.locked():
            hosts_dir = lay.dir / "hosts"
            for host_dir in sorted(hosts_dir.iterdir()) if hosts_dir.is_dir() else []:
                self._kill(host_dir)
            for pid_file in (lay.dir / "registry.pid", self._control_dir / "dnssink.pid"):
                pid = self._read_pid(pid_file)
                if _alive(pid, str(lay.dir)):
                    os.kill(pid, signal.SIGKILL)
                    _wait_gone(pid)
            for ns in self.namespaces():
                run(["ip", "netns", "delete", ns])
            self._remove_cgroups()
            _unmount_under(lay.dir)
            if lay.dir.exists():
                shutil.rmtree(lay.dir)
            _release_netns_dir()
            self._lock_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            LAB_ROOT.rmdir()  # only when no other lab is left
        self.say(f"{self.label}: down")

    def _remove_cgroups(self) -> None:
        if not CGROUP_ROOT.is_dir():
            return
        for controller in CGROUP_ROOT.iterdir():
            for group in controller.glob(self.layout.prefix + "-*"):
                for path in sorted(group.rglob("*"), key=lambda p: -len(p.parts)):
                    if path.is_dir():
                        with contextlib.suppress(OSError):
                            path.rmdir()
                with contextlib.suppress(OSError):
                    group.rmdir()


def _shell_form(command: list[str]) -> list[str]:
    """One argument is a shell command line; several are an argv; none opens a shell."""
    if not command:
        return ["/bin/sh"]
    if len(command) == 1:
        return ["/bin/sh", "-c", command[0]]
    return command


def _sshd_config(host: LabHost) -> str:
    d = host.dir
    return "\n".join(
        [
            f"ListenAddress {host.address}:22",
            f"HostKey {d}/ssh/ssh_host_ed25519_key",
            "PidFile /run/sshd.pid",
            f"AuthorizedKeysFile {d}/ssh/authorized_keys",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # swarmctl keeps one connection per host and runs commands on it in parallel.
            "MaxSessions 64",
            "MaxStartups 64:30:128",
            "UseDNS no",
            f"SetEnv LAB_HOST={host.name}",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "",
        ]
    )


def _alive(pid: int | None, marker: str) -> bool:
    """Whether pid runs and is ours: its command line mentions `marker`."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return marker in cmdline


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                return
        time.sleep(0.01)


def _unmount_under(directory: Path) -> None:
    """Lazily unmount anything still mounted below `directory` in this namespace."""
    prefix = str(directory) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        run(["umount", "-l", mount], check=False)


def _release_netns_dir() -> None:
    """`ip netns add` mounts /run/netns on itself; undo that once it is empty again."""
    path = Path(netns.NETNS_DIR)
    if path.is_dir() and not any(path.iterdir()):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        if str(path) in mounts:
            run(["umount", str(path)], check=False)


def docker_ping(sock_path: Path, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(sock_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def http_get(ns: str, address: str, port: int, path: str, timeout: float = 1.0) -> str:
    """A raw HTTP/1.0 GET from namespace `ns`; the whole response, or "" on failure."""
    try:
        with netns.connect(address, port, netns=ns, timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def http_status(ns: str, address: str, port: int, path: str) -> int | None:
    status_line = http_get(ns, address, port, path).split("\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None


def fetch(layout: LabLayout, url: str, timeout: float = 5.0) -> str:
    """The body of an HTTP GET of `url`, sent from the lab's control namespace."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:  # not a number, or out of range
        port = 0
    if parts.scheme != "http" or not parts.hostname or not port:
        raise SwarmctlError(f"{url!r}: give an http://ADDRESS[:PORT]/ URL")

    class InLab(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = netns.connect(self.host, self.port, netns=layout.ctl_netns, timeout=timeout)

    connection = InLab(parts.hostname, port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", target)
        return connection.getresponse().read().decode(errors="replace")
    except OSError as exc:
        raise SwarmctlError(f"{url}: {exc.strerror or exc}") from None
    except http.client.HTTPException as exc:  # not HTTP there, or a URL it cannot send
        raise SwarmctlError(f"{url}: {type(exc).__name__} {exc}".strip()) from None
    finally:
        connection.close()


def render_inventory(layout: LabLayout, hosts: list[LabHost]) -> str:
    """The lab's inventory, in the Ansible layout swarmctl reads."""
    groups: dict[str, dict] = {"managers": {"hosts": {}}, "workers": {"hosts": {}}}
    for host in hosts:
        groups[f"{host.role}s"]["hosts"][host.name] = {"ansible_host": host.address}
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(layout.key),
                "known_hosts": str(layout.known_hosts),
                "netns": layout.ctl_netns,
                "iface": "eth0",
            },
            "children": {name: group for name, group in groups.items() if group["hosts"]},
        }
    }
    header = (
        f"# Written by `swarmctl lab up` for the lab {layout.name!r}.\n"
        f"# Clients connect from the network namespace {layout.ctl_netns}, so no lab\n"
        "# packet is ever sent from the root namespace.\n"
    )
    return header + yaml.safe_dump(inventory, sort_keys=False)
