"""The lab's images, built from Debian packages (no Docker Hub here) and pushed to the
lab registry, from which every host pulls them as it would in production.

- `nginx` (docker.io/library/nginx via the registry mirror): Debian's nginx, answering
  every request with the container's hostname, so a client sees which replica answered;
  busybox gives it a shell, wget and nc for health checks and debugging.
- `busybox` (docker.io/library/busybox): busybox alone, as on Docker Hub, for services
  that tests run (swarmctl's own helpers need no image from here: pause.py).
- `swarmctl/tools`: busybox (sh, ping, wget, nc, nslookup) and iperf3, for tests, under
  tini: a task's command is not PID 1, so `docker stop` ends a `sleep` at once instead of
  waiting out the stop grace period (PID 1 ignores signals it has no handler for).

A rootfs is the packages unpacked with `dpkg-deb -x` plus the shared libraries their
programs load (found with ldd), turned into an image by `docker import`.
"""

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from swarmctl.errors import SwarmctlError
from swarmctl.lab.layout import LabHost, LabLayout
from swarmctl.proc import last_line, run

DEB_CACHE = Path("/var/cache/swarmctl/debs")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

NGINX_CONF = """\
user nobody nogroup;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    server {
        listen 80 default_server;
        location / {
            default_type text/plain;
            return 200 "$hostname\\n";
        }
    }
}
"""


@dataclass(frozen=True)
class ImageRecipe:
    repository: str  # as pushed to the registry
    packages: tuple[str, ...]
    programs: tuple[str, ...]  # ELF files in the rootfs whose libraries must come along
    changes: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()


RECIPES = (
    ImageRecipe(
        repository="library/nginx",
        packages=("busybox-static", "nginx"),
        programs=("usr/sbin/nginx",),
        changes=('CMD ["nginx", "-g", "daemon off;"]', "EXPOSE 80", f"ENV PATH={PATH}"),
        files={"etc/nginx/nginx.conf": NGINX_CONF},
        dirs=(
            "var/log/nginx",
            "var/lib/nginx/body",
            "var/lib/nginx/proxy",
            "var/lib/nginx/fastcgi",
            "var/lib/nginx/uwsgi",
            "var/lib/nginx/scgi",
        ),
    ),
    ImageRecipe(  # as Docker Hub's: swarmctl's helper containers run it
        repository="library/busybox",
        packages=("busybox-static",),
        programs=(),
        changes=('CMD ["sh"]', f"ENV PATH={PATH}"),
    ),
    ImageRecipe(  # tini as PID 1, as many images have: `sleep` then ends on SIGTERM
        repository="swarmctl/tools",
        packages=("busybox-static", "iperf3", "libiperf0", "libsctp1", "tini"),
        programs=("usr/bin/iperf3",),
        changes=(
            'ENTRYPOINT ["/usr/bin/tini-static", "--"]',
            'CMD ["sh"]',
            f"ENV PATH={PATH}",
        ),
    ),
)

BASE_FILES = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    ),
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}


def image_ref(layout: LabLayout, recipe: ImageRecipe) -> str:
    return f"{layout.registry}/{recipe.repository}:latest"


def ensure(layout: LabLayout, builder: LabHost, say: Callable[[str], None]) -> None:
    """Build and push every image the registry does not have yet."""
    from swarmctl.lab.manager import http_status

    missing = [
        r
        for r in RECIPES
        if http_status(
            layout.ctl_netns, layout.registry_address, 5000, f"/v2/{r.repository}/manifests/latest"
        )
        != 200
    ]
    if not missing:
        return
    try:
        import docker
    except ImportError:
        raise SwarmctlError(
            "lab images: the docker SDK is missing; install swarmctl with its lab extra: "
            "pip install 'swarmctl[lab]'"
        ) from None
    fetch_debs(sorted({p for r in missing for p in r.packages}))

    client = docker.DockerClient(base_url=f"unix://{builder.docker_socket}", timeout=120)
    with contextlib.closing(client), tempfile.TemporaryDirectory(dir=layout.dir) as tmp:
        for recipe in missing:
            tar = Path(tmp) / (recipe.repository.replace("/", "_") + ".tar")
            build_rootfs(recipe, Path(tmp) / "rootfs", tar)
            ref = image_ref(layout, recipe)
            repo, tag = ref.rsplit(":", 1)
            client.api.import_image_from_file(
                str(tar), repository=repo, tag=tag, changes=list(recipe.changes)
            )
            for line in client.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise SwarmctlError(f"lab registry: push of {ref} failed: {line['error']}")
            # Only the registry keeps it: every host pulls, the builder included.
            client.images.remove(ref)
            say(f"image {recipe.repository}: built from Debian packages, pushed to {ref}")


