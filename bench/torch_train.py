#!/usr/bin/python3
"""Train a model spec in PyTorch and report its throughput, as the baseline
that bench/train_throughput compares hpo-worker against.

The net is built from the same JSON model spec that hpo-worker reads (see
include/hpo/model.h and docs/model-spec.md), with the same semantics. These
are valid or TensorFlow-style same padding, pools that drop the remainder,
NHWC flattening, Glorot-uniform weights with zero biases, and Adam with
Keras's epsilon of 1e-7 or SGD with momentum. The softmax head is folded
into the cross-entropy loss, as PyTorch code usually does.

Training mirrors `hpo-worker train`: each epoch shuffles the training
images, runs every batch (the last one may be partial), then evaluates the
validation images in inference mode. One JSON line per epoch and a final
result line go to stdout:

  {"event": "epoch", "epoch": 2, "train_images": 2048,
   "train_seconds": 0.41, "images_per_second": 4995.1,
   "eval_images": 1024, "eval_seconds": 0.05, "eval_images_per_second": 20480.0}
  {"event": "result", "torch_version": "1.13.0a0", "threads": 2, ...,
   "peak_rss_kib": 412345}

Images come from the CIFAR-10 binary batches in --data, or are uniform
random values when --data is not given; the shapes are the same either way.

Run it with Debian's /usr/bin/python3, where python3-torch installs torch.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_BATCH_RECORDS = 10000
CIFAR10_TRAIN_FILES = ["data_batch_%d.bin" % i for i in range(1, 6)]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Train a JSON model spec in PyTorch and print images/s as JSON lines.")
    parser.add_argument("--model", required=True, help="model spec (JSON)")
    parser.add_argument("--data", help="CIFAR-10 binary folder; random images when omitted")
    parser.add_argument("--train-images", type=int, default=2048,
                        help="training images per epoch (default 2048)")
    parser.add_argument("--eval-images", type=int, default=1024,
                        help="validation images evaluated after each epoch (default 1024; "
                             "0 skips evaluation)")
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs; the first one is the warm-up (default 2)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the spec's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for torch.set_num_threads (default 1)")
    parser.add_argument("--channels-last", action="store_true",
                        help="keep activations in NHWC memory (torch.channels_last)")
    parser.add_argument("--seed", type=int, default=1, help="seed for weights and shuffling")
    args = parser.parse_args(argv)

    for name in ("train_images", "epochs", "threads"):
        if getattr(args, name) < 1:
            parser.error("--%s must be at least 1" % name.replace("_", "-"))
    if args.eval_images < 0:
        parser.error("--eval-images must be 0 or more")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    limit = len(CIFAR10_TRAIN_FILES) * CIFAR10_BATCH_RECORDS
    if args.data is not None and args.train_images + args.eval_images > limit:
        parser.error("--train-images plus --eval-images is %d, more than the %d CIFAR-10 "
                     "training records" % (args.train_images + args.eval_images, limit))
    return args


def load_spec(path):
    """Read a model spec and check the fields this script relies on."""
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    if not isinstance(spec.get("layers"), list) or not spec["layers"]:
        raise ValueError("%s: \"layers\" is missing or empty" % path)
    for i, layer in enumerate(spec["layers"]):
        if not isinstance(layer, dict) or "type" not in layer:
            raise ValueError("%s: layers[%d].type is missing" % (path, i))
    return spec


def same_padding(size, kernel, stride):
    """TensorFlow's same padding along one axis: (before, after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def build_model(spec, torch):
    """Build an nn.Module for the spec and return it with the spec's training settings."""
    nn = torch.nn
    F = torch.nn.functional

    class Pad(nn.Module):
        """Asymmetric same padding before a convolution or pool."""

        def __init__(self, pads, value):
            super().__init__()
            self.pads = pads  # (left, right, top, bottom), as F.pad expects
            self.value = value

        def forward(self, x):
            return F.pad(x, self.pads, value=self.value)

    class MinPool(nn.Module):
        def __init__(self, kernel, stride):
            super().__init__()
            self.pool = nn.MaxPool2d(kernel, stride)

        def forward(self, x):
            return -self.pool(-x)

    class SameAvgPool(nn.Module):
        """Average over the window cells inside the image, as Keras does."""

        def __init__(self, kernel, stride, pads):
            super().__init__()
            self.pool = nn.AvgPool2d(kernel, stride)
            self.pads = pads

        def forward(self, x):
            total = self.pool(F.pad(x, self.pads))
            ones = torch.ones_like(x[:1, :1])
            count = self.pool(F.pad(ones, self.pads))
            return total / count

    class FlattenNHWC(nn.Module):
        """Flatten in height, width, channel order, like Keras."""

        def forward(self, x):
            if x.dim() == 4:
                x = x.permute(0, 2, 3, 1)
            return x.reshape(x.shape[0], -1)

    activations = {"relu": nn.ReLU, "tanh": nn.Tanh}

    def add_weighted(module, layer):
        """Append a conv or dense module with Keras's initialization and its
        activation. Softmax is left to the loss."""
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
        modules.append(module)
        activation = layer.get("activation", "linear")
        if activation in activations:
            modules.append(activations[activation]())

    h, w, c = spec.get("input_shape", [32, 32, 3])
    flat = None  # feature count once the input is flat
    modules = []
    for i, layer in enumerate(spec["layers"]):
        kind = layer["type"]
        where = "layers[%d]" % i
        if kind in ("conv2d", "maxpool2d", "avgpool2d", "minpool2d"):
            if flat is not None:
                raise ValueError("%s: %s after a flattening layer" % (where, kind))
            if kind == "conv2d":
                k, s = layer["kernel_size"], layer.get("stride", 1)
            else:
                k = layer.get("pool_size", 2)
                s = layer.get("stride", k)
            padding = layer.get("padding", "valid")
            pads = (0, 0, 0, 0)
            if padding == "same":
                top, bottom = same_padding(h, k, s)
                left, right = same_padding(w, k, s)
                pads = (left, right, top, bottom)
                h, w = math.ceil(h / s), math.ceil(w / s)
            else:
                h, w = (h - k) // s + 1, (w - k) // s + 1
            if h < 1 or w < 1:
                raise ValueError("%s.%s: the window is larger than the input" % (where, kind))

            if kind == "conv2d":
                if any(pads):
                    modules.append(Pad(pads, 0.0))
                add_weighted(nn.Conv2d(c, layer["filters"], k, stride=s), layer)
                c = layer["filters"]
            elif kind == "avgpool2d" and any(pads):
                modules.append(SameAvgPool(k, s, pads))
            else:
                fill = {"maxpool2d": -math.inf, "minpool2d": math.inf}.get(kind, 0.0)
                if any(pads):
                    modules.append(Pad(pads, fill))
                if kind == "maxpool2d":
                    modules.append(nn.MaxPool2d(k, s))
                elif kind == "minpool2d":
                    modules.append(MinPool(k, s))
                else:
                    modules.append(nn.AvgPool2d(k, s))
        elif kind == "global_avgpool":
            modules.append(nn.AdaptiveAvgPool2d(1))
            modules.append(FlattenNHWC())
            flat = c
        elif kind == "flatten":
            modules.append(FlattenNHWC())
            flat = flat if flat is not None else h * w * c
        elif kind == "dropout":
            modules.append(nn.Dropout(layer["rate"]))
        elif kind == "dense":
            if flat is None:
                modules.append(FlattenNHWC())
                flat = h * w * c
            add_weighted(nn.Linear(flat, layer["units"]), layer)
            flat = layer["units"]
        else:
            raise ValueError("%s.type: unknown layer type \"%s\"" % (where, kind))

    return nn.Sequential(*modules), spec.get("training", {})


