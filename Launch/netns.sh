# Sourced by Tests/integration/multihost_test.sh and Launch/scaling.sh: "hosts" on one Linux machine, each a
# network namespace with its own address, joined by veth links to a bridge, so that Open MPI
# starts ranks on them from a hostfile and talks TCP between them as between nodes.
#
#   netns_up N [SLOTS]   N namespaces; sets NETNS_HOSTFILE (SLOTS per host), NETNS_AGENT, NETNS_SUBNET,
#                        NETNS_HOSTS (their addresses) and NETNS_MCA (the OMPI_MCA_* settings below)
#   netns_env            exports NETNS_MCA: what a cluster's openmpi-mca-params.conf would say
#   netns_rate RATE      limits every host's link (both directions) to RATE (tc tbf: 1gbit, 10gbit)
#   netns_link I up|down takes host I's link (1-based) down or up
#   netns_launch R CMD   runs CMD (mpirun) on a launch node whose TCP gives up after R retransmissions
#   netns_down           removes everything netns_up made (safe to call twice; call it from a trap)
#   netns_unavailable    prints why namespaces cannot be made here, or nothing
#
# Only addresses in 198.18.0.0/15 (RFC 2544 benchmarking range) are used: the bridge is
# 198.18.S.1/24 and host i is 198.18.S.(10+i), with S the first /24 no route uses yet. Nothing is
# routed or forwarded anywhere else. Open MPI starts its daemons through `plm_rsh_agent`, which it
# calls as `AGENT HOST COMMAND...` where it would run ssh: the agent runs COMMAND in HOST's
# namespace. The namespaces share the file system; with NETNS_PRIVATE_DIR set, every host but the
# first sees its own empty folder NETNS_VIEWS/hI at that path (a bind mount in a private mount
# namespace), so files a rank there writes land in NETNS_VIEWS/hI, not in the shared folder.
# Every function is safe under `set -e`.

NETNS_TAG=vd$(( $$ % 100000 ))
NETNS_DIR=""
NETNS_NAMES=()
NETNS_HOSTS=()

netns_unavailable() {
  [ "$(id -u)" -eq 0 ] || { echo "not root (network namespaces need CAP_NET_ADMIN)"; return; }
  command -v ip >/dev/null || { echo "no ip command (apt-get install iproute2)"; return; }
  command -v unshare >/dev/null || { echo "no unshare command (util-linux)"; return; }
  local probe=${NETNS_TAG}probe
  if ! ip netns add "$probe" 2>/dev/null; then echo "ip netns add failed (no permission to make network namespaces)"; return; fi
  if ! ip netns exec "$probe" unshare -m true 2>/dev/null; then ip netns del "$probe"; echo "unshare -m failed inside a network namespace"; return; fi
  if ! ip link add "${probe}b" type bridge 2>/dev/null; then ip netns del "$probe"; echo "cannot create a bridge (ip link add type bridge)"; return; fi
  ip link del "${probe}b"; ip netns del "$probe"
}

