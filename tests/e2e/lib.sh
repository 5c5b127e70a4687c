# shellcheck shell=bash
# Shared by tests/e2e/run and tests/e2e/kind/build-images (sourced, not run).

# The operator and sidecar images: the chart's repositories
# (charts/zookube/values.yaml), with a tag of the run's own, so the chart
# needs only `image.tag` and `sidecarImage.tag`.
ZOOKUBE_IMAGE_PREFIX=ghcr.io/zookube
# Their names, which are also docker/Dockerfile's targets and the archive
# names scripts/build-images writes (used by the scripts that source this).
# shellcheck disable=SC2034
ZOOKUBE_IMAGE_TARGETS=(zk-operator zk-sidecar)

# image_ref NAME TAG: the full reference of a built image.
image_ref() {
  printf '%s/%s:%s\n' "$ZOOKUBE_IMAGE_PREFIX" "$1" "$2"
}
