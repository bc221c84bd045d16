# shellcheck shell=bash
#
# Container images of the local stack, built without a daemon and without
# pulling anything: buildah (vfs storage, chroot isolation) builds
# images/Containerfile from the release binaries on a base assembled from
# this machine's Debian files, then `ctr images import` hands the images to
# the node's containerd under the names the chart uses by default.
#
#   images_build    build every image into an OCI archive (skips unchanged ones)
#   images_import   import the archives into the node's containerd
#   images_status   print the images and their sizes
#
# Images:
#   docker.io/millpond/operator:<appVersion>   the chart's default operator image
#   docker.io/millpond/consumer:<appVersion>   the operator's default consumer image
#   registry.k8s.io/pause:3.10                 the pod sandbox (e2e/node/pause.c)
#   localhost/millpond-e2e/busybox:local       test workloads (Debian's busybox-static)

_IMAGES_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
declare -F log >/dev/null || source "$_IMAGES_LIB_DIR/common.sh"

IMAGES_REPO=$(cd "$_IMAGES_LIB_DIR/../.." && pwd)
IMAGES_STATE="$MILLPOND_STATE_DIR/images"
IMAGES_BUILDAH_ROOT="$IMAGES_STATE/storage"
IMAGES_VERSION=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' \
    "$IMAGES_REPO/charts/millpond-operator/Chart.yaml")
IMAGES_REGISTRY=${MILLPOND_IMAGE_REGISTRY:-docker.io/millpond}
IMAGE_OPERATOR="$IMAGES_REGISTRY/operator:$IMAGES_VERSION"
IMAGE_CONSUMER="$IMAGES_REGISTRY/consumer:$IMAGES_VERSION"
IMAGE_PAUSE="registry.k8s.io/pause:3.10"
IMAGE_BUSYBOX="localhost/millpond-e2e/busybox:local"
IMAGE_BASE="localhost/millpond/base:cc"

_images_log() { log "images: $*"; }

_buildah() {
    buildah --root "$IMAGES_BUILDAH_ROOT" --runroot "$IMAGES_STATE/run" \
        --storage-driver vfs "$@"
}

# _images_closure BINARY... -> every shared library the binaries load, and
# the dynamic loader, at the paths the binaries look for them.
_images_closure() {
    local bin
    for bin in "$@"; do
        ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
    done | sort -u
}

# _images_base_rootfs DIR BINARY... : the runtime layer: the C libraries the
# binaries link, CA certificates, and the nonroot user (65532), as in
# distroless' cc image.
_images_base_rootfs() {
    local dir=$1 lib
    shift
    rm -rf "$dir" && mkdir -p "$dir/etc/ssl/certs" "$dir/tmp" || return 1
    chmod 1777 "$dir/tmp"
    # The files themselves (cp -L), where the loader looks for them.
    for lib in $(_images_closure "$@"); do
        mkdir -p "$dir$(dirname "$lib")" && cp -L "$lib" "$dir$lib" || return 1
    done
    cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/" || return 1
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group"
    printf 'hosts: files dns\n' >"$dir/etc/nsswitch.conf"
    mkdir -p "$dir/home/nonroot" && chown 65532:65532 "$dir/home/nonroot"
}

