#!/bin/sh
# The image's install step, also runnable as a plain script: deploy/image/install.sh [DIR]
# DIR (default .) holds pyproject.toml and uv.lock; it gets DIR/.venv with exactly the locked
# packages of the project and of the `deploy` group (dagster-k8s), no dev tools, bytecode
# compiled. uv is bootstrapped into DIR/.local/uv from PyPI, at the Makefile's version.
set -eu
dir=${1:-.}
uv_version=${UV_VERSION:-0.13.9}
python=${PYTHON:-python3}
cd "$dir"
if [ ! -x .local/uv/bin/uv ]; then
    "$python" -m venv .local/uv
    .local/uv/bin/pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi
UV_PROJECT_ENVIRONMENT=.venv .local/uv/bin/uv sync --frozen --no-dev --group deploy \
    --compile-bytecode --python "$python"
.venv/bin/python -c "import dagster, dagster_k8s, dagster_postgres; print('installed dagster', dagster.__version__, 'with dagster-k8s', dagster_k8s.__version__)"
