#!/usr/bin/env bash
# Regenerate the Python code for proto/ into src/ (package envplane.v1). `make proto` runs this;
# tests/api/test_proto_generated.py checks that the committed files match a fresh generation.
set -euo pipefail
out="${1:-src}"
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/envplane/v1/*.proto
touch "$out/envplane/v1/__init__.py"