# _images_from_dir NAME DIR [CONFIG...] : commits DIR as image NAME.
_images_from_dir() {
    local name=$1 dir=$2 c
    shift 2
    c=$(_buildah from --pull-never scratch) || return 1
    _buildah copy "$c" "$dir" / >/dev/null || return 1
    (($#)) && { _buildah config "$@" "$c" || return 1; }
    _buildah commit --quiet --rm "$c" "$name" >/dev/null
}

# _images_archive NAME FILE : writes image NAME as an OCI archive.
_images_archive() {
    rm -f "$2" && _buildah push --quiet "$1" "oci-archive:$2:$1" >/dev/null
}

# _images_fresh KEYFILE KEY : true when the archive was built from KEY.
_images_fresh() { [[ -f $1 && $(cat "$1") == "$2" ]]; }

_images_build_product() {
    local dist=$IMAGES_STATE/dist key target bin image
    local bins=("$IMAGES_REPO/target/release/millpond-operator" "$IMAGES_REPO/target/release/millpond-consumer")
    _images_log "cargo build --release of millpond-operator and millpond-consumer"
    (cd "$IMAGES_REPO" && cargo build --release --quiet -p millpond-operator -p millpond-consumer) >&2 ||
        die "images: cargo build failed"
    key=$(cat "${bins[@]}" "$IMAGES_REPO/images/Containerfile" | sha256sum | cut -c1-16)
    if _images_fresh "$IMAGES_STATE/product.key" "$key" &&
        [[ -f $IMAGES_STATE/operator.tar && -f $IMAGES_STATE/consumer.tar ]]; then
        return 0
    fi
    _images_base_rootfs "$IMAGES_STATE/base" "${bins[@]}" || die "images: cannot assemble the base"
    _images_from_dir "$IMAGE_BASE" "$IMAGES_STATE/base" --user 65532:65532 || die "images: base image failed"
    rm -rf "$dist" && mkdir -p "$dist/amd64" && cp "${bins[@]}" "$dist/amd64/"
    for target in operator consumer; do
        image=IMAGE_${target^^}
        _images_log "building ${!image}"
        _buildah bud --quiet --pull-never --isolation chroot --layers=false \
            --build-arg "BASE=$IMAGE_BASE" --target "$target" -t "${!image}" \
            -f "$IMAGES_REPO/images/Containerfile" "$dist" >/dev/null ||
            die "images: building ${!image} failed"
        _images_archive "${!image}" "$IMAGES_STATE/$target.tar" || die "images: cannot write $target.tar"
        bin=$IMAGES_STATE/dist/amd64/millpond-$target
        _images_log "${!image}: $(du -h "$IMAGES_STATE/$target.tar" | cut -f1) archive, binary $(du -h "$bin" | cut -f1)"
    done
    echo "$key" >"$IMAGES_STATE/product.key"
}

_images_build_pause() {
    local src=$IMAGES_REPO/e2e/node/pause.c dir=$IMAGES_STATE/pause-root key
    key=$(sha256sum "$src" | cut -c1-16)
    _images_fresh "$IMAGES_STATE/pause.key" "$key" && [[ -f $IMAGES_STATE/pause.tar ]] && return 0
    _images_log "building $IMAGE_PAUSE from e2e/node/pause.c"
    rm -rf "$dir" && mkdir -p "$dir"
    gcc -static -Os -s -o "$dir/pause" "$src" || die "images: cannot compile pause.c (needs gcc and libc6-dev)"
    _images_from_dir "$IMAGE_PAUSE" "$dir" --entrypoint '["/pause"]' --user 65535:65535 || die "images: pause image failed"
    _images_archive "$IMAGE_PAUSE" "$IMAGES_STATE/pause.tar" && echo "$key" >"$IMAGES_STATE/pause.key"
}

_images_build_busybox() {
    local dir=$IMAGES_STATE/busybox-root key
    ensure_cmd busybox busybox-static
    [[ $(file -b "$(command -v busybox)") == *static* ]] || apt_install busybox-static
    key=$(sha256sum /bin/busybox | cut -c1-16)
    _images_fresh "$IMAGES_STATE/busybox.key" "$key" && [[ -f $IMAGES_STATE/busybox.tar ]] && return 0
    _images_log "building $IMAGE_BUSYBOX from Debian's busybox-static"
    rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/tmp" && chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    /bin/busybox --list | while read -r applet; do
        [[ $applet == busybox ]] || ln -s busybox "$dir/bin/$applet"
    done
    _images_from_dir "$IMAGE_BUSYBOX" "$dir" --entrypoint '["/bin/sh"]' --env PATH=/bin || die "images: busybox image failed"
    _images_archive "$IMAGE_BUSYBOX" "$IMAGES_STATE/busybox.tar" && echo "$key" >"$IMAGES_STATE/busybox.key"
}

_images_build_locked() {
    have buildah || apt_install buildah
    have file || apt_install file
    mkdir -p "$IMAGES_STATE"
    _images_build_pause
    _images_build_busybox
    _images_build_product
}

images_build() { with_lock images _images_build_locked; }

# images_import CTR_ARGS... : imports every archive through `ctr CTR_ARGS...`
# (the node's containerd address), each under its name.
images_import() {
    local name file
    for name in pause busybox operator consumer; do
        file=$IMAGES_STATE/$name.tar
        [[ -f $file ]] || die "images: $file missing (run: e2e/stack images)"
        local image=IMAGE_${name^^}
        # Importing over an existing name fails to unpack on containerd 1.6
        # ("content digest ... not found"): drop the name first. Running
        # containers keep their snapshots.
        ctr "$@" -n k8s.io images rm "${!image}" >/dev/null 2>&1
        ctr "$@" -n k8s.io images import --index-name "${!image}" "$file" >/dev/null ||
            die "images: importing ${!image} into containerd failed"
    done
    _images_log "imported $IMAGE_OPERATOR, $IMAGE_CONSUMER, $IMAGE_PAUSE and $IMAGE_BUSYBOX into the node's containerd"
}

images_status() {
    local name file image
    for name in operator consumer pause busybox; do
        file=$IMAGES_STATE/$name.tar
        image=IMAGE_${name^^}
        if [[ -f $file ]]; then
            echo "images: ${!image} built ($(du -h "$file" | cut -f1) archive)"
        else
            echo "images: ${!image} not built"
        fi
    done
}
