#!/usr/bin/env bash
# Regenerate the Python code for proto/ into src/: envplane.v1, and the UV Venv Manager compat
# protocol (package envmanager, generated as envplane.envmanager). `make proto` runs this;
# tests/api/test_proto_generated.py checks that the committed files match a fresh generation.
set -euo pipefail
out="${1:-src}"
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/envplane/v1/*.proto
touch "$out/envplane/v1/__init__.py"

# The compat proto keeps its own file name (envmanager/env_manager.proto): clients generated from
# the same file load beside it in one process. Its code goes under envplane/, imports fixed up.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m grpc_tools.protoc -I proto \
  --python_out="$tmp" --grpc_python_out="$tmp" --mypy_out="$tmp" --mypy_grpc_out="$tmp" \
  proto/envmanager/env_manager.proto
mkdir -p "$out/envplane/envmanager"
for f in "$tmp"/envmanager/*; do
  sed -e 's/^from envmanager import /from envplane.envmanager import /' \
      -e 's/^import envmanager\.env_manager_pb2$/import envplane.envmanager.env_manager_pb2/' \
      -e 's/envmanager\.env_manager_pb2\./envplane.envmanager.env_manager_pb2./g' \
      "$f" > "$out/envplane/envmanager/$(basename "$f")"
done
touch "$out/envplane/envmanager/__init__.py"

# The original container manager's protocol (package env_manager.v1), the same way: its own
# file name, its code under envplane/env_manager/v1 with the imports fixed up.
python -m grpc_tools.protoc -I proto \
  --python_out="$tmp" --grpc_python_out="$tmp" --mypy_out="$tmp" --mypy_grpc_out="$tmp" \
  proto/env_manager/v1/env_manager.proto
mkdir -p "$out/envplane/env_manager/v1"
for f in "$tmp"/env_manager/v1/*; do
  sed -e 's/^from env_manager\.v1 import /from envplane.env_manager.v1 import /' \
      -e 's/^import env_manager\.v1\.env_manager_pb2$/import envplane.env_manager.v1.env_manager_pb2/' \
      -e 's/env_manager\.v1\.env_manager_pb2\./envplane.env_manager.v1.env_manager_pb2./g' \
      "$f" > "$out/envplane/env_manager/v1/$(basename "$f")"
done
touch "$out/envplane/env_manager/__init__.py" "$out/envplane/env_manager/v1/__init__.py"

# The earlier Nextflow plugin's AI-comms protocol (package nf_ai_comms, file nf_ai_comms.proto
# at the root as its clients compile it), generated as envplane.nf_ai_comms.
python -m grpc_tools.protoc -I proto/nf_ai_comms \
  --python_out="$tmp" --grpc_python_out="$tmp" --mypy_out="$tmp" --mypy_grpc_out="$tmp" \
  proto/nf_ai_comms/nf_ai_comms.proto
mkdir -p "$out/envplane/nf_ai_comms"
for f in "$tmp"/nf_ai_comms_pb2*; do
  sed -e 's/^import nf_ai_comms_pb2 as /from envplane.nf_ai_comms import nf_ai_comms_pb2 as /' \
      "$f" > "$out/envplane/nf_ai_comms/$(basename "$f")"
done
touch "$out/envplane/nf_ai_comms/__init__.py"
