# shellcheck shell=bash
#
# The stack's network: one Linux bridge holding MILLPOND_HOST_IP, an address
# of this machine that the host and every pod reach. Kafka, the API server
# and the test sinks listen there; the node's CNI puts pods on the same
# bridge (lib/node.sh). The ranges come from 198.18.0.0/15, reserved for
# benchmarking, so they cannot be mistaken for a real network, and nothing
# is routed off the machine: pod traffic is only forwarded between the
# bridge and this host.
#
#   net_up      create the bridge with the host address (idempotent)
#   net_down    delete it and the stack's iptables rules
#   net_status  print whether it exists

_NET_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
declare -F log >/dev/null || source "$_NET_LIB_DIR/common.sh"

NET_BRIDGE=${MILLPOND_BRIDGE:-millpond0}
# The bridge's address: the pods' gateway and the address of host services.
MILLPOND_HOST_IP=${MILLPOND_HOST_IP:-198.18.0.1}
NET_POD_CIDR=${MILLPOND_POD_CIDR:-198.18.0.0/24}
NET_SERVICE_CIDR=${MILLPOND_SERVICE_CIDR:-198.19.0.0/24}
# Chain of our own in the filter table: pods may talk to the host and to
# each other, nothing else is forwarded.
NET_CHAIN=MILLPOND-FORWARD

_net_log() { log "net: $*"; }

_net_prefix() { echo "${NET_POD_CIDR#*/}"; }

net_up() {
    have ip || apt_install iproute2
    have iptables || apt_install iptables
    if ! ip link show "$NET_BRIDGE" >/dev/null 2>&1; then
        as_root ip link add "$NET_BRIDGE" type bridge || die "net: cannot create bridge $NET_BRIDGE"
        _net_log "created bridge $NET_BRIDGE"
    fi
    if ! ip -4 addr show dev "$NET_BRIDGE" | grep -qw "inet $MILLPOND_HOST_IP/$(_net_prefix)"; then
        as_root ip addr add "$MILLPOND_HOST_IP/$(_net_prefix)" dev "$NET_BRIDGE" ||
            die "net: cannot give $NET_BRIDGE the address $MILLPOND_HOST_IP"
    fi
    as_root ip link set "$NET_BRIDGE" up
    # Pod <-> pod traffic crosses the bridge and passes iptables (services
    # are DNATed by kube-proxy), so forwarding must be on for the bridge.
    as_root sysctl -qw net.ipv4.ip_forward=1
    as_root modprobe br_netfilter 2>/dev/null || true
    if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
        as_root sysctl -qw net.bridge.bridge-nf-call-iptables=1
    fi
    if ! as_root iptables -w -L "$NET_CHAIN" -n >/dev/null 2>&1; then
        as_root iptables -w -N "$NET_CHAIN"
        as_root iptables -w -A "$NET_CHAIN" -s "$NET_POD_CIDR" -d "$NET_POD_CIDR" -j ACCEPT
        as_root iptables -w -A "$NET_CHAIN" -j DROP
        as_root iptables -w -I FORWARD -i "$NET_BRIDGE" -j "$NET_CHAIN"
        as_root iptables -w -I FORWARD -o "$NET_BRIDGE" -j "$NET_CHAIN"
    fi
}

net_down() {
    if ip link show "$NET_BRIDGE" >/dev/null 2>&1; then
        as_root ip link set "$NET_BRIDGE" down
        as_root ip link delete "$NET_BRIDGE" && _net_log "deleted bridge $NET_BRIDGE"
    fi
    if have iptables; then
        iptables_drop_chain filter "$NET_CHAIN"
    fi
}

net_env() {
    if ip link show "$NET_BRIDGE" >/dev/null 2>&1; then
        printf 'export MILLPOND_HOST_IP=%q\n' "$MILLPOND_HOST_IP"
    fi
}

net_status() {
    if ip link show "$NET_BRIDGE" >/dev/null 2>&1; then
        echo "net: bridge $NET_BRIDGE up, host address $MILLPOND_HOST_IP, pods $NET_POD_CIDR, services $NET_SERVICE_CIDR"
    else
        echo "net: no bridge $NET_BRIDGE"
    fi
}