def make_optimizer(torch, model, training):
    lr = training.get("learning_rate", 0.001)
    if training.get("optimizer", "adam") == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=training.get("momentum", 0.0))
    return torch.optim.Adam(model.parameters(), lr=lr,
                            betas=(training.get("beta_1", 0.9), training.get("beta_2", 0.999)),
                            eps=training.get("epsilon", 1e-7))


def load_images(torch, data_dir, count, offset, generator):
    """Return (images NCHW in [0, 1], labels) of `count` records."""
    if data_dir is None or count == 0:
        images = torch.rand((count, 3, 32, 32), generator=generator)
        labels = torch.randint(0, 10, (count,), generator=generator)
        return images, labels

    chunks = []
    first, remaining = offset, count
    while remaining > 0:
        index, row = divmod(first, CIFAR10_BATCH_RECORDS)
        take = min(remaining, CIFAR10_BATCH_RECORDS - row)
        path = os.path.join(data_dir, CIFAR10_TRAIN_FILES[index])
        with open(path, "rb") as f:
            f.seek(row * CIFAR10_RECORD_BYTES)
            raw = f.read(take * CIFAR10_RECORD_BYTES)
        if len(raw) != take * CIFAR10_RECORD_BYTES:
            raise ValueError("%s: expected %d bytes at offset %d, read %d; the file is "
                             "truncated" % (path, take * CIFAR10_RECORD_BYTES,
                                            row * CIFAR10_RECORD_BYTES, len(raw)))
        chunks.append(torch.frombuffer(bytearray(raw), dtype=torch.uint8)
                      .reshape(take, CIFAR10_RECORD_BYTES))
        first += take
        remaining -= take
    records = torch.cat(chunks)
    labels = records[:, 0].long()
    if int(labels.max()) > 9:
        raise ValueError("%s: a label is above 9; the data is not CIFAR-10" % data_dir)
    images = records[:, 1:].float().div_(255.0).reshape(count, 3, 32, 32)
    return images, labels


