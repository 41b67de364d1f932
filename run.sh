#!/usr/bin/env bash
# The two commands of the README:
#   ./run.sh demo [key=value ...]   set up .venv (first run) and run the demo
#   ./run.sh test [pytest args]     set up .venv (first run) and run the test suite
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/bootstrap.sh
export TOKENIZERS_PARALLELISM=false
case "${1:-}" in
    demo) shift; exec .venv/bin/reasonrft demo "$@" ;;
    test) shift
        # headless Chromium for the report's browser test; without one the test skips, saying why
        if browser=$(bash scripts/install_browser.sh); then export REASONRFT_CHROMIUM="$browser"; else export REASONRFT_CHROMIUM_SKIP="$browser"; fi
        exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 900 --durations=10 "$@" ;;
    *) echo "usage: ./run.sh demo|test [args]" >&2; exit 2 ;;
esac
