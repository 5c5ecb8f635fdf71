#!/bin/bash
# test-install-order.sh — installs the .deb in throw-away Debian 12 roots, in
# the orders an admin may choose: Postfix then mailgate (with rsyslog, the
# documented log setup), mailgate then Postfix, Exim only, and an upgrade from
# 0.1.0-1 on an Exim host. Each root is an overlay over a debootstrap'd
# bookworm minbase (built once, cached in /var/tmp/mailgate-chroot), entered
# in its own mount and network namespace, without systemd (policy-rc.d 101).
# The daemons are started as their units would start them (User, Group, the
# user's groups plus SupplementaryGroups), then the MTA's user connects to
# their sockets. Usage: test-install-order.sh DEB. Needs root and, the first
# time, the Debian mirror. Never touches the host's Postfix, Exim or Redis.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
deb=$(readlink -f -- "${1:-}" || true)
cache=${MG_CHROOT_CACHE:-/var/tmp/mailgate-chroot}
mirror=${MG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the list changes: the cached base is rebuilt.
base_packages="adduser,libmilter1.0.1,libhiredis0.14,libcurl4,libidn2-0,libssl3,libsystemd0"
base=$cache/base-2
start=$(date +%s)

fail() { echo "test-install-order.sh: $*" >&2; exit 1; }

prepare_base() {
  [ -e "$base/.complete" ] && return 0
  rm -rf "$base"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include="$base_packages" bookworm "$base" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log"; fail "debootstrap failed"; }
  printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
  chmod 0755 "$base/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$base/etc/resolv.conf"
  printf 'postfix postfix/main_mailer_type select Local only\npostfix postfix/mailname string mg-test.localdomain\n' |
    chroot "$base" debconf-set-selections
  echo mg-test >"$base/etc/hostname"
  # The MTAs' packages are downloaded now: the roots install them offline.
  # (Postfix and Exim conflict: one download each.)
  chroot "$base" sh -c "apt-get -q update && apt-get -q -y --download-only install postfix rsyslog &&
    apt-get -q -y --download-only install exim4-daemon-heavy" \
    >"$cache/download.log" 2>&1 || { tail -20 "$cache/download.log"; fail "downloading the MTA packages failed"; }
  touch "$base/.complete"
}

# Whatever the .deb needs beyond the base is downloaded into the base's cache
# (nothing to fetch when the base already has it).
download_deb_depends() {
  cp "$deb" "$base/tmp/mailgate.deb"
  chroot "$base" apt-get -q -y --download-only install /tmp/mailgate.deb >>"$cache/download.log" 2>&1 ||
    { tail -20 "$cache/download.log"; fail "downloading what the package depends on failed"; }
  rm -f "$base/tmp/mailgate.deb"
}

# The fake 0.1.0-1 package: the old maintainer script, the config file, no binaries.
build_old_deb() {
  local d=$cache/old-deb
  rm -rf "$d"
  mkdir -p "$d/DEBIAN" "$d/etc/mailgate"
  cp "$top/contrib/mailgate.conf" "$d/etc/mailgate/mailgate.conf"
  cp "$top/tests/package/mailgate-0.1.0-1.postinst" "$d/DEBIAN/postinst"
  chmod 0755 "$d/DEBIAN/postinst"
  echo /etc/mailgate/mailgate.conf >"$d/DEBIAN/conffiles"
  printf 'Package: mailgate\nVersion: 0.1.0-1\nArchitecture: amd64\nDepends: adduser\nMaintainer: t <t@example.com>\nDescription: mailgate 0.1.0-1 maintainer scripts only (test)\n' \
    >"$d/DEBIAN/control"
  dpkg-deb -b "$d" "$cache/mailgate_0.1.0-1_amd64.deb" >/dev/null
}

# --- inside the namespaces ------------------------------------------------
# R: run a shell command in the root.
R() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
  /bin/bash -c "$1"; }

apt_install() {
  R "apt-get -q -y --no-install-recommends -o Dpkg::Use-Pty=0 install $*" >>"$log" 2>&1 ||
    { tail -30 "$log"; fail "$scenario: apt-get install $* failed"; }
}

