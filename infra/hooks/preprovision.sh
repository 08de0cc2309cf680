#!/bin/sh
# azd preprovision: give the azd environment a CHAINLIT_AUTH_SECRET (the UI's session-signing
# secret) when it has none, so main.bicep stores it in Key Vault. Made once and kept: a new one
# would sign every UI user out. Rotate with `azd env set CHAINLIT_AUTH_SECRET <new>`.
set -eu
if [ -z "$(azd env get-value CHAINLIT_AUTH_SECRET 2>/dev/null || true)" ]; then
  azd env set CHAINLIT_AUTH_SECRET "$(od -An -N48 -tx1 /dev/urandom | tr -d ' \n')" >/dev/null
  echo "preprovision: made CHAINLIT_AUTH_SECRET for this azd environment"
fi
