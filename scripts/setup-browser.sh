#!/usr/bin/env bash
# Headless Chromium + chromedriver (Debian packages) for the HTML report's browser tests (.ci/run calls
# this; the main job does not need a browser). Installed only when missing and only where we are root
# with apt; elsewhere the browser tests fail saying what is missing.
set -uo pipefail
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } \
      >/tmp/kernelwright-chromium-install.log 2>&1 \
      || echo "warning: could not install chromium (see /tmp/kernelwright-chromium-install.log)" >&2
  else
    echo "note: chromium/chromedriver missing and not root with apt: the report browser tests will fail" >&2
  fi
fi
