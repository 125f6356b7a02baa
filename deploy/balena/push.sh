#!/usr/bin/env bash
# Push the committed tree to a balena fleet: balena builds from a project folder whose root holds
# docker-compose.yml and balena.yml, so this assembles one from `git archive` plus deploy/balena/.
#   deploy/balena/push.sh MY_FLEET [--release-tag version=0.1.0 ...]   (needs balena-cli, logged in)
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: deploy/balena/push.sh FLEET [balena push options]" >&2; exit 2; }
command -v balena > /dev/null || { echo "push.sh: balena-cli not found (npm install --global balena-cli)" >&2; exit 2; }
fleet=$1
shift
root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive --format=tar HEAD | tar -x -C "$work"
cp "$root/deploy/balena/docker-compose.yml" "$root/deploy/balena/balena.yml" "$work/"
echo "pushing $(git -C "$root" rev-parse --short HEAD) to fleet $fleet"
balena push "$fleet" --source "$work" "$@"
