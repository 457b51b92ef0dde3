#!/bin/sh
# The init of one lab host. `swarmctl lab` starts it inside fresh pid, mount and uts
# namespaces, already in the host's network namespace:
#   host-init.sh boot HOSTDIR NAME   mount the host's private files, then exec tini
#   host-init.sh services HOSTDIR    (under tini) start sshd and dockerd, then idle
#   host-init.sh restart-dockerd HOSTDIR   stop dockerd (SIGTERM) and start it again
# Killing tini, PID 1 of the host, kills every process of the host, containers included.
set -eu
cmd=$1 dir=$2

# Daemons are forked off (setsid -f) so that tini, PID 1, becomes their parent and reaps them.
start_dockerd() {
    setsid -f dockerd >>"$dir/log/dockerd.log" 2>&1 </dev/null
}

case $cmd in
boot)
    name=$3
    hostname "$name"
    # A sysfs of this network namespace (dockerd reads /sys/class/net), keeping the
    # cgroup mounts, without which dockerd refuses to start.
    mkdir -p "$dir/mnt/cgroup"
    mount --rbind /sys/fs/cgroup "$dir/mnt/cgroup"
    mount -t sysfs sysfs /sys
    mount --move "$dir/mnt/cgroup" /sys/fs/cgroup
    # Private /run (docker.sock, containerd, pid files) emptied at every boot, as a
    # reboot would; /root, /etc/docker (daemon.json, key.json) and name resolution.
    rm -rf "$dir/run"
    mkdir -p "$dir/run/sshd"
    mount --bind "$dir/run" /run
    mount --bind "$dir/root" /root
    mount --bind "$dir/etc-docker" /etc/docker
    mount --bind "$dir/etc/hosts" /etc/hosts
    mount --bind "$dir/etc/resolv.conf" /etc/resolv.conf
    exec tini -- "$0" services "$dir"
    ;;
services)
    /usr/sbin/sshd -f "$dir/ssh/sshd_config" -E "$dir/log/sshd.log"
    start_dockerd
    exec sleep infinity
    ;;
restart-dockerd)
    if [ -f /run/docker.pid ]; then
        pid=$(cat /run/docker.pid)
        kill "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    start_dockerd
    ;;
*)
    echo "host-init.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
