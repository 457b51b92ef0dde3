set -eu
cluster=clusterid0000000000000001
wanted_vxlans='swvbacknet0000 swvfrontnet000'
wanted_ports='4789 4790'
wanted_ids='backnet00000000000000000b frontnet0000000000000000a'
stale=swarmctl-stale-network  # the alias of a VXLAN device whose Docker network is stale
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
remove_network() {  # the VXLAN device takes the host's macvlan with it
    parent=$(docker network inspect --format '{{index .Options "parent"}}' "$1")
    docker network rm "$1" >/dev/null
    case "$parent" in swv*) ip link del "$parent" 2>/dev/null || true ;; esac
}

# --- network backnet00000000000000000b: VNI 4096, 10.0.2.0/24, this node 10.0.2.16/28
net=back id=backnet00000000000000000b vxlan=swvbacknet0000 shim=swbbacknet0000
peers=192.168.56.12
found=$(docker network inspect --format '{{index .Labels "swarmctl.network.id"}}/{{index .Labels "swarmctl.cluster.id"}}/{{.Driver}}' "$net" 2>/dev/null) || found=none
owner=${found%/*}
if [ "$owner" = "$id/$cluster" ] && [ "${found##*/}" != macvlan ]; then
    echo "network $net is a Docker ${found##*/} network made by an earlier swarmctl: remove it and create it again" >&2
    exit 3
fi
if [ "$owner" != none ] && [ "$owner" != "$id/$cluster" ] && [ "${owner#*/}" = "$cluster" ]; then
    remove_network "$net"  # an older network of this cluster by the same name, missed here
    owner=none
fi
# Docker's macvlan network needs its parent, the VXLAN device, before it is made. A
# dockerd that started without it (a reboot) keeps the network's record but not the
# network: it is made again, once its containers, which could not start, are gone. Until
# then the device made again carries a mark (its alias), so that later runs try again if
# a container still holds the network now; a reboot takes the mark with the device.
if ! ip link show "$vxlan" >/dev/null 2>&1; then
    ip link add "$vxlan" type vxlan id 4096 dstport 4789 \
        local 192.168.56.11 dev eth1 learning
    [ "$owner" != "$id/$cluster" ] || ip link set "$vxlan" alias "$stale"
fi
if [ "$owner" = "$id/$cluster" ] && ip link show "$vxlan" | grep -q " alias $stale\$" \
    && docker network rm "$net" >/dev/null 2>&1; then
    ip link set "$vxlan" alias ""
    owner=none
fi
# The VXLAN device is the macvlans' lower device and no host port: without `arp off` it
# would answer ARP for the host's addresses too, and replies would come in beside the
# host's macvlan, where the firewall does not expect them.
ip link set "$vxlan" mtu 1450 arp off up
if [ "$owner" = none ]; then
    docker network create --driver macvlan --subnet 10.0.2.0/24 --gateway 10.0.2.1 \
        --ip-range 10.0.2.16/28 --aux-address node=10.0.2.16 \
        --opt "parent=$vxlan" --opt macvlan_mode=bridge \
        --label "swarmctl.network.id=$id" --label "swarmctl.cluster.id=$cluster" \
        "$net" >/dev/null
elif [ "$owner" != "$id/$cluster" ]; then
    echo "a Docker network named $net exists and does not belong to this overlay" >&2
    exit 3
fi
# The host's own port on the segment, a macvlan beside the containers' (no bridge, so no
# br_netfilter). The node's address is its only address, so the host's own ARP carries
# it; the gateway and the rest of block 0 (the virtual IPs) are local through a route:
# the host answers for them and takes their packets, and no address is added per service.
ip link show "$shim" >/dev/null 2>&1 || ip link add "$shim" link "$vxlan" type macvlan mode bridge
sysctl -qw "net.ipv4.conf.$shim.arp_announce=2"
ip link set "$shim" up
addresses=$(ip -4 -o addr show dev "$shim" | awk '{print $4}' | tr '\n' ' ')
[ "$addresses" = '10.0.2.16/24 ' ] || ip addr flush dev "$shim"
ip addr replace 10.0.2.16/24 dev "$shim"
ip route replace 10.0.2.0/24 dev "$shim" src 10.0.2.16
ip route replace table local local 10.0.2.0/28 dev "$shim" src 10.0.2.16
# Head-end replication: broadcast and unknown frames go to every peer.
have=$(bridge fdb show dev "$vxlan" | awk '$1 == "00:00:00:00:00:00" {print $3}' | tr '\n' ' ')
for peer in $peers; do
    has "$have" "$peer" || bridge fdb append 00:00:00:00:00:00 dev "$vxlan" dst "$peer"
