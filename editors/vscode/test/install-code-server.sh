#!/usr/bin/env bash
# Install code-server (VS Code in the browser) from npm into DIR, for the end-to-end test.
#
#   test/install-code-server.sh DIR [VERSION]      (VERSION defaults to 4.100.3 = Code 1.100.3)
#
# A plain `npm install code-server` fails on this kind of machine in four ways; this script
# takes the way round each (see shared/reference/real-editors.md):
#   1. as root its post-install refuses to run without npm_config_unsafe_perm=true;
#   2. the `kerberos` native module needs Debian's libkrb5-dev (installed here when root);
#   3. @vscode/ripgrep's post-install downloads rg from outside the registries: its packages are
#      installed with --ignore-scripts, Debian's /usr/bin/rg is put where the download would go
#      (the post-install then skips the download) and the native modules are rebuilt;
#   4. node-pty runs `npx node-gyp`, which needs npm_config_yes=true.
# code-server's own post-install (lib/vscode and lib/vscode/extensions dependencies, two
# symlinks) is replayed step by step for the same reason. Needs Node 20, gcc/make/python3.
# Idempotent: DIR/.installed marks a finished install.
set -euo pipefail

DIR=${1:?usage: install-code-server.sh DIR [VERSION]}
VERSION=${2:-4.100.3}
if [ -f "$DIR/.installed" ] && [ "$(cat "$DIR/.installed")" = "$VERSION" ]; then
  exit 0
fi

need_debian() {
  local missing=()
  command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
  [ -e /usr/include/gssapi/gssapi.h ] || [ -e /usr/include/krb5.h ] || missing+=(libkrb5-dev)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ]; then
      apt-get install -y "${missing[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
    else
      echo "install-code-server: missing Debian packages: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
      exit 1
    fi
  fi
}
need_debian

export npm_config_unsafe_perm=true npm_config_yes=true npm_config_audit=false npm_config_fund=false
rm -rf "$DIR"
mkdir -p "$DIR"
cd "$DIR"
echo '{"name": "gap-ls-e2e-code-server", "version": "0.0.0", "private": true}' > package.json
npm install --ignore-scripts --no-save "code-server@$VERSION" >npm-install.log 2>&1
npm rebuild argon2 >>npm-install.log 2>&1            # code-server's own native dependency

CODE="$DIR/node_modules/code-server/lib/vscode"
(
  cd "$CODE"
  npm install --omit=dev --ignore-scripts >>"$DIR/npm-install.log" 2>&1
  mkdir -p node_modules/@vscode/ripgrep/bin
  cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  npm rebuild >>"$DIR/npm-install.log" 2>&1          # kerberos, node-pty, spdlog, ... against local Node headers
  ln -sfn node_modules node_modules.asar
  (cd bin/remote-cli && ln -sfn code-linux.sh code-server)
  (cd bin/helpers && ln -sfn browser-linux.sh browser.sh)
  cd extensions
  npm install --omit=dev >>"$DIR/npm-install.log" 2>&1
)
HOME="$DIR/.home" "$DIR/node_modules/.bin/code-server" --version >/dev/null
rm -rf "$DIR/.home"
echo "$VERSION" > "$DIR/.installed"
echo "code-server $VERSION installed in $DIR"
