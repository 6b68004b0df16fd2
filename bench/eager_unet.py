#!/usr/bin/python3
"""eager_unet.py - diffusers' UNet2DModel in plain PyTorch eager mode.

The reference side of codid's benchmarks: the same network as
engine/unet.cpp, written the way a diffusers user runs it (nn.Module,
torch.inference_mode, the attention of diffusers' AttnProcessor for
torch < 2: baddbmm, softmax, bmm), with diffusers' state-dict key names so
that it loads the very safetensors file codid loads. Self-contained: a tiny
safetensors reader and writer (struct + json + torch.frombuffer) and no
diffusers import, so it runs on Debian's python3-torch alone.

    /usr/bin/python3 bench/eager_unet.py check --model DIR [--codid build/codid]
        writes a random input, runs `codid forward` on it and this model on
        the same input, prints the largest absolute difference per timestep.
    /usr/bin/python3 bench/eager_unet.py macs --model DIR [--batch N]
        multiply-accumulates of one forward, by layer kind.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- safetensors ----------------------------------------------------------

# safetensors dtype name -> (torch dtype, bytes per element)
ST_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    """Every tensor of the file as float32, and the __metadata__ dict."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than a safetensors header")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > len(data) - 8:
        raise ValueError(f"{path}: header length {hlen} runs past the end of the file")
    header = json.loads(bytes(data[8:8 + hlen]))
    meta = header.pop("__metadata__", None) or {}
    start = 8 + hlen
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in ST_DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        dtype, size = ST_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = info["shape"]
        count = math.prod(shape)
        if end - begin != count * size or start + end > len(data):
            raise ValueError(f"{path}: tensor {name} has a bad byte range")
        if count == 0:
            tensors[name] = torch.zeros(shape)
            continue
        raw = torch.frombuffer(data, dtype=dtype, count=count, offset=start + begin)
        tensors[name] = raw.reshape(shape).to(torch.float32, copy=True)
    return tensors, meta


def write_safetensors(path, tensors, metadata=None):
    """Write float32 tensors (a dict name -> tensor) in the safetensors layout."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        blob = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the tensor data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


# ---- the network ----------------------------------------------------------


def get_timestep_embedding(timesteps, dim, flip_sin_to_cos, downscale_freq_shift, max_period=10000):
    """DDPM's sinusoidal embedding, computed in the order diffusers computes it."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
    exponent = exponent / (half - downscale_freq_shift)
    emb = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t_emb):
        return self.linear_2(self.act(self.linear_1(t_emb)))


class ResnetBlock2D(nn.Module):
    """h = conv1(silu(norm1(x))) + proj(silu(temb)); h = conv2(silu(norm2(h)));
    out = (shortcut(x) + h) / output_scale_factor"""

    def __init__(self, in_ch, out_ch, temb_ch, groups, eps, output_scale_factor=1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=1, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x, temb):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.nonlinearity(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class Attention(nn.Module):
    """Residual self-attention over the pixels (diffusers' Attention as
    UNet2DModel builds it, with the AttnProcessor of torch < 2)."""

    def __init__(self, channels, dim_head, groups, eps, rescale_output_factor=1.0):
        super().__init__()
        self.heads = channels // dim_head
        self.scale = dim_head ** -0.5
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])
        self.rescale_output_factor = rescale_output_factor

    def head_to_batch_dim(self, t):
        b, s, c = t.shape
        return t.reshape(b, s, self.heads, c // self.heads).permute(0, 2, 1, 3).reshape(
            b * self.heads, s, c // self.heads)

    def batch_to_head_dim(self, t):
        bh, s, d = t.shape
        return t.reshape(bh // self.heads, self.heads, s, d).permute(0, 2, 1, 3).reshape(
            bh // self.heads, s, d * self.heads)

    def forward(self, x):
        residual = x
        b, c, h, w = x.shape
        hs = x.view(b, c, h * w).transpose(1, 2)
        hs = self.group_norm(hs.transpose(1, 2)).transpose(1, 2)
        q = self.head_to_batch_dim(self.to_q(hs))
        k = self.head_to_batch_dim(self.to_k(hs))
        v = self.head_to_batch_dim(self.to_v(hs))
        scores = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype),
                               q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        probs = scores.softmax(dim=-1)
        hs = self.batch_to_head_dim(torch.bmm(probs, v))
        hs = self.to_out[1](self.to_out[0](hs))
        hs = hs.transpose(-1, -2).reshape(b, c, h, w)
        return (hs + residual) / self.rescale_output_factor


class Downsample2D(nn.Module):
    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock2D(nn.Module):
    """layers_per_block resnets (each followed by attention in
    AttnDownBlock2D), then a strided conv unless it is the last block."""

    def __init__(self, cfg, in_ch, out_ch, temb_ch, attn, downsample):
        super().__init__()
        g, eps = cfg["norm_num_groups"], cfg["norm_eps"]
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch, temb_ch, g, eps)
            for i in range(cfg["layers_per_block"])])
        self.attentions = nn.ModuleList([
            Attention(out_ch, head_dim(cfg, out_ch), g, eps)
            for _ in range(cfg["layers_per_block"])]) if attn else None
        self.downsamplers = nn.ModuleList([
            Downsample2D(out_ch, cfg["downsample_padding"])]) if downsample else None

    def forward(self, h, temb):
        skips = ()
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
            skips += (h,)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips += (h,)
        return h, skips


