"""`swarmctl image load` of the nginx image to 3 nodes vs a parallel `ssh host docker load`
loop, in the same run on the same lab: prints both and their ratio.

Before each load the image is removed from every node, so each run moves every layer.
Usage: python bench/imageload.py [--lab NAME] [--rounds N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import Lab

IMAGE = "bench/nginx:load"
TIMEOUT = 600


def ssh(lab: Lab, host: str, command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(lab.ssh_argv(host, [command]), check=True, timeout=TIMEOUT, **kwargs)


def forget(lab: Lab, hosts: list[str]) -> None:
    for host in hosts:
        ssh(lab, host, f"docker rmi -f {IMAGE} nginx >/dev/null 2>&1; true")


def swarmctl(env: dict, archive: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "swarmctl", "image", "load", "-i", str(archive)],
        env=env,
        check=True,
        timeout=TIMEOUT,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def ssh_loop(lab: Lab, hosts: list[str], archive: Path) -> float:
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            lab.ssh_argv(h, ["docker load -q"]), stdin=archive.open("rb"), stdout=subprocess.DEVNULL
        )
        for h in hosts
    ]
    if any(p.wait(timeout=TIMEOUT) != 0 for p in procs):
        raise SystemExit("ssh docker load failed")
    return time.perf_counter() - started


def milliseconds(values: list[float]) -> list[int]:
    return [round(v * 1000) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lab", default=os.environ.get("SWARMCTL_LAB", "bench"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lab = Lab(LabLayout(args.lab), say=lambda _: None)
    lab.down()
    hosts = [h.name for h in lab.up(3)]
    try:
        with tempfile.TemporaryDirectory() as folder:
            archive = Path(folder) / "nginx.tar"
            ssh(lab, hosts[0], f"docker pull -q nginx >/dev/null && docker tag nginx {IMAGE}")
            with archive.open("wb") as out:
                ssh(lab, hosts[0], f"docker save {IMAGE}", stdout=out)
            env = {
                **os.environ,
                "SWARMCTL_INVENTORY": str(lab.layout.inventory),
                "SWARMCTL_STATE": str(Path(folder) / "state.json"),
            }
            for step in (["init", hosts[0]], ["join", "--all"]):
                subprocess.run([sys.executable, "-m", "swarmctl", *step], env=env, check=True)
            size = archive.stat().st_size / 2**20
            ours, peer = [], []
            for _ in range(args.rounds):
                forget(lab, hosts)
                ours.append(swarmctl(env, archive))
                forget(lab, hosts)
                peer.append(ssh_loop(lab, hosts, archive))
            a, b = statistics.median(ours), statistics.median(peer)
            print(f"nginx archive {size:.1f} MiB to {len(hosts)} nodes, median of {args.rounds}:")
            print(f"  swarmctl image load        {a * 1000:6.0f} ms  {milliseconds(ours)}")
            print(f"  parallel ssh docker load   {b * 1000:6.0f} ms  {milliseconds(peer)}")
            print(f"  ratio swarmctl / ssh loop  {a / b:.2f}x")
    finally:
        lab.down()


if __name__ == "__main__":
    main()