enter_root() {
  local d=$cache/run/$scenario
  rm -rf "$d"
  mkdir -p "$d/upper" "$d/work" "$d/root"
  root=$d/root
  log=$d/log
  : >"$log"
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$d/upper,workdir=$d/work" "$root"
  mount -t proc proc "$root/proc"
  mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
  for n in null zero full random urandom tty; do
    touch "$root/dev/$n"
    mount --bind "/dev/$n" "$root/dev/$n"
  done
  mount -t tmpfs -o mode=0755 tmpfs "$root/run"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  cp "$deb" "$cache/mailgate_0.1.0-1_amd64.deb" "$root/tmp/"
  ip link set lo up
  # The shipped configuration's Redis, 127.0.0.1:6379, in this network namespace only.
  redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$d/redis.pid" --logfile "$d/redis.log" >/dev/null
}

# Starts /usr/sbin/mailgate-NAME as its unit would: ExecStart, User, Group, the
# user's groups from /etc/group (systemd sets them) plus SupplementaryGroups.
start_unit() {
  local unit=$root/lib/systemd/system/mailgate-$1.service user group extra exec groups
  user=$(sed -n 's/^User=//p' "$unit")
  group=$(sed -n 's/^Group=//p' "$unit")
  extra=$(sed -n 's/^SupplementaryGroups=//p' "$unit")
  exec=$(sed -n 's/^ExecStart=//p' "$unit")
  groups=$(R "id -G $user" | tr ' ' '\n')
  for g in $extra; do groups+=$'\n'$(R "getent group $g | cut -d: -f3"); done
  groups=$(echo "$groups" | sort -un | paste -sd,)
  R "setpriv --reuid=$user --regid=$group --groups=$groups -- $exec </dev/null >>/tmp/mailgate-$1.out 2>&1 &
     echo \$! >/tmp/mailgate-$1.pid"
}

daemon_groups() {  # the group names of a running daemon (/proc/PID/status)
  local pid names=()
  pid=$(cat "$root/tmp/mailgate-$1.pid")
  [ -d "/proc/$pid" ] || { cat "$root/tmp/mailgate-$1.out"; fail "$scenario: mailgate-$1 is not running"; }
  for gid in $(sed -n 's/^Groups:\s*//p' "/proc/$pid/status"); do names+=("$(R "getent group $gid | cut -d: -f1")"); done
  echo "${names[*]}"
}

wait_socket() {
  for _ in $(seq 100); do [ -S "$root$1" ] && return 0; sleep 0.1; done
  fail "$scenario: no socket $1"
}

# can_connect USER PATH: a connect() as USER with only USER's primary group,
# as Postfix's and Exim's processes run.
can_connect() {
  R "setpriv --reuid=$1 --regid=\$(id -g $1) --clear-groups -- perl -MIO::Socket::UNIX \
     -e 'IO::Socket::UNIX->new(Peer => \$ARGV[0]) or exit 1' $2"
}

expect() {  # expect WHAT EXPECTED ACTUAL
  [ "$2" = "$3" ] || fail "$scenario: $1: expected '$2', got '$3'"
  echo "  ok: $1: $3"
}

check_sockets() {  # check_sockets MTA_USER: the daemons' sockets, reached by that user only
  local s
  for s in policy auth milter; do
    wait_socket /var/spool/postfix/mailgate/$s
    expect "socket $s" "mailgate:$2:660" "$(R "stat -c %U:%G:%a /var/spool/postfix/mailgate/$s")"
    can_connect "$1" /var/spool/postfix/mailgate/$s || fail "$scenario: $1 cannot connect to $s"
    ! can_connect nobody /var/spool/postfix/mailgate/$s 2>/dev/null || fail "$scenario: nobody can connect to $s"
  done
  echo "  ok: $1 connects to policy, auth and milter, nobody does not"
}

check_groups() {  # the user's groups, and each daemon's
  expect "id -Gn mailgate" mailgate "$(R 'id -Gn mailgate')"
  expect "groups of mailgate-policy" mailgate "$(daemon_groups policy)"
  expect "groups of mailgate-milter" mailgate "$(daemon_groups milter)"
  if [ -e "$root/tmp/mailgate-tracker.pid" ]; then
    expect "groups of mailgate-tracker" "adm mailgate" "$(daemon_groups tracker | tr ' ' '\n' | sort | paste -sd' ')"
  fi
}

sockdir_state() { R "stat -c %U:%G:%a /var/spool/postfix/mailgate"; }

