# shellcheck shell=bash
# Shared by tests/kind/run and tests/kind/build-images (sourced, not run).

# The images the suite builds from docker/Dockerfile: the chart's
# repositories (charts/zookube/values.yaml), with a tag of the run's own, so
# the chart needs only `image.tag` and `sidecarImage.tag`.
ZOOKUBE_IMAGE_PREFIX=ghcr.io/zookube
# The Dockerfile's targets, which are also the images' names (used by the
# scripts that source this file).
# shellcheck disable=SC2034
ZOOKUBE_IMAGE_TARGETS=(zk-operator zk-sidecar)

# image_ref TARGET TAG: the full reference of a built image.
image_ref() {
  printf '%s/%s:%s\n' "$ZOOKUBE_IMAGE_PREFIX" "$1" "$2"
}
