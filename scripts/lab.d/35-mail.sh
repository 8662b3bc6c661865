#!/usr/bin/env bash
# Lab hook: a real mail relay for alert e-mail (tests/alerts_mail_lab.rs).
#
#   198.19.35.25:587  Postfix submission in $LAB_TGT_NS: STARTTLS required
#                     (self-signed certificate, $LAB_DIR/mail/mail.crt), SASL
#                     PLAIN/LOGIN required (Dovecot auth-only instance on
#                     127.0.0.1:12635 in the same namespace, one user), mail
#                     for @alerts.lab.test delivered to Maildirs under
#                     $LAB_DIR/mail/maildir/<user>/new; nothing ever leaves
#                     (every other transport is "error").
#   routes 198.19.35.0/24 from $LAB_SCAN_NS via $LAB_TGT_IP, local in $LAB_TGT_NS.
#   writes $LAB_DIR/mail.env: LAB_MAIL_HOST LAB_MAIL_PORT LAB_MAIL_USER
#   LAB_MAIL_PASSWORD LAB_MAIL_TO LAB_MAIL_CA LAB_MAIL_MAILDIR
#
# Packages (postfix, dovecot-core) are installed when missing with a
# policy-rc.d that keeps Debian from starting them on the host; any daemon
# of theirs seen listening on the host afterwards is stopped. `down` stops
# exactly the PIDs recorded in $LAB_DIR/mail/pids.
set -Eeuo pipefail

M_DIR=$LAB_DIR/mail
M_PIDS=$M_DIR/pids
M_ENV=$LAB_DIR/mail.env
M_NET=198.19.35.0/24
M_IP=198.19.35.25
M_AUTH_PORT=12635
M_USER=alerts
M_PASSWORD=aperture-lab-mail
M_TO=soc@alerts.lab.test

m_log() { echo "lab: mail: $*" >&2; }
m_die() { echo "lab: mail: error: $*" >&2; exit 1; }