scenario_postfix_then_mailgate() {
  apt_install rsyslog postfix
  apt_install /tmp/$(basename "$deb")
  expect "socket directory" mailgate:postfix:2750 "$(sockdir_state)"
  R "rsyslogd && postfix start" >>"$log" 2>&1 || fail "$scenario: rsyslogd or postfix did not start"
  for u in policy milter tracker; do start_unit $u; done
  check_sockets postfix postfix
  # The documented log setup: rsyslog's /var/log/mail.log (root:adm 0640), read
  # by the packaged tracker as mailgate (adm from its unit).
  R "echo 'Subject: t' | sendmail -f root root" >>"$log" 2>&1
  for _ in $(seq 100); do grep -q "status=sent" "$root/var/log/mail.log" 2>/dev/null && break; sleep 0.1; done
  expect "/var/log/mail.log" root:adm:640 "$(R "stat -c %U:%G:%a /var/log/mail.log")"
  local size offset=""
  for _ in $(seq 100); do
    size=$(stat -c %s "$root/var/log/mail.log")
    offset=$(R "mailgatectl status" | sed -n 's|^tracker .*: *alive, .*/var/log/mail.log at \([0-9]*\)$|\1|p' || true)
    [ "$offset" = "$size" ] && break
    sleep 0.2
  done
  expect "tracker offset in /var/log/mail.log (its size)" "$size" "$offset"
  check_groups
  R "postfix stop" >>"$log" 2>&1 || true
}

scenario_mailgate_then_postfix() {
  apt_install /tmp/$(basename "$deb")
  expect "socket directory before Postfix" mailgate:mailgate:2750 "$(sockdir_state)"
  for u in policy milter; do start_unit $u; done
  wait_socket /var/spool/postfix/mailgate/milter
  apt_install postfix
  grep -q "Processing triggers for mailgate" "$log" || fail "$scenario: the trigger did not run"
  expect "socket directory after Postfix (trigger)" mailgate:postfix:2750 "$(sockdir_state)"
  check_sockets postfix postfix  # the running daemons' sockets, given the group by the trigger
  check_groups
  # An admin's change survives a reconfigure; so does a dpkg-statoverride entry.
  R "chmod 2770 /var/spool/postfix/mailgate && dpkg-reconfigure -fnoninteractive mailgate" >>"$log" 2>&1
  expect "admin's mode after dpkg-reconfigure" mailgate:postfix:2770 "$(sockdir_state)"
  R "rm -r /var/spool/postfix/mailgate && dpkg-statoverride --add mailgate adm 2710 /var/spool/postfix/mailgate &&
     dpkg-reconfigure -fnoninteractive mailgate" >>"$log" 2>&1
  expect "statoverride's directory" mailgate:adm:2710 "$(sockdir_state)"
}

scenario_exim_only() {
  apt_install exim4-daemon-heavy
  apt_install /tmp/$(basename "$deb")
  expect "socket directory" mailgate:Debian-exim:2750 "$(sockdir_state)"
  for u in policy milter; do start_unit $u; done
  check_sockets Debian-exim Debian-exim
  check_groups
}

scenario_upgrade_on_exim() {
  apt_install exim4-daemon-heavy
  apt_install /tmp/mailgate_0.1.0-1_amd64.deb
  expect "0.1.0-1: groups of the user" "mailgate adm Debian-exim" "$(R 'id -Gn mailgate')"
  expect "0.1.0-1: socket directory" mailgate:mailgate:750 "$(sockdir_state)"
  apt_install /tmp/$(basename "$deb")
  expect "socket directory after the upgrade" mailgate:Debian-exim:2750 "$(sockdir_state)"
  for u in policy milter; do start_unit $u; done
  check_sockets Debian-exim Debian-exim
  check_groups
}

if [ "${1:-}" = --inside ]; then  # re-executed in new namespaces: --inside SCENARIO DEB
  scenario=$2
  deb=$(readlink -f "$3")
  enter_root
  echo "$scenario:"
  "scenario_${scenario//-/_}"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || fail "needs root"
if [ "${1:-}" = --prepare ]; then prepare_base; exit 0; fi
[ -f "$deb" ] || fail "usage: test-install-order.sh DEB"
prepare_base
download_deb_depends
build_old_deb
prepared=$(( $(date +%s) - start ))
scenarios=${MG_INSTALL_ORDERS:-postfix-then-mailgate mailgate-then-postfix exim-only upgrade-on-exim}
for scenario in $scenarios; do
  # Killing the namespace's init ends every process the scenario started.
  unshare --mount --net --pid --fork --mount-proc bash "$0" --inside "$scenario" "$deb"
  rm -rf "$cache/run/$scenario"  # kept when the scenario failed
done
echo "test-install-order.sh: install orders passed: $scenarios ($(( $(date +%s) - start )) s, of which $prepared s preparing the base)"