netns_up() {
  local count=$1 slots=${2:-1} i
  NETNS_DIR=$(mktemp -d /tmp/vae-dist-netns.XXXXXX)
  local third
  for third in $(seq 100 199); do
    ip route show | grep -q "^198\.18\.$third\." || break
  done
  NETNS_SUBNET=198.18.$third
  ip link add "${NETNS_TAG}br" type bridge || return 1
  ip addr add "$NETNS_SUBNET.1/24" dev "${NETNS_TAG}br"
  ip link set "${NETNS_TAG}br" up
  : > "$NETNS_DIR/hostfile"
  for i in $(seq "$count"); do
    local ns=${NETNS_TAG}h$i addr=$NETNS_SUBNET.$((10 + i))
    ip netns add "$ns" || return 1
    NETNS_NAMES+=("$ns"); NETNS_HOSTS+=("$addr")
    ip link add "$ns" type veth peer name eth0 netns "$ns" || return 1
    ip link set "$ns" master "${NETNS_TAG}br" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    echo "$addr slots=$slots" >> "$NETNS_DIR/hostfile"
    mkdir -p "$NETNS_DIR/views/h$i"
  done
  # The launch node, 198.18.S.10: mpirun runs in the root namespace unless netns_launch puts it here,
  # where TCP may give up on an unreachable peer sooner than the machine's setting allows.
  NETNS_LAUNCHER=${NETNS_TAG}h0
  ip netns add "$NETNS_LAUNCHER" || return 1
  NETNS_NAMES+=("$NETNS_LAUNCHER")
  ip link add "$NETNS_LAUNCHER" type veth peer name eth0 netns "$NETNS_LAUNCHER" || return 1
  ip link set "$NETNS_LAUNCHER" master "${NETNS_TAG}br" up
  ip -n "$NETNS_LAUNCHER" addr add "$NETNS_SUBNET.10/24" dev eth0
  ip -n "$NETNS_LAUNCHER" link set eth0 up
  ip -n "$NETNS_LAUNCHER" link set lo up
  NETNS_HOSTFILE=$NETNS_DIR/hostfile
  NETNS_VIEWS=$NETNS_DIR/views
  NETNS_AGENT=$NETNS_DIR/agent
  {
    echo '#!/bin/sh'
    echo "# plm_rsh_agent for Launch/netns.sh: AGENT HOST COMMAND... runs COMMAND in HOST's network namespace."
    echo 'host=$1; shift'
    echo 'case $host in'
    for i in $(seq "$count"); do echo "  ${NETNS_HOSTS[$((i - 1))]}) ns=${NETNS_NAMES[$((i - 1))]}; index=$i ;;"; done
    echo '  *) echo "netns agent: unknown host $host" >&2; exit 255 ;;'
    echo 'esac'
    # Open MPI's session folder is TMPDIR/ompi.HOSTNAME...: the hosts share /tmp and the host name,
    # so one daemon's clean-up could remove another's folder (orte_session_dir failed). One TMPDIR each.
    echo "TMPDIR=$NETNS_DIR/tmp/h\$index; export TMPDIR; mkdir -p \"\$TMPDIR\""
    echo 'view=""'
    echo "[ -n \"\${NETNS_PRIVATE_DIR:-}\" ] && [ \"\$index\" -gt 1 ] && view=$NETNS_DIR/views/h\$index"
    # A private mount namespace: the bind mount is seen by this host's daemon and ranks only.
    echo 'exec ip netns exec "$ns" unshare -m --propagation private sh -c '"'"'[ -z "$0" ] || mount --bind "$0" "$1" || exit 255; exec sh -c "$2"'"'"' "$view" "${NETNS_PRIVATE_DIR:-}" "$*"'
  } > "$NETNS_AGENT"
  chmod +x "$NETNS_AGENT"
  # What the launch needs, learned by failures (see the README's multi-host section):
  NETNS_MCA=(
    "OMPI_MCA_plm_rsh_agent=$NETNS_AGENT"                     # ssh -> ip netns exec
    "OMPI_MCA_routed=direct"                                  # else mpirun crashes starting the daemons
    "OMPI_MCA_btl=tcp,self"                                   # TCP only: no shared memory joins hosts
    "OMPI_MCA_btl_tcp_if_include=$NETNS_SUBNET.0/24"          # and only over the veth links
    "OMPI_MCA_oob_tcp_if_include=$NETNS_SUBNET.0/24"
    "OMPI_MCA_hwloc_base_binding_policy=none"                 # else every host pins its rank to CPU 0
  )
}

netns_env() { local kv; for kv in "${NETNS_MCA[@]}"; do export "${kv?}"; done; }

netns_rate() {  # RATE as tc writes it with a unit: 1gbit, 10gbit
  local rate=$1 i ns bits burst
  bits=$(echo "$rate" | sed -e 's/gbit$/000000000/' -e 's/mbit$/000000/')
  # Bucket: 1 ms at the rate, at least 64 KB (a GSO packet on veth); a larger one lets whole
  # messages through at the veth's own speed.
  burst=$(( bits / 8 / 1000 )); [ "$burst" -ge 65536 ] || burst=65536
  for i in "${!NETNS_NAMES[@]}"; do
    ns=${NETNS_NAMES[$i]}
    # Egress of the root-side end (traffic into the host) and of the host's eth0 (out of it).
    tc qdisc replace dev "$ns" root tbf rate "$rate" burst "$burst" latency 50ms || return 1
    ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms || return 1
  done
}

netns_unlimit() {
  local i ns
  for i in "${!NETNS_NAMES[@]}"; do
    ns=${NETNS_NAMES[$i]}
    tc qdisc del dev "$ns" root 2>/dev/null || true
    ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
  done
}

# netns_launch RETRIES COMMAND...: COMMAND (mpirun) on the launch node, whose TCP gives up on a peer
# that stopped acknowledging after RETRIES retransmissions (net.ipv4.tcp_retries2 of that namespace
# only; the machine's default 15 takes about 15 minutes). mpirun then learns that a host's daemon
# is gone, after an abort too: it does not wait for it.
netns_launch() {
  ip netns exec "$NETNS_LAUNCHER" sysctl -qw "net.ipv4.tcp_retries2=$1" || return 1
  shift
  ip netns exec "$NETNS_LAUNCHER" "$@"
}

netns_link() { ip link set "${NETNS_NAMES[$(($1 - 1))]}" "$2"; }

netns_down() {
  local ns
  for ns in "${NETNS_NAMES[@]}"; do
    # Processes still inside (a rank of a failed run) go first, then the namespace and its veth.
    { ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; } 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$ns" 2>/dev/null || true   # gone with its namespace, normally
  done
  ip link del "${NETNS_TAG}br" 2>/dev/null || true
  [ -z "$NETNS_DIR" ] || rm -rf "$NETNS_DIR"
  NETNS_NAMES=(); NETNS_HOSTS=(); NETNS_DIR=""
}
