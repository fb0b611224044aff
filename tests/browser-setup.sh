#!/bin/sh
# Installs what the dashboard test (tests/dashboard.rs) needs from Debian when it is missing:
# Chromium and its WebDriver (chromedriver). Run as root; .ci/run calls it.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
[ -z "$missing" ] && exit 0
echo "installing$missing for the dashboard test" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
