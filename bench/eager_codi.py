#!/usr/bin/python3
"""eager_codi.py - one CoDi training step in PyTorch eager mode, the
reference for the speed of codid's `distill` trainer (engine/train.cpp,
codi_loss + eng_trainer_step; CODI.md 'One training step of CoDi').

The same math on the same frozen base: a ControlNet adapter (a trainable
copy of the base encoder fed z plus an embedding of the condition, and
zero-initialised 1x1 convolutions onto every skip and the mid block), the
super-resolution condition (average-pool by the factor, bicubic back up),
one frozen-base ODE step from t to s, the EMA adapter's consistency output
at s as the target, the online adapter's at t as the prediction, loss =
mse(pred, target) + lambda mse(pred, x), global-norm clipping, AdamW with
decay on matrices and kernels only, linear warm-up, EMA. Written as a
PyTorch user would: torch.optim.AdamW, clip_grad_norm_, nn.Module.
"""
import copy
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from eager_unet import build_encoder, embed_time


def skip_channels(cfg):
    """Channels of the encoder's skips: conv_in, each resnet, each downsampler."""
    boc = cfg["block_out_channels"]
    ch = [boc[0]]
    for i, c in enumerate(boc):
        ch += [c] * cfg["layers_per_block"] + ([c] if i + 1 < len(boc) else [])
    return ch


def zero_conv(cin, cout):
    conv = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ControlNetAdapter(nn.Module):
    def __init__(self, base, cond_channels):
        super().__init__()
        cfg = base.config
        self.config = cfg
        build_encoder(self, cfg, cfg["in_channels"])
        c0 = cfg["block_out_channels"][0]
        self.controlnet_cond_embedding = nn.Sequential(
            nn.Conv2d(cond_channels, 32, 3, padding=1), nn.SiLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.SiLU(),
            nn.Conv2d(32, c0, 3, padding=1))
        self.controlnet_down_blocks = nn.ModuleList(zero_conv(c, c) for c in skip_channels(cfg))
        self.controlnet_mid_block = zero_conv(cfg["block_out_channels"][-1],
                                              cfg["block_out_channels"][-1])
        base_state = base.state_dict()
        own = self.state_dict()
        self.load_state_dict({k: base_state.get(k, v) for k, v in own.items()})

    def forward(self, z, t, cond):
        emb = embed_time(self.time_embedding, self.config, t, z.shape[0])
        h = self.conv_in(z) + self.controlnet_cond_embedding(cond)
        skips = (h,)
        for block in self.down_blocks:
            h, res = block(h, emb)
            skips += res
        h = self.mid_block(h, emb)
        return ([out(s) for out, s in zip(self.controlnet_down_blocks, skips)],
                self.controlnet_mid_block(h))


class Schedule:
    """DDPM linear betas; abar in double precision as codid keeps it."""

    def __init__(self, model_dir):
        cfg = {}
        path = os.path.join(model_dir, "scheduler_config.json")
        if os.path.exists(path):
            with open(path) as f:
                cfg = json.load(f)
        self.T = cfg.get("num_train_timesteps", 1000)
        betas = torch.linspace(cfg.get("beta_start", 1e-4), cfg.get("beta_end", 0.02), self.T,
                               dtype=torch.float64)
        self.abar = torch.cumprod(1 - betas, 0)
        self.v_prediction = cfg.get("prediction_type", "epsilon") == "v_prediction"

    def coef(self, t):
        a = self.abar[t].float().view(-1, 1, 1, 1)
        return a.sqrt(), (1 - a).sqrt()

    def split(self, z, out, alpha, sigma):
        """(x0, eps) from the network output."""
        if self.v_prediction:
            return alpha * z - sigma * out, sigma * z + alpha * out
        return (z - sigma * out) / alpha, out


def sr_condition(x, factor):
    lo = F.avg_pool2d(x, factor)
    return F.interpolate(lo, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)


class CoDiTrainer:
    def __init__(self, base, model_dir, images, batch, lr=1e-3, warmup=100, weight_decay=1e-2,
                 ema_decay=0.995, n_grid=50, lam=1.0, factor=4, seed=0):
        torch.manual_seed(seed)
        self.base, self.sched = base, Schedule(model_dir)
        self.images, self.batch = images, batch
        self.n_grid, self.lam, self.factor, self.ema_decay = n_grid, lam, factor, ema_decay
        self.online = ControlNetAdapter(base, images.shape[1])
        self.ema = copy.deepcopy(self.online).requires_grad_(False)
        decay = [p for p in self.online.parameters() if p.dim() >= 2]
        rest = [p for p in self.online.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                      {"params": rest, "weight_decay": 0.0}],
                                     lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.lr_sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda step: min(1.0, (step + 1) / max(1, warmup)))
        self.step_count = 0

    def next_batch(self):
        idx = torch.randint(0, self.images.shape[0], (self.batch,))
        x = self.images[idx].float() / 127.5 - 1
        flip = (torch.rand(self.batch) < 0.5).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(3), x)

    def consistency(self, adapter, z, t, cond):
        """f(z, t, c) = c_skip z + c_out x0 (CODI.md 'Notation')."""
        alpha, sigma = self.sched.coef(t)
        tf = t.float()
        out = self.base(z, tf, *adapter(z, tf, cond))
        x0, _ = self.sched.split(z, out, alpha, sigma)
        u = tf.view(-1, 1, 1, 1) * (10.0 / self.sched.T)
        c_skip = 0.25 / (u * u + 0.25)
        c_out = u / torch.sqrt(u * u + 0.25)
        return c_skip * z + c_out * x0

    def step(self):
        T = self.sched.T
        x = self.next_batch()
        c = sr_condition(x, self.factor)
        eps = torch.randn_like(x)
        t = torch.randint(1, T, (self.batch,))
        s = (t - T // self.n_grid).clamp_min(0)
        alpha_t, sigma_t = self.sched.coef(t)
        alpha_s, sigma_s = self.sched.coef(s)
        z_t = alpha_t * x + sigma_t * eps
        with torch.no_grad():
            xhat, epshat = self.sched.split(z_t, self.base(z_t, t.float()), alpha_t, sigma_t)
            target = self.consistency(self.ema, alpha_s * xhat + sigma_s * epshat, s, c)
        pred = self.consistency(self.online, z_t, t, c)
        loss = F.mse_loss(pred, target) + self.lam * F.mse_loss(pred, x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.online.parameters(), 1.0)
        self.opt.step()
        self.lr_sched.step()
        self.step_count += 1
        d = min(self.ema_decay, (1.0 + self.step_count) / (10.0 + self.step_count))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.online.parameters()):
                e.mul_(d).add_(p, alpha=1 - d)
        return loss.item()