done
for peer in $have; do
    has "$peers" "$peer" || bridge fdb del 00:00:00:00:00:00 dev "$vxlan" dst "$peer"
done

# --- network frontnet0000000000000000a: VNI 4097, 10.0.1.0/24, this node 10.0.1.16/28
net=front id=frontnet0000000000000000a vxlan=swvfrontnet000 shim=swbfrontnet000
peers='192.168.56.12 192.168.56.13'
found=$(docker network inspect --format '{{index .Labels "swarmctl.network.id"}}/{{index .Labels "swarmctl.cluster.id"}}/{{.Driver}}' "$net" 2>/dev/null) || found=none
owner=${found%/*}
if [ "$owner" = "$id/$cluster" ] && [ "${found##*/}" != macvlan ]; then
    echo "network $net is a Docker ${found##*/} network made by an earlier swarmctl: remove it and create it again" >&2
    exit 3
fi
if [ "$owner" != none ] && [ "$owner" != "$id/$cluster" ] && [ "${owner#*/}" = "$cluster" ]; then
    remove_network "$net"  # an older network of this cluster by the same name, missed here
    owner=none
fi
# Docker's macvlan network needs its parent, the VXLAN device, before it is made. A
# dockerd that started without it (a reboot) keeps the network's record but not the
# network: it is made again, once its containers, which could not start, are gone. Until
# then the device made again carries a mark (its alias), so that later runs try again if
# a container still holds the network now; a reboot takes the mark with the device.
if ! ip link show "$vxlan" >/dev/null 2>&1; then
    ip link add "$vxlan" type vxlan id 4097 dstport 4790 \
        local 192.168.56.11 dev eth1 learning
    [ "$owner" != "$id/$cluster" ] || ip link set "$vxlan" alias "$stale"
fi
if [ "$owner" = "$id/$cluster" ] && ip link show "$vxlan" | grep -q " alias $stale\$" \
    && docker network rm "$net" >/dev/null 2>&1; then
    ip link set "$vxlan" alias ""
    owner=none
fi
# The VXLAN device is the macvlans' lower device and no host port: without `arp off` it
# would answer ARP for the host's addresses too, and replies would come in beside the
# host's macvlan, where the firewall does not expect them.
ip link set "$vxlan" mtu 1400 arp off up
if [ "$owner" = none ]; then
    docker network create --driver macvlan --subnet 10.0.1.0/24 --gateway 10.0.1.1 \
        --ip-range 10.0.1.16/28 --aux-address node=10.0.1.16 \
        --opt "parent=$vxlan" --opt macvlan_mode=bridge \
        --label "swarmctl.network.id=$id" --label "swarmctl.cluster.id=$cluster" \
        --label com.example.tier=edge \
        --label team=web \
        "$net" >/dev/null
elif [ "$owner" != "$id/$cluster" ]; then
    echo "a Docker network named $net exists and does not belong to this overlay" >&2
    exit 3
fi
# The host's own port on the segment, a macvlan beside the containers' (no bridge, so no
# br_netfilter). The node's address is its only address, so the host's own ARP carries
# it; the gateway and the rest of block 0 (the virtual IPs) are local through a route:
# the host answers for them and takes their packets, and no address is added per service.
ip link show "$shim" >/dev/null 2>&1 || ip link add "$shim" link "$vxlan" type macvlan mode bridge
sysctl -qw "net.ipv4.conf.$shim.arp_announce=2"
ip link set "$shim" up
addresses=$(ip -4 -o addr show dev "$shim" | awk '{print $4}' | tr '\n' ' ')
[ "$addresses" = '10.0.1.16/24 ' ] || ip addr flush dev "$shim"
ip addr replace 10.0.1.16/24 dev "$shim"
ip route replace 10.0.1.0/24 dev "$shim" src 10.0.1.16
ip route replace table local local 10.0.1.0/28 dev "$shim" src 10.0.1.16
# Head-end replication: broadcast and unknown frames go to every peer.
have=$(bridge fdb show dev "$vxlan" | awk '$1 == "00:00:00:00:00:00" {print $3}' | tr '\n' ' ')
for peer in $peers; do
    has "$have" "$peer" || bridge fdb append 00:00:00:00:00:00 dev "$vxlan" dst "$peer"
