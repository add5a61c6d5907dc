#!/usr/bin/env bash
# Installs the original MemGPT (pymemgpt 0.3.25 and 0.2.11) into scratch venvs for the side-by-side benchmark.
# Never a project dependency: the venvs live under .bench/ (gitignored). Usage: benchmarks/peer/setup.sh [0325|0211|all]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEER="${PEER:-$ROOT/.bench/peer}"
WHICH="${1:-all}"
mkdir -p "$PEER/dl"
cd "$PEER"

setup_0325() {
  [ -x venv325/bin/python ] || python3 -m venv venv325
  ./venv325/bin/pip download pymemgpt==0.3.25 --no-deps -d dl -q
  ./venv325/bin/pip install --no-deps dl/pymemgpt-0.3.25-py3-none-any.whl -q
  # pymemgpt 0.3.25's declared requirements, minus the optional extras; click pinned because typer 0.9 breaks on 8.2.
  ./venv325/bin/pip install -q "chromadb>=0.5.0,<0.6.0" "demjson3>=3.0.6,<4.0.0" "docstring-parser>=0.15,<0.16" \
    "docx2txt>=0.8,<0.9" "html2text>=2020.1.16,<2021.0.0" "httpx>=0.25.2,<0.26.0" "httpx-sse>=0.4.0,<0.5.0" \
    "llama-index>=0.10.27,<0.11.0" "llama-index-embeddings-azure-openai>=0.1.6,<0.2.0" \
    "llama-index-embeddings-openai>=0.1.1,<0.2.0" "numpy>=1.26.2,<2.0.0" "prettytable>=3.9.0,<4.0.0" \
    "protobuf==3.20.0" "pydantic>=2.7.4,<3.0.0" "pydantic-settings>=2.2.1,<3.0.0" "python-box>=7.1.1,<8.0.0" \
    "python-multipart>=0.0.9,<0.0.10" "pytz>=2023.3.post1,<2024.0" "pyyaml>=6.0.1,<7.0.0" \
    "questionary>=2.0.1,<3.0.0" "setuptools>=68.2.2,<69.0.0" "sqlalchemy>=2.0.25,<3.0.0" \
    "sqlalchemy-json>=0.7.0,<0.8.0" "sqlalchemy-utils>=0.41.2,<0.42.0" "sqlmodel>=0.0.16,<0.0.17" \
    "tiktoken>=0.5.1,<0.6.0" "tqdm>=4.66.1,<5.0.0" "typer[all]>=0.9.0,<0.10.0" "click==8.1.7"
  echo "pymemgpt 0.3.25 ready in $PEER/venv325"
}

setup_0211() {
  [ -x venv/bin/python ] || python3 -m venv venv
  ./venv/bin/pip download pymemgpt==0.2.11 --no-deps -d dl -q
  ./venv/bin/pip install --no-deps dl/pymemgpt-0.2.11-py3-none-any.whl -q
  # lancedb<0.4 (a declared requirement) is not installable here; it is only imported for the lancedb archival backend.
  ./venv/bin/pip install -q "demjson3>=3.0.6,<4" "docstring-parser>=0.15,<0.16" "docx2txt>=0.8,<0.9" \
    "html2text>=2020.1.16,<2021" "httpx>=0.25.2,<0.26" "llama-index>=0.9.13,<0.10" "numpy>=1.26.2,<2" \
    "prettytable>=3.9,<4" "pydantic>=2.5.2,<3" "pypdf>=3.17.1,<4" "python-box>=7.1.1,<8" \
    "pytz>=2023.3.post1,<2024" "pyyaml>=6.0.1,<7" "questionary>=2.0.1,<3" "setuptools>=68.2.2,<69" \
    "tiktoken>=0.5.1,<0.6" "tqdm>=4.66.1,<5" "typer[all]>=0.9,<0.10" "chromadb>=0.4.18,<0.5.0" "click==8.1.7"
  echo "pymemgpt 0.2.11 ready in $PEER/venv"
}

case "$WHICH" in
  0325) setup_0325 ;;
  0211) setup_0211 ;;
  all) setup_0325; setup_0211 ;;
  *) echo "usage: $0 [0325|0211|all]" >&2; exit 2 ;;
esac
