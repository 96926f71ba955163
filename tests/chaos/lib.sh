# shellcheck shell=bash
# tests/chaos/lib.sh: ../helpers.bash sources lib.sh from the test file's
# own folder; the chaos tests live one level down, so this passes it on.
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
