#!/usr/bin/env bash
# What the test suite needs from the machine beyond the virtualenv: installs missing Debian
# packages (as root) and starts PostgreSQL if it is down. Safe to run again.
set -euo pipefail

need_apt=()
# command -> Debian package; appended to as features need them
declare -A packages=(
  [chromium]=chromium [chromedriver]=chromium-driver  # preview gallery browser test
  [promtool]=prometheus [prometheus]=prometheus  # deploy/ tests: promtool check, a real Prometheus scrape
  [smtp-sink]=postfix  # bench/: Postfix's smtp-sink test server (/usr/sbin/smtp-sink)
  [node]=nodejs [npm]=npm  # tests/templates: the e-mail client lint (Can I email data, an npm package)
)
for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("${packages[$cmd]}")
done
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need_apt[*]} (run as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  # postfix is wanted only for smtp-sink: "No configuration" leaves no MTA configured, started or on port 25.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL (state store tests): start the local cluster if it is installed and down.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
