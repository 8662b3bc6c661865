# shellcheck shell=bash
# Aperture lab hook: two Samba servers for the SMB null-session check, an open one and
# its locked twin (written like 23-open.sh, whose ground-truth columns it uses):
#       198.19.1.240  smbd  445  restrict anonymous = 0, map to guest = bad user,
#                                a guest-ok share                              open (login check)
#       198.19.1.241  smbd  445  restrict anonymous = 2, map to guest = never,
#                                no guest share                                closed (login check)
#
# Sourced by scripts/lab with $1 = up|down after 20-services.sh (which routes
# 198.19.1.0/24 into $LAB_TGT_NS). Uses 198.19.1.240-241 only, inside the range
# tests/unauth_lab.rs scans. On `up` it installs samba if missing (policy-rc.d answering
# 101, and any smbd the install started on the host is stopped), starts each smbd with
# `ip netns exec $LAB_TGT_NS` and records its PID, waits ($LAB_SMB_TIMEOUT = 30 s at
# most) until both answer from $LAB_SCAN_NS, and writes $LAB_DIR/smb.jsonl atomically
# (one object per port: ip, port, proto, service, check, open, login, evidence).
# smbd runs in its own process group (it signals its whole group when it stops). On
# `down` it stops exactly the processes started from each recorded server's config file
# (smbd, its helpers, and the samba-dcerpcd it started for the srvsvc pipe, which
# leaves smbd's group), checking each command name, and deletes $LAB_DIR/smb and
# smb.jsonl. APERTURE_LAB_SERVICES=0 or APERTURE_LAB_SMB=0
# skips this hook.

SMB_DIR=$LAB_DIR/smb
SMB_PIDS=$SMB_DIR/pids
SMB_GT=$LAB_DIR/smb.jsonl
SMB_TIMEOUT=${LAB_SMB_TIMEOUT:-30}
SMB_IPS=(198.19.1.240 198.19.1.241)
SMB_COMMS='smbd|smbd\[.*|smbd-notifyd|cleanupd|samba-dcerpcd|rpcd_[a-z_]+'

smb_log() { echo "lab: smb: $*" >&2; }
smb_die() { echo "lab: smb: error: $*" >&2; exit 1; }

smb_install() {
    [ -x /usr/sbin/smbd ] && return 0
    smb_log "installing samba"
    local prc=/usr/sbin/policy-rc.d backup="" rc=0 pid
    if [ -e "$prc" ]; then backup=$(mktemp /tmp/aplab-smb-prc.XXXXXX); cp -a "$prc" "$backup"; fi
    # shellcheck disable=SC2064
    trap "if [ -n '$backup' ]; then mv -f '$backup' '$prc'; else rm -f '$prc'; fi" EXIT
    printf '#!/bin/sh\nexit 101\n' >"$prc.aplab.$$"
    chmod 755 "$prc.aplab.$$"
    mv -f "$prc.aplab.$$" "$prc"
    env DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get -y -q -o DPkg::Lock::Timeout=300 \
        install --no-install-recommends samba >"$LAB_DIR/smb-apt.log" 2>&1 || rc=1
    if [ -n "$backup" ]; then mv -f "$backup" "$prc"; else rm -f "$prc"; fi
    trap - EXIT
    [ $rc -eq 0 ] || smb_die "apt-get install samba failed (see $LAB_DIR/smb-apt.log)"
    for pid in $(pgrep -x 'smbd|nmbd' || true); do
        if [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/1/ns/net)" ]; then
            smb_log "package install started pid $pid on the host: stopping it"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}

smb_alive() { # pid comm-regex
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$1/comm" 2>/dev/null)" =~ ^($2)$ ]] || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

smb_server() { # name ip open(YES|NO)
    local D=$SMB_DIR/$1 access
    mkdir -p "$D/private" "$D/lock" "$D/state" "$D/cache" "$D/pid" "$D/ncalrpc" "$D/public" "$D/office"
    printf 'lab readme\n' >"$D/public/readme.txt"
    chmod 755 "$D/public" "$D/office"
    if [ "$3" = YES ]; then
        access="   restrict anonymous = 0
   map to guest = bad user
   guest account = nobody"
    else
        access="   restrict anonymous = 2
   map to guest = never"
    fi
    # smbd binds only to addresses of an interface (198.19.1.0/24 is a local route).
    ip -n "$LAB_TGT_NS" addr replace "$2/32" dev lo
    cat >"$D/smb.conf" <<EOF
[global]
   workgroup = LAB
   netbios name = $(echo "$1" | tr 'a-z-' 'A-Z_')
   server string = Lab Samba ($1)
   interfaces = $2
   bind interfaces only = yes
   smb ports = 445
   disable netbios = yes
   server role = standalone server
   private dir = $D/private
   lock directory = $D/lock
   state directory = $D/state
   cache directory = $D/cache
   pid directory = $D/pid
   ncalrpc dir = $D/ncalrpc
   log file = $D/log.%m
   load printers = no
   printcap name = /dev/null
   disable spoolss = yes
$access
[public]
   path = $D/public
   comment = lab public files
   read only = yes
   guest ok = $( [ "$3" = YES ] && echo yes || echo no )
[office]
   path = $D/office
   comment = lab office
   read only = yes
EOF
    # Its own process group (no --no-process-group): see the header.
    ip netns exec "$LAB_TGT_NS" /usr/sbin/smbd --foreground -s "$D/smb.conf" \
        </dev/null >"$D/smbd.out" 2>&1 &
    local pid=$! _
    echo "$1 $pid smbd" >>"$SMB_PIDS"
    for _ in $(seq 1 100); do
        smb_alive "$pid" smbd && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    smb_alive "$pid" smbd || { tail -n 20 "$D/smbd.out" >&2 || true; smb_die "$1 did not start (see $D)"; }
}