def offline_ref(recipe: ImageRecipe) -> str:
    """The name an offline host knows the image by: what users and tests name it online,
    where the hosts' mirror serves it as a docker.io name (`nginx`, `swarmctl/tools`)."""
    return recipe.repository.removeprefix("library/") + ":latest"


def load_into_hosts(layout: LabLayout, hosts: list[LabHost], say: Callable[[str], None]) -> None:
    """Offline lab: build nginx and the tools image once and copy them to every host that
    lacks them with `docker save | docker load` through the hosts' dockerd sockets."""
    import docker

    wanted = [r for r in RECIPES if r.repository != "library/busybox"]  # nobody named it
    clients = {
        h.name: docker.DockerClient(base_url=f"unix://{h.docker_socket}", timeout=300)
        for h in hosts
    }
    try:
        for recipe in wanted:
            ref = offline_ref(recipe)
            have = [n for n, c in clients.items() if _has_image(c, ref)]
            lacking = [n for n in clients if n not in have]
            if not lacking:
                continue
            if not have:
                source = lacking.pop(0)
                fetch_debs(list(recipe.packages))
                with tempfile.TemporaryDirectory(dir=layout.dir) as tmp:
                    tar = Path(tmp) / "image.tar"
                    build_rootfs(recipe, Path(tmp) / "rootfs", tar)
                    repo, tag = ref.rsplit(":", 1)
                    clients[source].api.import_image_from_file(
                        str(tar), repository=repo, tag=tag, changes=list(recipe.changes)
                    )
                have = [source]
            archive = b"".join(clients[have[0]].api.get_image(ref))
            for name in lacking:
                clients[name].api.load_image(archive)
            say(f"image {ref}: loaded into {', '.join(lacking)} (docker save | docker load)")
    finally:
        for client in clients.values():
            client.close()


def _has_image(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def fetch_debs(packages: list[str]) -> None:
    """Download (not install) the .deb files of `packages` into the cache."""
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(DEB_CACHE.glob(f"{p}_*.deb"))]
    if not missing:
        return
    result = run(["apt-get", "download", *missing], check=False, timeout=300, cwd=DEB_CACHE)
    if result.returncode != 0:
        raise SwarmctlError(
            f"apt-get download {' '.join(missing)} failed ({last_line(result.stderr)}): "
            "run `apt-get update` (scripts/setup does) and try again"
        )


def build_rootfs(recipe: ImageRecipe, root: Path, tar_path: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    for package in recipe.packages:
        deb = sorted(DEB_CACHE.glob(f"{package}_*.deb"))[-1]
        run(["dpkg-deb", "-x", str(deb), str(root)])
    _busybox_applets(root)
    for program in recipe.programs:
        _copy_libraries(root, root / program)
    for directory in ("tmp", "run", "root", "proc", "sys", "dev", "etc", *recipe.dirs):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for relative, text in {**BASE_FILES, **recipe.files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    with tarfile.open(tar_path, "w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name, filter=_as_root)


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _busybox_applets(root: Path) -> None:
    busybox = root / "bin" / "busybox"
    applets = run([str(busybox), "--list-full"]).stdout.split()
    for applet in applets:
        link = root / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")


def _copy_libraries(root: Path, program: Path) -> None:
    """Copy the shared libraries `program` loads (and the loader) into the rootfs."""
    lib_dirs = [str(root / d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu")]
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(lib_dirs)}
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SwarmctlError(f"ldd {program}: {out.stderr.strip() or out.stdout.strip()}")
    for line in out.stdout.splitlines():
        parts = line.split()
        if "=>" in parts:
            source = parts[parts.index("=>") + 1]
        elif parts and parts[0].startswith("/"):
            source = parts[0]  # the loader itself
        else:
            continue  # linux-vdso
        if source.startswith(str(root)) or not source.startswith("/"):
            continue
        target = root / source.lstrip("/")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(source), target)