class UpBlock2D(nn.Module):
    """layers_per_block + 1 resnets, each fed the concatenation of the
    running features and one skip (attention after each in AttnUpBlock2D),
    then nearest x2 and a conv unless it is the last block."""

    def __init__(self, cfg, in_ch, prev_ch, out_ch, temb_ch, attn, upsample):
        super().__init__()
        g, eps = cfg["norm_num_groups"], cfg["norm_eps"]
        n = cfg["layers_per_block"] + 1
        self.resnets = nn.ModuleList([
            ResnetBlock2D((prev_ch if i == 0 else out_ch) + (in_ch if i == n - 1 else out_ch),
                          out_ch, temb_ch, g, eps)
            for i in range(n)])
        self.attentions = nn.ModuleList([
            Attention(out_ch, head_dim(cfg, out_ch), g, eps) for _ in range(n)]) if attn else None
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if upsample else None

    def forward(self, h, skips, temb):
        for i, resnet in enumerate(self.resnets):
            h = torch.cat([h, skips[-1]], dim=1)
            skips = skips[:-1]
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class UNetMidBlock2D(nn.Module):
    def __init__(self, cfg, ch, temb_ch):
        super().__init__()
        g, eps, scale = cfg["norm_num_groups"], cfg["norm_eps"], cfg["mid_block_scale_factor"]
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb_ch, g, eps, scale)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList([Attention(ch, head_dim(cfg, ch), g, eps, scale)]) \
            if cfg["add_attention"] else None

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        if self.attentions is not None:
            h = self.attentions[0](h)
        return self.resnets[1](h, temb)


CONFIG_DEFAULTS = {
    "sample_size": 32, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5, "downsample_padding": 1,
    "flip_sin_to_cos": True, "freq_shift": 0, "center_input_sample": False,
    "mid_block_scale_factor": 1, "add_attention": True,
}


def head_dim(cfg, channels):
    """diffusers: attention_head_dim null means one head as wide as the block."""
    return cfg["attention_head_dim"] or channels


def embed_time(time_embedding, cfg, timestep, batch):
    """The time embedding of a timestep (a number or one per sample)."""
    t = torch.as_tensor(timestep, dtype=torch.float32)
    t = t.reshape(-1) * torch.ones(batch)  # one timestep broadcasts to the batch
    return time_embedding(get_timestep_embedding(
        t, cfg["block_out_channels"][0], cfg["flip_sin_to_cos"], cfg["freq_shift"]))


def build_encoder(module, cfg, in_channels):
    """conv_in, time_embedding, down_blocks and mid_block, registered on
    `module` under diffusers' names (shared with the ControlNet port)."""
    boc = cfg["block_out_channels"]
    temb = boc[0] * 4
    module.conv_in = nn.Conv2d(in_channels, boc[0], 3, padding=1)
    module.time_embedding = TimestepEmbedding(boc[0], temb)
    blocks, out = [], boc[0]
    for i, kind in enumerate(cfg["down_block_types"]):
        prev, out = out, boc[i]
        blocks.append(DownBlock2D(cfg, prev, out, temb, kind == "AttnDownBlock2D",
                                  i + 1 < len(boc)))
    module.down_blocks = nn.ModuleList(blocks)
    module.mid_block = UNetMidBlock2D(cfg, boc[-1], temb)


class UNet2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = dict(CONFIG_DEFAULTS)
        cfg.update({k: v for k, v in config.items() if v is not None or k == "attention_head_dim"})
        for key, want in (("act_fn", "silu"), ("time_embedding_type", "positional"),
                          ("resnet_time_scale_shift", "default")):
            if cfg.get(key, want) != want:
                raise ValueError(f"{key} {cfg[key]!r} is not supported")
        self.config = cfg
        boc = cfg["block_out_channels"]
        build_encoder(self, cfg, cfg["in_channels"])
        rev = list(reversed(boc))
        ups, out = [], rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out = out, rev[i]
            ups.append(UpBlock2D(cfg, rev[min(i + 1, len(boc) - 1)], prev, out, boc[0] * 4,
                                 kind == "AttnUpBlock2D", i + 1 < len(boc)))
        self.up_blocks = nn.ModuleList(ups)
        self.conv_norm_out = nn.GroupNorm(cfg["norm_num_groups"], boc[0], eps=cfg["norm_eps"])
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, sample, timestep, down_residuals=None, mid_residual=None):
        """sample (n, c, h, w); timestep a number or (n,); the residuals are
        what an adapter adds to the skips and to the mid block's output."""
        if self.config["center_input_sample"]:
            sample = 2 * sample - 1.0
        emb = embed_time(self.time_embedding, self.config, timestep, sample.shape[0])
        h = self.conv_in(sample)
        skips = (h,)
        for block in self.down_blocks:
            h, res = block(h, emb)
            skips += res
        if down_residuals is not None:
            skips = tuple(s + r for s, r in zip(skips, down_residuals))
        h = self.mid_block(h, emb)
        if mid_residual is not None:
            h = h + mid_residual
        for block in self.up_blocks:
            n = len(block.resnets)
            h = block(h, skips[-n:], emb)
            skips = skips[:-n]
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


