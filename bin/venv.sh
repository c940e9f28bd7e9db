# Sourced by bin/platform and bin/test: a virtual environment inside the checkout (.venv),
# created on first use and reused after, with the project installed into it (editable).
# It never touches the system's or the user's site-packages, so it also works on a Python
# that refuses global installs (PEP 668, "externally-managed-environment").
# Usage: cog_assets_venv [extra]   ->   sets $PY to the environment's python
cog_assets_venv() {
  local extra="${1:-}" venv="${COG_ASSETS_VENV:-$PWD/.venv}"
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
      rm -rf "$venv"
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
      else
        echo "python3 cannot create a virtual environment: install python3-venv (Debian) and retry" >&2
        return 1
      fi
    fi
  fi
  PY="$venv/bin/python"
  # reinstall only when setup.py (the dependency list) or the extra changed
  local stamp="$venv/.cog_assets-$(sha256sum setup.py | cut -c1-16)-${extra:-base}"
  if [ ! -e "$stamp" ]; then
    "$PY" -m pip install --quiet --disable-pip-version-check -e ".${extra:+[$extra]}"
    rm -f "$venv"/.cog_assets-* && touch "$stamp"
  fi
}
