#!/usr/bin/env bash
# Bootstrap the reconciler on a fresh Debian server (run as root; safe to run again).
#
#   deploy/bootstrap.sh [--dry-run]
#
# 1. installs git, python3-venv and (when no Docker is installed) docker.io with apt;
# 2. creates the venv /opt/reconciler and installs this checkout into it (pip install -e);
# 3. `reconciler init /srv/desired-state.git --state-dir /var/lib/reconciler`
#    (creates and seeds the bare repo, or adopts it; installs its git hooks);
# 4. creates /etc/reconciler/env (secret references, mode 0600) if it does not exist;
# 5. installs deploy/systemd/reconciler.service as /etc/systemd/system/reconciler.service,
#    enables it and (re)starts it;
# 6. prints how to add the server as a git remote on your laptop.
#
# It writes nothing but those paths (and the packages apt installs). --dry-run prints every
# command that would change something, runs none of them, and needs no root.
set -euo pipefail

readonly VENV=/opt/reconciler
readonly DESIRED_REPO=/srv/desired-state.git
readonly STATE_DIR=/var/lib/reconciler
readonly ETC_DIR=/etc/reconciler
readonly ENV_FILE=$ETC_DIR/env
readonly UNIT_NAME=reconciler.service
readonly UNIT_DIR=/etc/systemd/system
readonly UNIT_DST=$UNIT_DIR/$UNIT_NAME
readonly DROPIN_DIR=$UNIT_DIR/$UNIT_NAME.d
readonly DROPIN=$DROPIN_DIR/checkout-in-home.conf

