"""Trains the exported model under torchrun with DDP (gloo on CPU, nccl on GPUs).

    python3 -m torch.distributed.run --nproc_per_node 2 train.py --out RUN --steps 20
    python3 train.py --out RUN --steps 20 --accumulate 2      # one process, same global batch

What it reproduces of `deno task train` (export.json holds the settings):
  data       data/step_NNNNNN.safetensors: the project's batch for step N (written by the export);
             each holds the whole batch, split into micro-batches over ranks x accumulation steps
  rng        the in-graph seed input is (seed, step + 1), and a micro-batch starting at global row
             r0 draws the counters the whole batch would (model.forward(x, row0=r0))
  schedule   linear warmup, then cosine to lrFloor at `steps` (runtime/schedule.ts)
  optimizer  global-norm clip (clip > 0), then AdamW with decoupled weight decay on the tensors the
             spec decays (matrices); constants (frozen) get no gradient and no update
  weights    starts from --init (default: init/, our initializer) or --resume RUN; saves RUN/checkpoint
             (model.safetensors, optimizer.safetensors, run.json) in this project's layout, so
             `deno task sample/eval/train --init-from RUN` read it

The per-step loss printed is the mean over micro-batches and ranks: equal to the project's loss on
the whole batch when every micro-batch has the same number of loss positions (T1: every row has one
image and a fixed-length caption); otherwise it is the usual mean of per-micro-batch means.
"""
import argparse
import datetime
import json
import math
import os
import shutil
import sys

import torch
import torch.distributed as dist

from spec_runtime import read_safetensors, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))


def learning_rate(step, t):
    """runtime/schedule.ts learningRate for 0-based `step`."""
    peak, warmup, total, floor = t["lr"], t["warmup"], t["steps"], t["lrFloor"]
    if step < warmup:
        return peak * (step + 1) / warmup
    if step >= total:
        return floor
    progress = (step - warmup) / (total - warmup)
    return floor + (peak - floor) * (1 + math.cos(math.pi * progress)) / 2


def checkpoint_folder(path):
    """A run directory's checkpoint/ folder, or `path` itself when it holds model.safetensors."""
    if os.path.exists(os.path.join(path, "checkpoint", "model.safetensors")):
        return os.path.join(path, "checkpoint")
    if os.path.exists(os.path.join(path, "model.safetensors")):
        return path
    raise SystemExit(f"error: {path} holds no checkpoint (neither checkpoint/model.safetensors nor model.safetensors)")


