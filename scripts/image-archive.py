#!/usr/bin/env python3
"""Writes a folder as a one-layer image in the docker-archive format.

    scripts/image-archive.py --tag REF --rootfs DIR --out FILE.tar
        [--env K=V]... [--entrypoint JSON] [--cmd JSON] [--user USER]
        [--workdir DIR] [--root-owned]

The archive is what `docker save` writes for one tag: manifest.json, the
image config (<digest>.json) and the layer (<digest>/layer.tar,
uncompressed), so `docker load`, `ctr images import` and a kind node read
it. The layer keeps the folder's modes, symlinks and hard links, and with
--root-owned makes every file root's (for a folder assembled by an ordinary
user); without it, files keep their owners (a debootstrap root file
system). Entries are sorted and the layer's modification times are clamped
to SOURCE_DATE_EPOCH when that is set, so the same folder gives the same
layer digest. The contents of /dev, /proc and /sys are left out: the
runtime mounts its own.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time

SKIP_CONTENTS = {"dev", "proc", "sys"}
CHUNK = 1 << 20


def layer_entries(rootfs):
    """Yields (path on disk, name in the layer), parents before children."""
    for top, dirs, files in os.walk(rootfs):
        rel_top = os.path.relpath(top, rootfs)
        dirs.sort()
        if rel_top in SKIP_CONTENTS:
            dirs[:] = []
            continue
        for name in sorted(dirs + files):
            path = os.path.join(top, name)
            yield path, os.path.normpath(os.path.join(rel_top, name))


def write_layer(rootfs, out, root_owned, mtime_limit):
    hasher = hashlib.sha256()

    class Hashing(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            hasher.update(b)
            return out.write(b)

    with tarfile.open(fileobj=Hashing(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, arcname in layer_entries(rootfs):
            info = tar.gettarinfo(path, arcname=arcname)
            if info is None:  # sockets: nothing an image can hold
                continue
            if root_owned:
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
            if mtime_limit is not None and info.mtime > mtime_limit:
                info.mtime = mtime_limit
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return hasher.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--entrypoint", type=json.loads)
    ap.add_argument("--cmd", type=json.loads)
    ap.add_argument("--user")
    ap.add_argument("--workdir")
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--root-owned", action="store_true")
    args = ap.parse_args()

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    mtime_limit = int(epoch) if epoch else None
    created = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime_limit if mtime_limit is not None else time.time())
    )

    out_dir = os.path.dirname(os.path.abspath(args.out))
    with tempfile.TemporaryFile(dir=out_dir) as layer:
        layer_digest = write_layer(args.rootfs, layer, args.root_owned, mtime_limit)
        layer_size = layer.tell()

        config = {}
        if args.env:
            config["Env"] = args.env
        if args.entrypoint is not None:
            config["Entrypoint"] = args.entrypoint
        if args.cmd is not None:
            config["Cmd"] = args.cmd
        if args.user:
            config["User"] = args.user
        if args.workdir:
            config["WorkingDir"] = args.workdir
        if args.label:
            config["Labels"] = dict(label.split("=", 1) for label in args.label)
        image = {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_digest]},
            "history": [{"created": created, "created_by": "scripts/image-archive.py"}],
        }
        config_bytes = json.dumps(image, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        layer_name = layer_digest + "/layer.tar"
        manifest = [{"Config": config_name, "RepoTags": [args.tag], "Layers": [layer_name]}]

        tmp_out = args.out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:

            def add(name, data, size=None):
                info = tarfile.TarInfo(name)
                info.mode = 0o644
                info.mtime = mtime_limit if mtime_limit is not None else int(time.time())
                if isinstance(data, bytes):
                    info.size = len(data)
                    data = io.BytesIO(data)
                else:
                    info.size = size
                tar.addfile(info, data)

            layer.seek(0)
            add(layer_name, layer, layer_size)
            add(config_name, config_bytes)
            add("manifest.json", json.dumps(manifest).encode())
        os.replace(tmp_out, args.out)
    print(json.dumps({"tag": args.tag, "layer": "sha256:" + layer_digest, "layer_bytes": layer_size}))


if __name__ == "__main__":
    sys.exit(main())