def train_epoch(torch, model, optimizer, images, labels, batch, generator, channels_last):
    model.train()
    loss_fn = torch.nn.functional.cross_entropy
    order = torch.randperm(images.shape[0], generator=generator)
    start = time.perf_counter()
    for first in range(0, images.shape[0], batch):
        index = order[first:first + batch]
        x = images[index]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), labels[index])
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def evaluate(torch, model, images, batch, channels_last):
    model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, images.shape[0], batch):
            x = images[first:first + batch]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            model(x)
    return time.perf_counter() - start


def cpu_capability(torch):
    """ATen's vector ISA (DEFAULT, AVX2 or AVX512), from PyTorch's build report."""
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return None


def main(argv):
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("torch_train.py: cannot import torch with %s; install Debian's python3-torch "
                 "(scripts/setup.sh --bench) and run this script with /usr/bin/python3"
                 % sys.executable)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    try:
        spec = load_spec(args.model)
        model, training = build_model(spec, torch)
        images, labels = load_images(torch, args.data, args.train_images, 0, generator)
        val_images, _ = load_images(torch, args.data, args.eval_images, args.train_images,
                                    generator)
    except (OSError, ValueError, KeyError) as e:
        sys.exit("torch_train.py: %s" % e)
    batch = args.batch_size or training.get("batch_size", 32)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(torch, model, training)

    for epoch in range(1, args.epochs + 1):
        seconds = train_epoch(torch, model, optimizer, images, labels, batch, generator,
                              args.channels_last)
        line = {"event": "epoch", "epoch": epoch, "train_images": args.train_images,
                "train_seconds": seconds, "images_per_second": args.train_images / seconds}
        if args.eval_images > 0:
            eval_seconds = evaluate(torch, model, val_images, batch, args.channels_last)
            line.update(eval_images=args.eval_images, eval_seconds=eval_seconds,
                        eval_images_per_second=args.eval_images / eval_seconds)
        print(json.dumps(line), flush=True)

    print(json.dumps({
        "event": "result",
        "torch_version": torch.__version__,
        "cpu_capability": cpu_capability(torch),
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "channels_last": args.channels_last,
        "data": "cifar10" if args.data else "random",
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