script_dir=${BASH_SOURCE[0]%/*}
[[ $script_dir == "${BASH_SOURCE[0]}" ]] && script_dir=.
REPO_ROOT=$(cd "$script_dir/.." && pwd -P)
readonly REPO_ROOT
readonly UNIT_SRC=$REPO_ROOT/deploy/systemd/$UNIT_NAME

DRY_RUN=0

# Print a here-document with no external command (works with an empty PATH).
heredoc() {
    local text
    IFS= read -r -d '' text || true
    printf '%s' "$text"
}

usage() {
    heredoc <<EOF
usage: $0 [--dry-run]

Installs the reconciler from $REPO_ROOT on this Debian server:
venv $VENV, desired-state repo $DESIRED_REPO, state $STATE_DIR,
secrets $ENV_FILE, systemd unit $UNIT_DST.

  --dry-run   print the commands that would change something; run none of them
EOF
}

while (($#)); do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }

# Run a command that changes the system, or only print it with --dry-run.
run() {
    if ((DRY_RUN)); then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# write_file PATH MODE < content: (re)write PATH only when its content differs.
write_file() {
    local path=$1 mode=$2 content
    IFS= read -r -d '' content || true
    content=${content%$'\n'}
    if [[ -f $path && "$(<"$path")" == "$content" ]]; then
        return 1
    fi
    if ((DRY_RUN)); then
        printf '+ write %q (mode %s):\n' "$path" "$mode"
        local line
        while IFS= read -r line; do printf '    | %s\n' "$line"; done <<<"$content"
    else
        local tmp
        tmp=$(mktemp "$path.XXXXXX")
        printf '%s\n' "$content" >"$tmp"
        chmod "$mode" "$tmp"
        mv -f "$tmp" "$path"
    fi
    return 0
}

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

have() { command -v "$1" >/dev/null 2>&1; }

# ── preconditions ────────────────────────────────────────────────────────────────────────
if ((DRY_RUN)); then
    say "dry run: nothing is changed; commands are printed with a leading +"
elif ((EUID != 0)); then
    echo "error: run as root (or with --dry-run to see what it would do)" >&2
    exit 1
fi
if [[ ! -f /etc/debian_version ]]; then
    ((DRY_RUN)) || { echo "error: this script is for Debian (no /etc/debian_version)" >&2; exit 1; }
    warn "not a Debian system (no /etc/debian_version)"
fi
if [[ ! -f $UNIT_SRC || ! -f $REPO_ROOT/pyproject.toml ]]; then
    echo "error: $REPO_ROOT does not look like the reconciler checkout" >&2
    exit 1
fi

# ── 1. system packages ───────────────────────────────────────────────────────────────────
packages=()
for pkg in git python3-venv; do
    pkg_installed "$pkg" || packages+=("$pkg")
done
if ! have docker && ! pkg_installed docker.io && ! pkg_installed docker-ce; then
    packages+=(docker.io)
fi
if ((${#packages[@]})); then
    say "installing ${packages[*]}"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
else
    say "system packages present (git, python3-venv, docker)"
fi

# ── 2. the venv and this checkout ────────────────────────────────────────────────────────
if [[ ! -x $VENV/bin/python ]]; then
    say "creating the venv $VENV"
    run python3 -m venv "$VENV"
fi
say "installing $REPO_ROOT into $VENV (editable)"
run "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$REPO_ROOT"

# ── 3. the desired-state repo and the state dir ──────────────────────────────────────────
say "initialising $DESIRED_REPO"
run "$VENV/bin/reconciler" init "$DESIRED_REPO" --state-dir "$STATE_DIR"

# ── 4. secrets by reference ──────────────────────────────────────────────────────────────
if [[ ! -d $ETC_DIR ]]; then
    run install -d -m 0700 "$ETC_DIR"
fi
if [[ ! -e $ENV_FILE ]]; then
    say "creating $ENV_FILE (empty template; never overwritten)"
    write_file "$ENV_FILE" 0600 <<'EOF' || true
# Environment of reconciler.service (KEY=value lines). The desired state refers to secrets
# by name only, e.g. an OpenWebUI cloud endpoint with `api_key: {env: OPENAI_API_KEY}`.
#OPENAI_API_KEY=sk-...
EOF
fi

# ── 5. the systemd unit ──────────────────────────────────────────────────────────────────
unit_changed=0
if [[ ! -f $UNIT_DST ]] || ! cmp -s "$UNIT_SRC" "$UNIT_DST"; then
    say "installing $UNIT_DST"
    run install -m 0644 "$UNIT_SRC" "$UNIT_DST"
    unit_changed=1
fi
# ProtectHome=yes would hide an editable checkout kept under a home directory.
case $REPO_ROOT/ in
    /root/* | /home/* | /run/user/*)
        if [[ ! -d $DROPIN_DIR ]]; then
            run install -d -m 0755 "$DROPIN_DIR"
        fi
        if write_file "$DROPIN" 0644 <<EOF; then
# Written by deploy/bootstrap.sh: the checkout $REPO_ROOT is under a home directory.
[Service]
ProtectHome=read-only
EOF
            unit_changed=1
        fi
        ;;
esac
if ((DRY_RUN)) || [[ -d /run/systemd/system ]]; then
    if ((unit_changed)); then
        run systemctl daemon-reload
    fi
    run systemctl enable "$UNIT_NAME"
    # Restart so that new code from the checkout and a changed unit take effect.
    run systemctl restart "$UNIT_NAME"
else
    warn "systemd is not running here; the unit is installed but not started."
    warn "start it by hand: $VENV/bin/reconciler serve --repo $DESIRED_REPO --state-dir $STATE_DIR"
fi

# ── 6. next steps ────────────────────────────────────────────────────────────────────────
host=${HOSTNAME:-this-server}
heredoc <<EOF

Done. On your laptop, in a clone of the desired state:

    git clone root@$host:$DESIRED_REPO llm-server && cd llm-server     # first time, or:
    git remote add server root@$host:$DESIRED_REPO
    git push server main        # validated on push; the reconcile streams back as remote: lines

On this server:

    systemctl status $UNIT_NAME
    $VENV/bin/reconciler status --state-dir $STATE_DIR
    $VENV/bin/reconciler logs -f --state-dir $STATE_DIR
    systemctl reload $UNIT_NAME    # SIGHUP: reconcile now
EOF
