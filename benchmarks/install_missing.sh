# Sourced by gpu.sh and gpu_notebooks.sh. `install_missing DIST...` installs, with "${PIP[@]}"
# and $PY set by the caller, those of the named distributions that are not installed yet.
install_missing() {
    local missing
    missing=$($PY - "$@" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version

for name in sys.argv[1:]:
    try:
        version(name)
    except PackageNotFoundError:
        print(name)
PYEOF
)
    if [ -n "$missing" ]; then
        echo "installing: $missing"
        "${PIP[@]}" $missing
    fi
}
