#!/usr/bin/env bash
# Sets the machine up and starts Strata with its embedded defaults: a server
# and a local agent, data under ~/.local/share/strata. Ctrl-C stops both.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec "$STRATA_ROOT/bin/strata" dev "$@"
