# shellcheck shell=bash
# Images for the e2e node, without Docker and without a registry; sourced by
# e2e/cluster.sh. See README.md, "The image".
#
#   pause     the pod sandbox: e2e/cluster/pause, a static Go program
#   base      a stand-in for python:3.11-slim-bookworm made with mmdebstrap
#   podgate   the project's own Dockerfile, built by `buildah bud` on that base
#
# Each is an image archive under $CACHE/images, named by a hash of what it is
# made from, so a warm run reuses it. buildah keeps its storage under
# $CACHE/buildah and runs in a private mount namespace whose /var/lib is a
# tmpfs: its blob cache and locks never land on the host.

IMAGE_REPO=podgate.local/podgate
BASE_REPO=podgate.local/python-standin
# What the stand-in is made of; a change here makes a new one.
BASE_SUITE=bookworm
BASE_PACKAGES=python3.11,python3.11-venv,python3-pip-whl,python3-setuptools-whl,python3-wheel-whl,ca-certificates,netbase,tzdata

images_dir() { printf '%s/images' "$CACHE"; }

buildah_private() { # buildah ARGS...: with storage of its own and no host writes
  local b="$CACHE/buildah"
  mkdir -p "$b/root" "$b/tmp" "$b/net"
  printf '[network]\nnetwork_config_dir = "%s"\n' "$b/net" >"$b/containers.conf"
  # The run root (mount state, locks) lives in that tmpfs too: mounts made in
  # the namespace go with it, so no stale mount count survives a call.
  CONTAINERS_CONF="$b/containers.conf" TMPDIR="$b/tmp" \
    unshare --mount --propagation private -- sh -c \
    'mount -t tmpfs podgate-e2e-buildah /var/lib && exec "$@"' sh \
    buildah --root "$b/root" --runroot /var/lib/buildah-run --storage-driver overlay "$@"
}

# prune PREFIX KEEP [IMAGE]: drop the archives named PREFIX-* but KEEP, and the
# images of IMAGE's repository in buildah's storage but IMAGE, so the cache
# holds one of each.
prune() {
  local prefix=$1 keep=$2 image=${3:-} old
  for old in "$(images_dir)/$prefix"-*; do
    if [[ $old != "$keep" && -e $old ]]; then rm -rf "$old"; fi
  done
  [[ -n $image ]] || return 0
  for old in $(buildah_private images --format '{{.Name}}:{{.Tag}}' 2>/dev/null); do
    if [[ $old == "${image%:*}":* && $old != "$image" ]]; then
      buildah_private rmi -f "$old" >/dev/null 2>&1 || true
    fi
  done
  buildah_private rmi --prune >/dev/null 2>&1 || true
}

# image_pause: the pause image archive (built on first use); prints its path.
image_pause() {
  local bin out c
  build_pause
  bin=$(bin_path pause)
  out="$(images_dir)/pause-$(sha256sum <"$bin" | cut -c1-16).tar"
  if [[ ! -f $out ]]; then
    mkdir -p "$(images_dir)"
    c=$(buildah_private from scratch) || die "buildah from scratch failed"
    buildah_private copy "$c" "$bin" /pause >/dev/null
    buildah_private config --entrypoint '["/pause"]' --user 65535:65535 "$c"
    buildah_private commit -q --rm "$c" "$PAUSE_IMAGE" >/dev/null
    buildah_private push -q "$PAUSE_IMAGE" "docker-archive:$out.tmp:$PAUSE_IMAGE" || die "exporting the pause image failed"
    mv -f "$out.tmp" "$out"
  fi
  printf '%s\n' "$out"
}

base_recipe_hash() { declare -f image_base | cat - <(echo "$BASE_SUITE $BASE_PACKAGES") | sha256sum | cut -c1-16; }