smb_wait() {
    local deadline=$((SECONDS + SMB_TIMEOUT)) missing ip
    while :; do
        missing=""
        for ip in "${SMB_IPS[@]}"; do
            ip netns exec "$LAB_SCAN_NS" timeout 1 bash -c "exec 3<>/dev/tcp/$ip/445" 2>/dev/null \
                || missing+=" $ip:445"
        done
        [ -z "$missing" ] && return 0
        [ $SECONDS -lt $deadline ] || { smb_log "not answering:$missing"; return 1; }
        sleep 0.2
    done
}

smb_truth() {
    cat >"$SMB_GT.tmp" <<'EOF'
{"ip":"198.19.1.240","port":445,"proto":"tcp","service":"smb","check":"smb-null-session","open":true,"login":true,"evidence":"IPC$ reachable, NetShareEnumAll lists 3 shares (public, office, IPC$)"}
{"ip":"198.19.1.241","port":445,"proto":"tcp","service":"smb","check":"smb-null-session","open":false,"login":true,"evidence":null}
EOF
    mv -f "$SMB_GT.tmp" "$SMB_GT"
}

# PIDs of the live processes started from config file $1: smbd and its helpers, and the
# samba-dcerpcd (its own session, parent init) and rpcd_* workers smbd started for the
# srvsvc pipe; the config path is under $LAB_DIR, so it names only this lab's.
smb_members() {
    local f pid args
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}; pid=${pid%/cmdline}
        args=$(tr "\\0" " " 2>/dev/null <"$f") || continue
        [[ " $args" == *" -s $1 "* || " $args" == *" --configfile=$1 "* ]] || continue
        smb_alive "$pid" "$SMB_COMMS" && echo "$pid"
    done
    return 0
}

smb_down() {
    local name member _
    local -a members
    if [ -s "$SMB_PIDS" ]; then
        while read -r name _; do
            [ -n "$name" ] || continue
            mapfile -t members < <(smb_members "$SMB_DIR/$name/smb.conf")
            for member in "${members[@]}"; do kill -TERM "$member" 2>/dev/null || true; done
            for _ in $(seq 1 50); do
                mapfile -t members < <(smb_members "$SMB_DIR/$name/smb.conf")
                [ ${#members[@]} -eq 0 ] && break
                sleep 0.1
            done
            for member in "${members[@]}"; do
                smb_log "$name: pid $member ignored SIGTERM, sending SIGKILL"
                kill -KILL "$member" 2>/dev/null || true
            done
        done <"$SMB_PIDS"
    fi
    for ip in "${SMB_IPS[@]}"; do
        ip -n "$LAB_TGT_NS" addr del "$ip/32" dev lo 2>/dev/null || true
    done
    rm -f "$SMB_GT" "$SMB_GT.tmp" "$LAB_DIR/smb-apt.log"
    if [ -n "${LAB_DIR:-}" ] && [ "$SMB_DIR" = "$LAB_DIR/smb" ] && [ -d "$SMB_DIR" ]; then
        rm -rf -- "$SMB_DIR"
    fi
    return 0
}

smb_up() {
    local t0=$SECONDS
    smb_install
    smb_down >/dev/null 2>&1 || true
    mkdir -p "$SMB_DIR"
    chmod 755 "$SMB_DIR"
    : >"$SMB_PIDS"
    smb_server smb-open 198.19.1.240 YES
    smb_server smb-locked 198.19.1.241 NO
    smb_wait || smb_die "smbd not ready after ${SMB_TIMEOUT}s (logs in $SMB_DIR)"
    smb_truth
    smb_log "$(wc -l <"$SMB_GT") ports up ($((SECONDS - t0))s)"
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_SERVICES:-1}" = 0 ] || [ "${APERTURE_LAB_SMB:-1}" = 0 ]; then
            smb_log "skipped"
        else
            smb_up
        fi
        ;;
    down) smb_down ;;
    *) smb_die "usage: 29-smb.sh up|down" ;;
esac
