set -eu
cluster=clusterid0000000000000001
wanted_vxlans=''
wanted_ports=''
wanted_ids=''
stale=swarmctl-stale-network  # the alias of a VXLAN device whose Docker network is stale
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
remove_network() {  # the VXLAN device takes the host's macvlan with it
    parent=$(docker network inspect --format '{{index .Options "parent"}}' "$1")
    docker network rm "$1" >/dev/null
    case "$parent" in swv*) ip link del "$parent" 2>/dev/null || true ;; esac
}

# --- networks of this cluster that should no longer be here
for found in $(docker network ls --filter "label=swarmctl.cluster.id=$cluster" --format '{{.Label "swarmctl.network.id"}}/{{.Name}}'); do
    has "$wanted_ids" "${found%%/*}" || remove_network "${found#*/}"
done
for vxlan in $(ip -o link show type vxlan | awk -F': ' '{sub(/@.*/, "", $2); print $2}'); do
    case "$vxlan" in swv*) has "$wanted_vxlans" "$vxlan" || ip link del "$vxlan" ;; esac
done

for port in $(iptables -t raw -S PREROUTING | awk '/-j SWARMCTL-VXLAN-GUARD/ {for (i = 1; i < NF; i++) if ($i == "--dport") print $(i + 1)}'); do
    has "$wanted_ports" "$port" || iptables -t raw -D PREROUTING -p udp --dport "$port" -j SWARMCTL-VXLAN-GUARD
done
for port in $wanted_ports; do
    iptables -t raw -C PREROUTING -p udp --dport "$port" -j SWARMCTL-VXLAN-GUARD 2>/dev/null \
        || iptables -t raw -I PREROUTING -p udp --dport "$port" -j SWARMCTL-VXLAN-GUARD
done
for port in $(iptables -S INPUT | awk '/-j SWARMCTL-VXLAN/ {for (i = 1; i < NF; i++) if ($i == "--dport") print $(i + 1)}'); do
    has "$wanted_ports" "$port" || iptables -D INPUT -p udp --dport "$port" -j SWARMCTL-VXLAN
done
for port in $wanted_ports; do
    iptables -C INPUT -p udp --dport "$port" -j SWARMCTL-VXLAN 2>/dev/null \
        || iptables -I INPUT -p udp --dport "$port" -j SWARMCTL-VXLAN
done
for hook in DOCKER-USER FORWARD; do
    while iptables -D "$hook" -j SWARMCTL-OVERLAY 2>/dev/null; do :; done
done
while iptables -t nat -D POSTROUTING -j SWARMCTL-MASQ 2>/dev/null; do :; done
for chain in SWARMCTL-VXLAN SWARMCTL-OVERLAY; do
    if iptables -S "$chain" >/dev/null 2>&1; then
        iptables -F "$chain" && iptables -X "$chain"
    fi
done
if iptables -t raw -S SWARMCTL-VXLAN-GUARD >/dev/null 2>&1; then
    iptables -t raw -F SWARMCTL-VXLAN-GUARD && iptables -t raw -X SWARMCTL-VXLAN-GUARD
fi
if iptables -t nat -S SWARMCTL-MASQ >/dev/null 2>&1; then
    iptables -t nat -F SWARMCTL-MASQ && iptables -t nat -X SWARMCTL-MASQ
fi
while arptables -D INPUT -j SWARMCTL-ARP 2>/dev/null; do :; done
if arptables -L SWARMCTL-ARP >/dev/null 2>&1; then
    arptables -F SWARMCTL-ARP && arptables -X SWARMCTL-ARP
fi