# image_base: the stand-in for python:3.11-slim-bookworm, loaded into buildah's
# storage; prints its name. Like the official image: Debian bookworm, Python
# 3.11 answering as /usr/local/bin/python{,3,3.11}, pip/setuptools/wheel
# installed with pip into /usr/local (so the Dockerfile may uninstall them), no
# EXTERNALLY-MANAGED marker, LANG=C.UTF-8, no apt sources left behind. Unlike
# it: Debian's interpreter (3.11.2, at /usr/bin) instead of one built from
# python.org's source, and Debian's pip 23.0.1 / setuptools 66.1.1.
image_base() {
  local tag out sources
  tag="3.11-$BASE_SUITE-$(base_recipe_hash)"
  out="$(images_dir)/rootfs-python-standin-$tag.tar"
  if ! buildah_private inspect --type image "$BASE_REPO:$tag" >/dev/null 2>&1; then
    if [[ ! -f $out ]]; then
      command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
      # The host's own Debian sources: the mirror this machine may reach.
      sources=/etc/apt/sources.list.d/debian.sources
      [[ -f $sources ]] || sources=/etc/apt/sources.list
      log "making the stand-in base image with mmdebstrap ($BASE_SUITE)"
      local t0; t0=$(now)
      mkdir -p "$(images_dir)"
      mmdebstrap --quiet --mode=root --format=tar --variant=minbase --include="$BASE_PACKAGES" \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -ec "
          rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
          set -- /usr/share/python-wheels/pip-*.whl
          python3.11 \"\$1/pip\" install --quiet --no-index --root-user-action=ignore --no-warn-script-location \
            --find-links /usr/share/python-wheels pip setuptools wheel
          for n in python python3 python3.11; do ln -sf /usr/bin/python3.11 /usr/local/bin/\$n; done
          rm -rf /etc/apt/sources.list.d/* /etc/apt/sources.list /var/lib/apt/lists/*"' \
        "$BASE_SUITE" "$out.tmp" "$sources" || die "mmdebstrap failed"
      mv -f "$out.tmp" "$out"
      prune rootfs-python-standin "$out"
      prune python-standin "$(images_dir)/python-standin-$tag.tar" "$BASE_REPO:$tag"
      log "stand-in base made in $(elapsed "$t0")s"
    fi
    local c
    c=$(buildah_private from scratch) || die "buildah from scratch failed"
    buildah_private add "$c" "$out" / >/dev/null
    buildah_private config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd python3 "$c"
    buildah_private commit -q --rm "$c" "$BASE_REPO:$tag" >/dev/null || die "committing the base image failed"
  fi
  printf '%s\n' "$BASE_REPO:$tag"
}

# What podgate's image is built from: the Docker build context.
podgate_inputs_hash() {
  (
    cd "$ROOT"
    # .dockerignore keeps the rest out of the context; these are what COPY reads.
    find Dockerfile .dockerignore requirements.lock pyproject.toml README.md policies webhook \
      -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

# image_podgate: podgate's image from the project's Dockerfile on the stand-in
# base; prints "NAME ARCHIVE".
image_podgate() {
  local base hash name out t0
  base=$(image_base)
  hash=$(podgate_inputs_hash)
  name="$IMAGE_REPO:e2e-$hash"
  out="$(images_dir)/podgate-$hash.tar"
  if [[ ! -f $out ]]; then
    log "building $name from the Dockerfile (buildah bud, base $base)"
    t0=$(now)
    # pip inside the build reaches PyPI the way this host does: through its CA
    # bundle and pip config, mounted for the RUN steps only (never committed).
    local mounts=() f
    for f in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
      [[ -f $f ]] && mounts+=(-v "$f:$f:ro")
    done
    buildah_private bud --quiet --pull=never --isolation chroot --network host --layers \
      "${mounts[@]}" --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=e2e-$hash" \
      -t "$name" -f "$ROOT/Dockerfile" "$ROOT" >"$STATE/logs/image-build.log" 2>&1 ||
      { tail -n 40 "$STATE/logs/image-build.log" >&2; die "buildah bud of the Dockerfile failed"; }
    buildah_private push -q "$name" "docker-archive:$out.tmp:$name" || die "exporting $name failed"
    mv -f "$out.tmp" "$out"
    prune podgate "$out" "$name"
    log "built $name in $(elapsed "$t0")s"
  fi
  printf '%s %s\n' "$name" "$out"
}

# image_archive NAME: NAME (in buildah's storage) as an archive; prints its path.
image_archive() {
  local name=$1 out
  out="$(images_dir)/$(printf '%s' "${name#podgate.local/}" | tr ':/' '--').tar"
  if [[ ! -f $out ]]; then
    mkdir -p "$(images_dir)"
    buildah_private push -q "$name" "docker-archive:$out.tmp:$name" || die "exporting $name failed"
    mv -f "$out.tmp" "$out"
  fi
  printf '%s\n' "$out"
}

# cmd_image: podgate's image and the stand-in base (a Python image that runs
# as root, for the tests of what root images meet) into the node; writes
# their names and digests to images.env for the tests.
cmd_image() {
  pid_of containerd >/dev/null || die "the node is not up; run '$0 node' first"
  local built name out digest base base_out base_digest
  built=$(image_podgate)
  read -r name out <<<"$built"
  digest=$(node_import "$out" "$name")
  base=$(image_base)
  base_out=$(image_archive "$base")
  base_digest=$(node_import "$base_out" "$base")
  {
    printf 'PODGATE_E2E_IMAGE=%s\n' "$name"
    printf 'PODGATE_E2E_IMAGE_DIGEST=%s\n' "$digest"
    printf 'PODGATE_E2E_ROOT_IMAGE=%s@%s\n' "${base%:*}" "$base_digest"
  } >"$(node_dir)/images.env"
  log "imported $name ($digest) and $base into the node"
  cat "$(node_dir)/images.env"
}
