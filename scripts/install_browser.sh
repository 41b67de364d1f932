#!/usr/bin/env bash
# Headless Chromium for the HTML report's browser test (tests/test_html_report.py).
#
# On success prints the browser's path and exits 0: one `command -v` when a browser is already
# installed, else Debian's `chromium` package through apt-get (these machines run as root;
# about 20 s and 300 MB the first time). Where that cannot work (not root, no apt-get, no
# package index reachable) it prints one line saying why and exits 1; the test then skips
# with that line as its reason. `./run.sh test` calls it before pytest.
set -uo pipefail

find_browser() {
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" 2>/dev/null; then return 0; fi
    done
    return 1
}

find_browser && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "chromium is not installed and this user is not root (apt-get install chromium needs root)"
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is not installed and this machine has no apt-get"
    exit 1
fi
echo "installing chromium for the browser test (once)..." >&2
log=$(mktemp -t install-browser.XXXXXX)
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y --no-install-recommends chromium fonts-dejavu-core >>"$log" 2>&1; }
if ! install; then
    apt-get update >>"$log" 2>&1
    if ! install; then
        echo "apt-get install chromium failed: $(tail -n 1 "$log") (log: $log)"
        exit 1
    fi
fi
rm -f "$log"
find_browser || { echo "chromium was installed but is not on PATH"; exit 1; }
