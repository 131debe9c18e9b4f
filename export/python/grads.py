"""The loss, its metrics and every parameter gradient of the exported model on given weights and batch.

    python3 grads.py --weights model.safetensors --batch batch.safetensors --seed 7 1 \
        --dtype float64 float32 --out grads_{dtype}.safetensors

Writes, per dtype the model runs in, float64 tensors: each output of the loss entry by name, and
"grad.<path>" per trained parameter. tests/export_*_test.ts compares them with the project's f64 interpreter.
"""
import argparse

import torch

from model import Model
from spec_runtime import read_safetensors, write_safetensors
from train import load_weights


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="a model.safetensors (names = tree paths)")
    ap.add_argument("--batch", required=True, help="safetensors with the loss entry's inputs")
    ap.add_argument("--seed", type=int, nargs=2, required=True, metavar=("SEED", "OFFSET"))
    ap.add_argument("--dtype", choices=["float32", "float64"], nargs="+", default=["float64"])
    ap.add_argument("--out", required=True, help="output file; {dtype} is replaced by the dtype")
    args = ap.parse_args()

    weights = read_safetensors(args.weights)
    x = read_safetensors(args.batch)
    x["seed"] = torch.tensor(args.seed, dtype=torch.int64)
    for name in args.dtype:
        model = Model().to(getattr(torch, name))
        load_weights(model, weights, args.weights)
        out = model(x)
        out["loss"].backward()
        result = {k: v.detach().to(torch.float64) for k, v in out.items()}
        for path, p in model.named_parameters():
            if p.requires_grad:
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                result[f"grad.{path}"] = g.to(torch.float64)
        write_safetensors(args.out.replace("{dtype}", name), result)


if __name__ == "__main__":
    main()