LEGACY_KEYS = ((".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."),
               (".proj_attn.", ".to_out.0."))


def load_weights(module, path):
    """Load a diffusers-layout safetensors file, accepting the older
    attention names and their 1x1-convolution shapes; every key must match."""
    tensors, _ = read_safetensors(path)
    state = {}
    own = module.state_dict()
    for name, t in tensors.items():
        if ".attentions." in name:
            for old, new in LEGACY_KEYS:
                name = name.replace(old, new)
        if name in own and t.shape != own[name].shape and t.numel() == own[name].numel():
            t = t.reshape(own[name].shape)
        state[name] = t
    module.load_state_dict(state, strict=True)


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        model = UNet2DModel(json.load(f))
    load_weights(model, os.path.join(model_dir, "diffusion_pytorch_model.safetensors"))
    return model.eval().requires_grad_(False)


# ---- counting multiply-accumulates ----------------------------------------


def count_macs(modules, run):
    """Multiply-accumulates of the convolutions, linear layers and attention
    matmuls that `run()` performs, by kind, plus those its backward pass
    needs (from which outputs and weights require grad). Norms, activations,
    additions and softmax are not counted: they are memory-bound and a small
    share of the flops."""
    counts = {"conv": 0, "linear": 0, "attention": 0, "backward": 0}

    def add(kind, macs, out, grad_operands):
        counts[kind] += macs
        if out.requires_grad:  # one product of the same size per operand needing a grad
            counts["backward"] += macs * grad_operands

    def on_conv(m, inp, out):
        k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        add("conv", out.numel() * k, out, int(inp[0].requires_grad) + int(m.weight.requires_grad))

    def on_linear(m, inp, out):
        add("linear", out.numel() * m.in_features, out,
            int(inp[0].requires_grad) + int(m.weight.requires_grad))

    def on_attention(m, inp, out):
        b, c, h, w = inp[0].shape
        # q k^T and probs v: (b*heads) products of s x d by d x s and s x s by s x d;
        # both operands of each are activations
        add("attention", 2 * b * (h * w) ** 2 * c, out, 2)

    hooks = []
    for m in (sub for module in modules for sub in module.modules()):
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(on_linear))
        elif isinstance(m, Attention):
            hooks.append(m.register_forward_hook(on_attention))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    counts["forward"] = counts["conv"] + counts["linear"] + counts["attention"]
    return counts


# ---- command line ---------------------------------------------------------


def cmd_check(args):
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    cfg = model.config
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"],
                    generator=gen)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        write_safetensors(inp, {"sample": x})
        for t in args.timesteps:
            subprocess.run([args.codid, "forward", "--model", args.model, "--input", inp,
                            "--timestep", str(t), "--output", outp,
                            "--threads", str(args.threads)], check=True)
            theirs = read_safetensors(outp)[0]["sample"]
            with torch.inference_mode():
                ours = model(x, float(t))
            diff = (ours - theirs).abs().max().item()
            scale = ours.abs().max().item()
            worst = max(worst, diff)
            print(f"t={t:g} batch={args.batch} max|eager-codid|={diff:.3g} "
                  f"max|out|={scale:.3g}")
    print(f"max_abs_diff {worst:.3g}")
    return 0 if worst <= args.tolerance else 1


def cmd_macs(args):
    model = load_model(args.model)
    cfg = model.config
    x = torch.zeros(args.batch, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"])
    with torch.inference_mode():
        counts = count_macs([model], lambda: model(x, 500.0))
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"batch": args.batch, "parameters": params, **counts}))
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="compare with `codid forward` on the same weights and input")
    c.add_argument("--model", required=True)
    c.add_argument("--codid", default="build/codid")
    c.add_argument("--batch", type=int, default=2)
    c.add_argument("--timesteps", type=float, nargs="+", default=[0, 500, 999])
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--tolerance", type=float, default=1e-4)
    m = sub.add_parser("macs", help="multiply-accumulates of one forward")
    m.add_argument("--model", required=True)
    m.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    return cmd_check(args) if args.cmd == "check" else cmd_macs(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