done
for peer in $have; do
    has "$peers" "$peer" || bridge fdb del 00:00:00:00:00:00 dev "$vxlan" dst "$peer"
done

# --- networks of this cluster that should no longer be here
for found in $(docker network ls --filter "label=swarmctl.cluster.id=$cluster" --format '{{.Label "swarmctl.network.id"}}/{{.Name}}'); do
    has "$wanted_ids" "${found%%/*}" || remove_network "${found#*/}"
done
for vxlan in $(ip -o link show type vxlan | awk -F': ' '{sub(/@.*/, "", $2); print $2}'); do
    case "$vxlan" in swv*) has "$wanted_vxlans" "$vxlan" || ip link del "$vxlan" ;; esac
done

# --- block 0 is answered by every node for its own containers: a request from another
# node's container, flooded across the overlay, is left to that node
arptables -N SWARMCTL-ARP 2>/dev/null || arptables -F SWARMCTL-ARP
arptables -A SWARMCTL-ARP -i swbbacknet0000 --opcode Request -d 10.0.2.0/28 ! -s 10.0.2.16/28 -j DROP
arptables -A SWARMCTL-ARP -i swbfrontnet000 --opcode Request -d 10.0.1.0/28 ! -s 10.0.1.16/28 -j DROP
arptables -C INPUT -j SWARMCTL-ARP 2>/dev/null || arptables -I INPUT -j SWARMCTL-ARP

# --- VXLAN is unauthenticated: accept it from the cluster's nodes only. Frames between
# containers never reach these tables; what the host routes for them does: out to the
# world (masqueraded, as Docker's bridge networks are), and never between two overlays
# or between an overlay and Docker's own networks. Within one, the virtual IPs' DNAT
# sends packets back out the way they came.
iptables-restore --noflush <<'RULES'
*filter
:SWARMCTL-VXLAN - [0:0]
-A SWARMCTL-VXLAN -s 192.168.56.12/32 -j ACCEPT
-A SWARMCTL-VXLAN -s 192.168.56.13/32 -j ACCEPT
-A SWARMCTL-VXLAN -s 192.168.56.14/32 -j ACCEPT
-A SWARMCTL-VXLAN -j DROP
:SWARMCTL-OVERLAY - [0:0]
-A SWARMCTL-OVERLAY -i swbbacknet0000 -o swbbacknet0000 -j ACCEPT
-A SWARMCTL-OVERLAY -i swbfrontnet000 -o swbfrontnet000 -j ACCEPT
-A SWARMCTL-OVERLAY -o swb+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SWARMCTL-OVERLAY -i swb+ -o swb+ -j DROP
-A SWARMCTL-OVERLAY -i swb+ -o docker0 -j DROP
-A SWARMCTL-OVERLAY -i swb+ -o br-+ -j DROP
-A SWARMCTL-OVERLAY -i docker0 -o swb+ -j DROP
-A SWARMCTL-OVERLAY -i br-+ -o swb+ -j DROP
-A SWARMCTL-OVERLAY -i swb+ -j ACCEPT
COMMIT
*nat
:SWARMCTL-MASQ - [0:0]
-A SWARMCTL-MASQ -s 10.0.2.0/24 ! -o swbbacknet0000 -j MASQUERADE
-A SWARMCTL-MASQ -s 10.0.1.0/24 ! -o swbfrontnet000 -j MASQUERADE
COMMIT
RULES
# DOCKER-USER is where FORWARD starts, whatever order a restarted dockerd leaves.
hook=FORWARD
iptables -S DOCKER-USER >/dev/null 2>&1 && hook=DOCKER-USER
iptables -C "$hook" -j SWARMCTL-OVERLAY 2>/dev/null || iptables -I "$hook" -j SWARMCTL-OVERLAY
iptables -t nat -C POSTROUTING -j SWARMCTL-MASQ 2>/dev/null || iptables -t nat -I POSTROUTING -j SWARMCTL-MASQ

# --- a container must not reach a peer's VXLAN port: masqueraded to this node's address it
# would pass the peers' filter above and inject frames into the overlay. The raw table sees
# it before conntrack and NAT; the host's own VXLAN devices send through OUTPUT, untouched.
guard=SWARMCTL-VXLAN-GUARD
iptables -t raw -N "$guard" 2>/dev/null || iptables -t raw -F "$guard"
iptables -t raw -A "$guard" -i eth1 -j RETURN  # every VXLAN packet: first
iptables -t raw -A "$guard" -i lo -j RETURN
iptables -t raw -A "$guard" -j DROP
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
