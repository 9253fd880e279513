#!/usr/bin/env bash
# Debian packages the end-to-end tests need. Idempotent; quiet when all are present.
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)  # Kamal deploys over SSH to this machine in the tests
command -v git >/dev/null 2>&1 || need+=(git)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # headless: the pages as a browser sees them
command -v certutil >/dev/null 2>&1 || need+=(libnss3-tools)  # that Chromium trusting the LAN CA only
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
