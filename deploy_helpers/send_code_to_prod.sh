#!/usr/bin/env bash
# Ship this checkout's committed code to a production host and unpack it.
#
#   deploy_helpers/send_code_to_prod.sh PEM HOST
#
#   PEM   the SSH private key for the host (e.g. ~/.ssh/crypto-etl.pem)
#   HOST  [user@]host of the server (e.g. admin@203.0.113.7)
#
# What goes over is `git archive HEAD`: the committed files only, so local
# state (.env with real secrets, .venv, .data, uncommitted edits) never
# leaves this machine; the script refuses to run if any of those paths is
# tracked. The archive is unpacked over REMOTE_DIR (default
# crypto_etl_dashboard, relative to the remote user's home), which keeps the
# server's own root-only .env in place. Then, on the server:
#   cd crypto_etl_dashboard && sudo make up
set -euo pipefail

readonly USAGE="usage: ${0##*/} PEM HOST   (e.g. ~/.ssh/prod.pem admin@203.0.113.7)"
readonly USAGE_EXIT=2

fail_usage() {
    echo "send_code_to_prod: $1" >&2
    echo "$USAGE" >&2
    exit "$USAGE_EXIT"
}

if [[ $# -eq 1 && ($1 == -h || $1 == --help) ]]; then
    echo "$USAGE"
    exit 0
fi
[[ $# -eq 2 ]] || fail_usage "expected 2 arguments, got $#"
pem=$1
host=$2
[[ -f $pem && -r $pem ]] || fail_usage "no readable key file at '$pem'"
# [user@]host with no option-like start, spaces or path: ssh and scp would
# read a leading '-' as an option and a ':' as the start of a remote path.
[[ $host =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] ||
    fail_usage "'$host' is not [user@]host"
remote_dir=${REMOTE_DIR:-crypto_etl_dashboard}
[[ $remote_dir =~ ^[A-Za-z0-9._/-]+$ && $remote_dir != -* ]] ||
    fail_usage "REMOTE_DIR '$remote_dir' must be a plain path"

repo=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$repo" rev-parse --verify --short HEAD) || {
    echo "send_code_to_prod: $repo is not a git checkout with a commit" >&2
    exit 1
}
# git archive ships tracked files only; make sure none of these is tracked.
leaked=$(git -C "$repo" ls-files -- .env .venv .data)
if [[ -n $leaked ]]; then
    echo "send_code_to_prod: refusing to ship local state tracked by git:" >&2
    echo "$leaked" >&2
    exit 1
fi
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
    echo "send_code_to_prod: note: uncommitted changes are not shipped" \
        "(HEAD is $commit)" >&2
fi

archive=$(mktemp "${TMPDIR:-/tmp}/crypto-etl-XXXXXX.tar.gz")
trap 'rm -f "$archive"' EXIT
git -C "$repo" archive --format=tar.gz --output="$archive" HEAD

ssh_options=(-i "$pem" -o IdentitiesOnly=yes -o BatchMode=yes)
remote_archive="crypto-etl-$commit.tar.gz"
scp "${ssh_options[@]}" "$archive" "$host:$remote_archive"
# One remote shell line, expanded here on purpose: every value in it was
# validated above.
# shellcheck disable=SC2029
ssh "${ssh_options[@]}" "$host" \
    "mkdir -p '$remote_dir' && tar -xzf '$remote_archive' -C '$remote_dir' && rm -f '$remote_archive'"
echo "shipped $commit to $host:$remote_dir"
