#!/bin/sh
# Installs what the LAN tests need from Debian when it is missing: `ip` (iproute2) and `nft`
# (nftables). Run as root; .ci/run calls it, and the tests call it when they run as root.
set -eu
missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
[ -z "$missing" ] && exit 0
echo "installing$missing for the LAN tests" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
