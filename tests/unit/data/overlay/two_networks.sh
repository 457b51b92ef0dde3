set -eu
cluster=clusterid0000000000000001
wanted_vxlans='swvbacknet0000 swvfrontnet000'
wanted_ports='4789 4790'
wanted_ids='backnet00000000000000000b frontnet0000000000000000a'
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
remove_network() {
    bridge=$(docker network inspect --format '{{index .Options "com.docker.network.bridge.name"}}' "$1")
    docker network rm "$1" >/dev/null
    ip link del "swv${bridge#swb}" 2>/dev/null || true
}

# --- network backnet00000000000000000b: VNI 4096, 10.0.2.0/24, this node 10.0.2.16/28
net=back id=backnet00000000000000000b vxlan=swvbacknet0000 bridge=swbbacknet0000
peers=192.168.56.12
owner=$(docker network inspect --format '{{index .Labels "swarmctl.network.id"}}/{{index .Labels "swarmctl.cluster.id"}}' "$net" 2>/dev/null) || owner=none
if [ "$owner" != none ] && [ "$owner" != "$id/$cluster" ] && [ "${owner#*/}" = "$cluster" ]; then
    remove_network "$net"  # an older network of this cluster by the same name, missed here
    owner=none
fi
if [ "$owner" = none ]; then
    docker network create --driver bridge --subnet 10.0.2.0/24 --gateway 10.0.2.1 \
        --ip-range 10.0.2.16/28 --aux-address node=10.0.2.16 \
        --opt "com.docker.network.bridge.name=$bridge" \
        --opt com.docker.network.driver.mtu=1450 \
        --label "swarmctl.network.id=$id" --label "swarmctl.cluster.id=$cluster" \
        "$net" >/dev/null
elif [ "$owner" != "$id/$cluster" ]; then
    echo "a Docker network named $net exists and does not belong to this overlay" >&2
    exit 3
fi
if ! ip link show "$vxlan" >/dev/null 2>&1; then
    ip link add "$vxlan" type vxlan id 4096 dstport 4789 \
        local 192.168.56.11 dev eth1 learning
fi
# dockerd recreates its bridge after a restart without our port: put it back each time.
ip link set "$vxlan" mtu 1450 master "$bridge" up
ip link set "$bridge" up
# The node's own address rides beside the gateway's, which dockerd wants as the bridge's
# primary one (or it cannot bring the network back after a restart). The host reaches the
# tasks of other nodes through neighbour entries the services converge writes, so it
# never has to ARP across the overlay with the gateway address that every node shares.
sysctl -qw "net.ipv4.conf.$bridge.promote_secondaries=1"
primary=$(ip -4 -o addr show dev "$bridge" | awk '{print $4; exit}')
if [ "$primary" = 10.0.2.16/24 ]; then
    ip addr del 10.0.2.16/24 dev "$bridge"  # the gateway moves up
fi
ip addr replace 10.0.2.16/24 dev "$bridge"
ip route replace 10.0.2.0/24 dev "$bridge" src 10.0.2.16
# Head-end replication: broadcast and unknown frames go to every peer.
have=$(bridge fdb show dev "$vxlan" | awk '$1 == "00:00:00:00:00:00" {print $3}' | tr '\n' ' ')
for peer in $peers; do
    has "$have" "$peer" || bridge fdb append 00:00:00:00:00:00 dev "$vxlan" dst "$peer"
done
for peer in $have; do
    has "$peers" "$peer" || bridge fdb del 00:00:00:00:00:00 dev "$vxlan" dst "$peer"
done

# --- network frontnet0000000000000000a: VNI 4097, 10.0.1.0/24, this node 10.0.1.16/28
net=front id=frontnet0000000000000000a vxlan=swvfrontnet000 bridge=swbfrontnet000
peers='192.168.56.12 192.168.56.13'
owner=$(docker network inspect --format '{{index .Labels "swarmctl.network.id"}}/{{index .Labels "swarmctl.cluster.id"}}' "$net" 2>/dev/null) || owner=none
if [ "$owner" != none ] && [ "$owner" != "$id/$cluster" ] && [ "${owner#*/}" = "$cluster" ]; then
    remove_network "$net"  # an older network of this cluster by the same name, missed here
    owner=none
fi
if [ "$owner" = none ]; then
    docker network create --driver bridge --subnet 10.0.1.0/24 --gateway 10.0.1.1 \
        --ip-range 10.0.1.16/28 --aux-address node=10.0.1.16 \
        --opt "com.docker.network.bridge.name=$bridge" \
        --opt com.docker.network.driver.mtu=1400 \
        --label "swarmctl.network.id=$id" --label "swarmctl.cluster.id=$cluster" \
        --label com.example.tier=edge \
        --label team=web \
        "$net" >/dev/null