m_alive() { # pid comm
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

m_missing() {
    [ -x /usr/lib/postfix/sbin/master ] || echo postfix
    command -v dovecot >/dev/null 2>&1 || echo dovecot-core
    command -v openssl >/dev/null 2>&1 || echo openssl
}

m_install() {
    local -a pkgs
    mapfile -t pkgs < <(m_missing)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    m_log "installing ${pkgs[*]}"
    local prc=/usr/sbin/policy-rc.d backup="" rc=0 before
    if [ -e "$prc" ] || [ -L "$prc" ]; then
        backup=$(mktemp /tmp/aplab-mail-prc.XXXXXX)
        cp -a "$prc" "$backup"
    fi
    # shellcheck disable=SC2064
    trap "if [ -n '$backup' ]; then mv -f '$backup' '$prc'; else rm -f '$prc'; fi" EXIT
    printf '#!/bin/sh\nexit 101\n' >"$prc.mail.$$" && chmod 755 "$prc.mail.$$" && mv -f "$prc.mail.$$" "$prc"
    before=$(ss -Hlntp 2>/dev/null | sort)
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q -o DPkg::Lock::Timeout=300 \
        "${pkgs[@]}" >"$LAB_DIR/mail-apt.log" 2>&1 || rc=1
    if [ -n "$backup" ]; then mv -f "$backup" "$prc"; else rm -f "$prc"; fi
    trap - EXIT
    [ "$rc" -eq 0 ] || m_die "apt-get install ${pkgs[*]} failed (see $LAB_DIR/mail-apt.log)"
    local line pid comm
    while IFS= read -r line; do
        pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line" | head -n 1)
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [ -n "$pid" ] && [[ $comm =~ ^(master|dovecot)$ ]]; then
            m_log "the install started $comm (pid $pid) on the host: stopping it"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done < <(comm -13 <(echo "$before") <(ss -Hlntp 2>/dev/null | sort))
}

m_spawn() { # name comm log cmd...
    local name=$1 comm=$2 log=$3 pid _
    shift 3
    ip netns exec "$LAB_TGT_NS" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    echo "$name $pid $comm" >>"$M_PIDS"
    for _ in $(seq 1 100); do
        m_alive "$pid" "$comm" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    m_alive "$pid" "$comm" || { tail -n 20 "$log" >&2 || true; m_die "$name did not start (see $log)"; }
}

m_ready() { # port address: wait until something listens in the target namespace
    local _
    for _ in $(seq 1 100); do
        ip netns exec "$LAB_TGT_NS" ss -Hlnt "sport = :$1" 2>/dev/null | grep -q "$2:$1" && return 0
        sleep 0.1
    done
    return 1
}

m_down() {
    local name pid comm _
    if [ -s "$M_PIDS" ]; then
        while read -r name pid comm; do
            m_alive "$pid" "$comm" || continue
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do m_alive "$pid" "$comm" || break; sleep 0.1; done
            m_alive "$pid" "$comm" && kill -KILL "$pid" 2>/dev/null || true
        done < <(tac "$M_PIDS")
    fi
    local ns
    for ns in "$LAB_SCAN_NS" "$LAB_TGT_NS"; do
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
        ip -n "$ns" route del "$M_NET" 2>/dev/null || true
        ip -n "$ns" route del local "$M_NET" dev lo table local 2>/dev/null || true
    done
    rm -f "$M_ENV"
    if [ -n "${LAB_DIR:-}" ] && [ "$M_DIR" = "$LAB_DIR/mail" ] && [ -d "$M_DIR" ]; then
        rm -rf -- "$M_DIR"
    fi
    return 0
}

m_up() {
    m_install
    m_down >/dev/null 2>&1 || true
    mkdir -p "$M_DIR/etc" "$M_DIR/queue" "$M_DIR/data" "$M_DIR/maildir" "$M_DIR/dovecot/run" "$M_DIR/dovecot/state"
    chmod 755 "$LAB_DIR" "$M_DIR"
    : >"$M_PIDS"
    chown postfix: "$M_DIR/data"
    chown nobody:nogroup "$M_DIR/maildir"
    ip -n "$LAB_SCAN_NS" route replace "$M_NET" via "$LAB_TGT_IP" dev "$LAB_SCAN_IF"
    ip -n "$LAB_TGT_NS" route replace local "$M_NET" dev lo

    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=mail.alerts.lab.test" \
        -addext "subjectAltName=DNS:mail.alerts.lab.test,IP:$M_IP" \
        -keyout "$M_DIR/etc/mail.key" -out "$M_DIR/mail.crt" >/dev/null 2>&1
    chmod 600 "$M_DIR/etc/mail.key"

    local D=$M_DIR/dovecot
    printf '%s:{PLAIN}%s::::::\n' "$M_USER" "$M_PASSWORD" >"$D/users"
    chmod 644 "$D/users"
    cat >"$D/dovecot.conf" <<EOF
# Aperture lab: Dovecot as Postfix's SASL server only; no mail protocols.
instance_name = aplab-mail-auth-$LAB_TGT_NS
base_dir = $D/run
state_dir = $D/state
protocols = none
log_path = $D/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN $D/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
default_login_user = dovenull
default_internal_user = dovecot
service auth {
  inet_listener {
    address = 127.0.0.1
    port = $M_AUTH_PORT
  }
}
EOF
    doveconf -c "$D/dovecot.conf" -n >/dev/null 2>"$D/doveconf.log" \
        || { cat "$D/doveconf.log" >&2; m_die "dovecot config test failed"; }
    m_spawn dovecot dovecot "$D/dovecot.out" dovecot -F -c "$D/dovecot.conf"

    cat >"$M_DIR/etc/main.cf" <<EOF
# Aperture lab Postfix for alert mail: submission with STARTTLS and SASL,
# local Maildirs for @alerts.lab.test, nothing relayed anywhere.
compatibility_level = 3.6
queue_directory = $M_DIR/queue
data_directory = $M_DIR/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.alerts.lab.test
mydomain = alerts.lab.test
myorigin = \$mydomain
mydestination =
relay_domains =
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_tls_cert_file = $M_DIR/mail.crt
smtpd_tls_key_file = $M_DIR/etc/mail.key
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:$M_AUTH_PORT
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_peername_lookup = no
virtual_mailbox_domains = alerts.lab.test
virtual_mailbox_base = $M_DIR/maildir
virtual_mailbox_maps = inline:{ $M_TO=soc/ }
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
virtual_transport = virtual
alias_maps =
alias_database =
local_recipient_maps =
default_transport = error:outbound mail disabled in the lab
relay_transport = error:outbound mail disabled in the lab
local_transport = error:local delivery disabled in the lab
smtp_dns_support_level = disabled
maillog_file = $M_DIR/maillog
maillog_file_prefixes = $M_DIR
syslog_name = aplab-mail
EOF
    cat >"$M_DIR/etc/master.cf" <<EOF
# service        type  private unpriv chroot wakeup maxproc command
$M_IP:submission inet  n       -      n      -      -       smtpd
cleanup          unix  n       -      n      -      0       cleanup
qmgr             unix  n       -      n      300    1       qmgr
tlsmgr           unix  -       -      n      1000?  1       tlsmgr
rewrite          unix  -       -      n      -      -       trivial-rewrite
bounce           unix  -       -      n      -      0       bounce
defer            unix  -       -      n      -      0       bounce
trace            unix  -       -      n      -      0       bounce
verify           unix  -       -      n      -      1       verify
flush            unix  n       -      n      1000?  0       flush
proxymap         unix  -       -      n      -      -       proxymap
anvil            unix  -       -      n      -      1       anvil
scache           unix  -       -      n      -      1       scache
postlog          unix-dgram n  -      n      -      1       postlogd
error            unix  -       -      n      -      -       error
retry            unix  -       -      n      -      -       error
discard          unix  -       -      n      -      -       discard
virtual          unix  -       n      n      -      -       virtual
EOF
    ip netns exec "$LAB_TGT_NS" postfix -c "$M_DIR/etc" check >"$M_DIR/check.log" 2>&1 \
        || { cat "$M_DIR/check.log" "$M_DIR/maillog" >&2 2>/dev/null || true; m_die "postfix check failed"; }
    m_spawn postfix master "$M_DIR/master.log" /usr/lib/postfix/sbin/master -s -c "$M_DIR/etc"
    m_ready 587 "$M_IP" || { cat "$M_DIR/maillog" >&2 2>/dev/null || true; m_die "postfix is not listening on $M_IP:587"; }
    m_ready "$M_AUTH_PORT" 127.0.0.1 || m_die "dovecot auth is not listening"

    cat >"$M_ENV.tmp" <<EOF
LAB_MAIL_HOST=$M_IP
LAB_MAIL_PORT=587
LAB_MAIL_USER=$M_USER
LAB_MAIL_PASSWORD=$M_PASSWORD
LAB_MAIL_TO=$M_TO
LAB_MAIL_CA=$M_DIR/mail.crt
LAB_MAIL_MAILDIR=$M_DIR/maildir/soc
EOF
    mv -f "$M_ENV.tmp" "$M_ENV"
    m_log "postfix submission on $M_IP:587 (STARTTLS, SASL), mail to $M_TO"
}

case ${1:-} in
    up) m_up ;;
    down) m_down ;;
    *) m_die "usage: 35-mail.sh up|down" ;;
esac