def load_weights(model, tensors, source):
    """Copies tensors into the model by tree path; every name and shape must match exactly."""
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    differ = [f"{k} is {list(tensors[k].shape)} in the file, {list(own[k].shape)} in the model"
              for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    if missing or extra or differ:
        lines = [f"{source} does not match the exported model (a checkpoint of another spec or config?):"]
        for label, items in (("missing", missing), ("not in the model", extra), ("different shape", differ)):
            if items:
                lines.append(f"  {label} ({len(items)}): {', '.join(items[:12])}")
        raise SystemExit("error: " + "\n".join(lines))
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(tensors[k].to(p.dtype))


def save_checkpoint(run_dir, model, optimizer, manifest, step, metrics):
    """RUN/checkpoint as runtime/checkpoint.ts writes it: a complete temp folder, then renames."""
    os.makedirs(run_dir, exist_ok=True)
    temp = os.path.join(run_dir, f".tmp-torch-{os.getpid()}")
    os.makedirs(temp, exist_ok=True)
    params = dict(model.named_parameters())
    meta = {"step": step, "spec": manifest["spec"]["name"]}
    write_safetensors(os.path.join(temp, "model.safetensors"),
                      {k: p.detach().to(torch.float32) for k, p in params.items()}, meta)
    moments = {}
    for k, p in params.items():
        state = optimizer.state.get(p, {})
        moments[f"m.{k}"] = state.get("exp_avg", torch.zeros_like(p)).detach().to(torch.float32)
        moments[f"v.{k}"] = state.get("exp_avg_sq", torch.zeros_like(p)).detach().to(torch.float32)
    write_safetensors(os.path.join(temp, "optimizer.safetensors"), moments, meta)
    run = {
        "version": 1,
        "spec": manifest["spec"],
        "config": manifest["config"],
        "dims": manifest["dims"],
        "step": step,
        "data": {"epoch": 0, "index": step},
        "rng": {"seed": manifest["training"]["seed"]},
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    with open(os.path.join(temp, "run.json"), "w") as f:
        f.write(json.dumps(run, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    current, new, old = (os.path.join(run_dir, n) for n in ("checkpoint", "checkpoint.new", "checkpoint.old"))
    os.replace(temp, new)
    had = os.path.exists(current)
    if had:
        os.replace(current, old)
    os.replace(new, current)
    if had:
        shutil.rmtree(old)


def restore_optimizer(optimizer, model, folder, step):
    """AdamW moments m.<path> / v.<path> of one of our checkpoints, continuing at `step`."""
    path = os.path.join(folder, "optimizer.safetensors")
    if not os.path.exists(path):
        raise SystemExit(f"error: {path} is missing: a weights-only checkpoint cannot be resumed; use --init")
    tensors = read_safetensors(path)
    for k, p in model.named_parameters():
        if p.requires_grad:
            optimizer.state[p] = {"step": torch.tensor(float(step)),
                                  "exp_avg": tensors[f"m.{k}"].to(p.dtype).clone(),
                                  "exp_avg_sq": tensors[f"v.{k}"].to(p.dtype).clone()}


def main():
    ap = argparse.ArgumentParser(description="Train the exported model (DDP under torchrun).")
    ap.add_argument("--out", required=True, help="run directory: checkpoint/ and torch_log.jsonl")
    ap.add_argument("--steps", type=int, help="stop after this step (default: export.json training.steps)")
    ap.add_argument("--init", default=os.path.join(HERE, "init"), help="a run or checkpoint folder to start from")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out (params, moments, step)")
    ap.add_argument("--accumulate", type=int, default=0, help="micro-batches per rank per step (default: fill the batch)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--fsdp", action="store_true", help="shard with FSDP instead of DDP")
    ap.add_argument("--checkpoint-every", type=int, default=0)
    args = ap.parse_args()

    with open(os.path.join(HERE, "export.json")) as f:
        manifest = json.load(f)
    t = manifest["training"]
    batch, micro = manifest["batch"], manifest["microBatch"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    per_step = world * micro
    accumulate = args.accumulate or batch // per_step
    if accumulate * per_step != batch:
        raise SystemExit(f"error: {world} rank(s) x {accumulate} micro-batch(es) x {micro} rows = "
                         f"{accumulate * per_step} rows, but a step's batch is {batch} rows")

    sys.path.insert(0, HERE)
    from model import Model
    dtype = getattr(torch, args.dtype)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
    model = Model().to(device=device, dtype=dtype)
    start = 0
    source = checkpoint_folder(args.out) if args.resume else checkpoint_folder(args.init)
    load_weights(model, read_safetensors(os.path.join(source, "model.safetensors")), source)
    if args.resume:
        with open(os.path.join(source, "run.json")) as f:
            start = json.load(f)["step"]

    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    decay = {p["path"] for p in manifest["params"] if p["decay"]}
    groups = [{"params": [p for k, p in named if k in decay], "weight_decay": t["weightDecay"]},
              {"params": [p for k, p in named if k not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"])
    if args.resume:
        restore_optimizer(optimizer, model, source, start)

    wrapped = model
    if world > 1 and args.fsdp:
        try:
            from torch.distributed.fsdp import FullyShardedDataParallel
        except Exception as e:  # Debian's torch 1.13 on Python 3.11 fails to import it
            raise SystemExit(f"error: FSDP does not import in this torch build ({torch.__version__}): {e}")
        # Untested here (it does not import on Debian's 1.13): saving would also need the full state
        # dict gathered on rank 0 (FSDP.state_dict_type(..., FULL_STATE_DICT)) before save_checkpoint.
        wrapped = FullyShardedDataParallel(model)
    elif world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)

    steps = args.steps or t["steps"]
    trained = [p for _, p in named]
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "torch_log.jsonl"), "a") if rank == 0 else None
    metrics = {}
    for step in range(start, steps):
        shard = os.path.join(HERE, "data", f"step_{step:06d}.safetensors")
        if not os.path.exists(shard):
            raise SystemExit(f"error: {shard} is missing; export with --data-steps {step + 1} or more")
        rows = read_safetensors(shard)
        seed = torch.tensor([t["seed"], step + 1], dtype=torch.int64)
        sums = {}
        for j in range(accumulate):
            r0 = (rank * accumulate + j) * micro
            x = {k: v[r0:r0 + micro].to(device) for k, v in rows.items()}
            x["seed"] = seed
            sync = j == accumulate - 1 or world == 1
            ctx = wrapped.no_sync() if not sync and hasattr(wrapped, "no_sync") else _null()
            with ctx:
                out = wrapped(x, r0)
                (out["loss"] / accumulate).backward()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / accumulate
        values = torch.tensor([sums[k] for k in sorted(sums)], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(values)
            values /= world
        metrics = dict(zip(sorted(sums), values.tolist()))
        norm = float(torch.norm(torch.stack([p.grad.detach().norm() for p in trained if p.grad is not None])))
        if t["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(trained, t["clip"])
        lr = learning_rate(step, t)
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        metrics.update({"lr": lr, "grad_norm": norm})
        if rank == 0:
            line = json.dumps({"step": step + 1, **metrics})
            print(line, flush=True)
            log.write(line + "\n")
            if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0:
                save_checkpoint(args.out, model, optimizer, manifest, step + 1, metrics)
    if rank == 0:
        save_checkpoint(args.out, model, optimizer, manifest, steps, metrics)
        log.close()
    if world > 1:
        dist.destroy_process_group()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


if __name__ == "__main__":
    main()