elif [ "$owner" != "$id/$cluster" ]; then
    echo "a Docker network named $net exists and does not belong to this overlay" >&2
    exit 3
fi
if ! ip link show "$vxlan" >/dev/null 2>&1; then
    ip link add "$vxlan" type vxlan id 4097 dstport 4790 \
        local 192.168.56.11 dev eth1 learning
fi
# dockerd recreates its bridge after a restart without our port: put it back each time.
ip link set "$vxlan" mtu 1400 master "$bridge" up
ip link set "$bridge" up
# The node's own address rides beside the gateway's, which dockerd wants as the bridge's
# primary one (or it cannot bring the network back after a restart). The host reaches the
# tasks of other nodes through neighbour entries the services converge writes, so it
# never has to ARP across the overlay with the gateway address that every node shares.
sysctl -qw "net.ipv4.conf.$bridge.promote_secondaries=1"
primary=$(ip -4 -o addr show dev "$bridge" | awk '{print $4; exit}')
if [ "$primary" = 10.0.1.16/24 ]; then
    ip addr del 10.0.1.16/24 dev "$bridge"  # the gateway moves up
fi
ip addr replace 10.0.1.16/24 dev "$bridge"
ip route replace 10.0.1.0/24 dev "$bridge" src 10.0.1.16
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

# --- the gateway and virtual IPs exist on every node: keep their ARP off the overlay
ebtables -N SWARMCTL-ARP -P RETURN 2>/dev/null || ebtables -F SWARMCTL-ARP
ebtables -A SWARMCTL-ARP -p ARP -o swvbacknet0000 --arp-ip-dst 10.0.2.0/28 -j DROP
ebtables -A SWARMCTL-ARP -p ARP -i swvbacknet0000 --arp-ip-dst 10.0.2.0/28 -j DROP
ebtables -A SWARMCTL-ARP -p ARP -o swvbacknet0000 --arp-ip-src 10.0.2.0/28 -j DROP
ebtables -A SWARMCTL-ARP -p ARP -o swvfrontnet000 --arp-ip-dst 10.0.1.0/28 -j DROP
ebtables -A SWARMCTL-ARP -p ARP -i swvfrontnet000 --arp-ip-dst 10.0.1.0/28 -j DROP
ebtables -A SWARMCTL-ARP -p ARP -o swvfrontnet000 --arp-ip-src 10.0.1.0/28 -j DROP
# Only ARP frames jump: every data frame the bridges pass would otherwise walk the chain.
for chain in INPUT FORWARD OUTPUT; do
    ebtables -D "$chain" -j SWARMCTL-ARP 2>/dev/null || true  # an older script's jump for every frame
    ebtables -L "$chain" | grep -q -- '-p ARP -j SWARMCTL-ARP' || ebtables -I "$chain" -p ARP -j SWARMCTL-ARP
done

# --- VXLAN is unauthenticated: accept it from the cluster's nodes only
iptables-restore --noflush <<'RULES'
*filter
:SWARMCTL-VXLAN - [0:0]
-A SWARMCTL-VXLAN -s 192.168.56.12/32 -j ACCEPT
-A SWARMCTL-VXLAN -s 192.168.56.13/32 -j ACCEPT
-A SWARMCTL-VXLAN -s 192.168.56.14/32 -j ACCEPT
-A SWARMCTL-VXLAN -j DROP
:SWARMCTL-BRIDGED - [0:0]
-A SWARMCTL-BRIDGED -i swbbacknet0000 -o swbbacknet0000 -j ACCEPT
-A SWARMCTL-BRIDGED -i swbfrontnet000 -o swbfrontnet000 -j ACCEPT
COMMIT
RULES
# --- br_netfilter sends every frame a bridge passes through iptables, where Docker's chains
# take a dozen rules to accept it (-i bridge -o bridge, its inter-container rule): accept
# it first. Swarm's overlay bridge lives in a namespace with no rules, so it pays nothing.
# DOCKER-USER is where FORWARD starts, whatever order a restarted dockerd leaves.
hook=FORWARD
iptables -S DOCKER-USER >/dev/null 2>&1 && hook=DOCKER-USER
iptables -C "$hook" -j SWARMCTL-BRIDGED 2>/dev/null || iptables -I "$hook" -j SWARMCTL-BRIDGED

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
