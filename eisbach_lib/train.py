"""The one training loop: base pretraining (adapter=None, every parameter trains) and LoRA/DoRA
fine-tuning (only the adapter trains), over a `PreEncoded` corpus held in memory.

Recipe per step (docs/design.md §1.4 and §2):

    idx    = next batch of the data order               (stream "data": a fresh permutation per epoch)
    t      = flow.sample_timesteps(B, kind)              (stream "timesteps")
    noise  = randn like x0                               (stream "noise"), then flow.ot_couple(x0, noise)
    mask   = models.drop_condition(token_mask, p)        (stream "dropout"; CFG condition dropout)
    v      = model(x_t, t, tokens, mask, seconds)        x_t = (1 − t)·x0 + t·noise
    L[b]   = per_sample_loss(v, noise − x0, frame_mask)
    w[b]   = barrier_weights(v, arm, lam, t, frame_mask, generator=stream "shuffle", state=tmatched,
                             textures=the batch's texture labels, constant=constant_weight(...)["weight"])
    loss   = weighted_loss(w, L);  AdamW step (weight decay 0, constant lr after an optional
             linear warm-up of `warmup_steps`, 0 by default; the pretrain default is documented
             in config.Pretrain)

Pairing: every random stream is its own CPU `torch.Generator` seeded from (seed, stream name)
(`stream_seed`), and every stream is consumed identically by every arm, except "shuffle", which only
`eisbach_shuffle` draws from. So all arms of one seed see the same batches, timesteps, noise and
condition dropout, and start from the same adapter init (seeded from (seed, "adapter")).

Run folder layout (`out_dir`):

    run.json                    what this run is (arm, seed, adapter, hyper-parameters, base, data)
    ckpt_000100/                a checkpoint: adapter_model.safetensors + adapter_config.json (adapter
                                runs) or transformer/ + duration_embedder/ (base runs, diffusers layout),
                                and state.pt (optimizer, generator states, tmatched state, data
                                order, step) in the newest checkpoint only
    log/samples_000100.parquet  per-step per-sample rows logged since the previous checkpoint
    log/steps_000100.parquet    per-step rows (loss, lr, grad_norm, samples_per_s, ...)
    adapter_model.safetensors   final weights (adapter runs) | transformer/, duration_embedder/ (base)
    log_samples.parquet, log_steps.parquet   the whole log, written at the end
    done.json                   the summary; its presence marks the run finished (skipped next time)

Every checkpoint is written to a temporary folder and renamed (os.replace), its log chunks first,
so an interrupted run resumes from its newest complete checkpoint and ends with bit-identical
weights on the CPU (float32, deterministic kernels, the same thread count). runs.py reads these
folders back (`grid_items`, `list_checkpoints`, `read_log`, `load_run_model`, `grid_status`).

Control arms (barrier.py): `oracle_texture` reads each clip's label from data.manifest["texture"];
`constant` uses one weight for every sample, the mean `eisbach` weight of the fine-tuning split under
the base model (`probes.constant_weight`: probes.weights_by_clip's estimate, computed once and cached in
<runs_dir>/anatomy/constant_weight.json under a key made of the base weights' and the data's content
hashes and the estimate's settings). Both are recorded in run.json under "arm_config".
`anatomy.training_mix` turns the per-sample log into each texture's weighted share of the training signal
(the "effective training mix" manipulation check).

CPU: `finetune.workers: n` trains the grid's unfinished runs in n spawned one-thread processes
(`run_grid`; on 2 cores, 2 workers give 1.9x the runs per second of one process, 1.5x that of one
process with 2 threads: benchmarks/results/levers.md), with the same weights as one process.

Multi-GPU: the grid is sharded, one process per GPU (`run_grid(cfg, data, shard="i/n")` with
CUDA_VISIBLE_DEVICES=i, or `eisbach grid --shard i/n`), the better use of several GPUs at batch 4.
One run can also train data-parallel under `torchrun --nproc_per_node N` or `accelerate launch`
(`distributed`): every process draws the whole batch from the same generators and trains on its
slice, and the barrier sees the whole batch (`_gather`), so `eisbach_norm`, `eisbach_shuffle` and
`eisbach_tmatched` mean the same on N processes as on one (tests/test_distributed.py: 2 processes
train the same adapter as 1, within rtol 1e-4 / atol 1e-5);
`finetune.batch_size` must be divisible by N.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from .progress import Progress

from .barrier import (ARMS, ORACLE_FACTOR, barrier_weights, oracle_weights, new_tmatched_state, per_sample_loss, temporal_entropy,
                      weighted_loss)
from .cache import PreEncoded
from .config import Profile, Training
from .device import Placement, distributed, resolve_device
from .files import atomic_dir, atomic_json, atomic_write
from .flow import noise_data, ot_couple, sample_timesteps, velocity_target
from .layout import (DONE, LOG_CHUNK, LOG_DIR, RUN_META, Layout, finished_runs, is_finished, log_chunk, log_chunk_glob, log_file,
                     read_done)
from .models import (ADAPTER_KINDS, EisbachDiT, add_adapter, build_base, count_parameters, drop_condition,
                     load_base, save_adapter, save_base)
from .probes import constant_weight
from .runs import base_dir_for, grid_items, list_checkpoints, read_log
from .workers import run_workers

STREAMS = ("data", "timesteps", "noise", "dropout", "shuffle")
# hyper-parameters that must match when a run folder is resumed (they change the trajectory)
RESUME_KEYS = ("batch_size", "lr", "betas", "weight_decay", "warmup_steps", "grad_clip", "lam", "timesteps", "ot",
               "cond_dropout", "rank", "alpha")


# --------------------------------------------------------------------------------------------
# small helpers


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for the random stream `name` of run seed `seed` (stable across runs and machines)."""
    digest = hashlib.sha256(f"eisbach:{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_generators(seed: int) -> dict[str, torch.Generator]:
    """One CPU generator per stream in STREAMS."""
    return {name: torch.Generator().manual_seed(stream_seed(seed, name)) for name in STREAMS}


def _gather(x: torch.Tensor, world: int) -> torch.Tensor:
    """The whole batch from every process's slice (dim 0), without gradient."""
    if world == 1:
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)


def data_fingerprint(data: PreEncoded) -> str:
    """A short hash of the clip ids and tensor shapes (a resumed run must see the same data)."""
    blob = json.dumps([list(map(str, data.manifest["id"])), list(data.latents.shape), list(data.tokens.shape)])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def ckpt_name(step: int) -> str:
    return f"ckpt_{step:06d}"


# --------------------------------------------------------------------------------------------
# data order


class BatchOrder:
    """Batches of clip indices from a fresh random permutation per epoch (stream "data"); a batch
    that crosses an epoch boundary continues into the next permutation. State: the current
    permutation and the position in it (saved with checkpoints)."""

    def __init__(self, n: int, generator: torch.Generator):
        if n <= 0:
            raise ValueError("the training data is empty (0 clips)")
        self.n, self.generator = n, generator
        self.perm = torch.randperm(n, generator=generator)
        self.pos = 0

    def next(self, batch_size: int) -> torch.Tensor:
        out = []
        while len(out) < batch_size:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.generator), 0
            take = min(batch_size - len(out), self.n - self.pos)
            out.extend(self.perm[self.pos:self.pos + take].tolist())
            self.pos += take
        return torch.tensor(out, dtype=torch.long)

    def state_dict(self) -> dict:
        return {"perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])


# --------------------------------------------------------------------------------------------
# model set-up


def _build_model(cfg: Profile, data: PreEncoded, adapter: str | None, seed: int, hp: Training,
                 base_dir: str | Path | None) -> tuple[EisbachDiT, str | None]:
    """The model of a run at step 0 and the base folder it came from (None for a base run)."""
    io_channels, text_dim = int(data.latents.shape[1]), int(data.tokens.shape[2])
    if adapter is None:
        return build_base(cfg.model, io_channels, text_dim, seed=stream_seed(seed, "init")), None
    base = base_dir_for(cfg, base_dir)
    try:
        model = load_base(base)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}; train the base first (`eisbach pretrain`) or set model.base_dir") from None
    if model.io_channels != io_channels or model.text_dim != text_dim:
        raise ValueError(f"the base at {base} takes latents with {model.io_channels} channels and text of width "
                         f"{model.text_dim}, but the data has {io_channels} channels and width {text_dim}")
    add_adapter(model, adapter, hp.rank, hp.alpha, seed=stream_seed(seed, "adapter"))
    return model, str(base.resolve())


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _save_weights(model: EisbachDiT, adapter: str | None, folder: Path) -> None:
    if adapter is None:
        save_base(model, folder)
    else:
        save_adapter(model, folder)


def _load_weights(model: EisbachDiT, adapter: str | None, folder: Path) -> None:
    """Copy the weights of a checkpoint folder into `model` (which has the same structure)."""
    if adapter is None:
        model.load_state_dict(load_base(folder).state_dict())
    else:
        set_peft_model_state_dict(model.transformer, load_file(str(folder / "adapter_model.safetensors")))


# --------------------------------------------------------------------------------------------
# checkpoints and logs


def _save_checkpoint(run_dir: Path, model: EisbachDiT, adapter: str | None, state: RunState, log: RunLog) -> Path:
    """Checkpoint `state.step`: the log chunks first, then the checkpoint folder (weights and state.pt,
    written to a temporary folder and renamed); older checkpoints keep their weights but lose their
    state.pt (only the newest is needed to resume)."""
    step = state.step
    log.write(run_dir / LOG_DIR, step)

    def write(folder: Path) -> None:
        _save_weights(model, adapter, folder)
        torch.save(state.state_dict(), folder / "state.pt")

    final = atomic_dir(run_dir / ckpt_name(step), write)
    for s, folder in list_checkpoints(run_dir).items():
        if s < step and (folder / "state.pt").exists():
            (folder / "state.pt").unlink()
    return final


def _drop_stale_logs(run_dir: Path, step: int) -> None:
    """Remove log chunks written after checkpoint `step` (a crash between the logs and the rename).
    Only this loop's chunks (samples_N / steps_N .parquet) are touched; other files are left alone."""
    for p in (run_dir / LOG_DIR).glob(log_chunk_glob()):
        m = LOG_CHUNK.fullmatch(p.name)
        if m and int(m.group(2)) > step:
            p.unlink()


# --------------------------------------------------------------------------------------------
# the step


@dataclass(frozen=True)
class ArmInputs:
    """What the barrier of one arm reads besides v and t: λ, each clip's texture label (None when the
    data has none; only `oracle_texture` uses them), the `constant` arm's weight and the oracle's
    flat-class factor (`finetune.oracle_factor`)."""

    arm: str
    lam: float = 0.5
    textures: list[str] | None = None
    constant: float | None = None
    oracle_factor: float = ORACLE_FACTOR


@dataclass
class Batch:
    """One training batch, the whole of it (every process draws the same), on the CPU."""

    idx: torch.Tensor         # clip indices [B]
    x0: torch.Tensor          # clean latents [B, C, T]
    t: torch.Tensor           # timesteps [B]
    noise: torch.Tensor       # ε [B, C, T], OT-coupled to x0
    tokens: torch.Tensor      # text tokens [B, L, D]
    token_mask: torch.Tensor  # [B, L] after condition dropout
    seconds: torch.Tensor     # [B]
    frame_mask: torch.Tensor  # valid latent frames [B, T]
    dropped: torch.Tensor     # [B] bool: the condition was dropped (it had tokens and has none now)


@dataclass
class StepOut:
    """One step's whole batch (gathered from every process, on the CPU) for the log: the entropy h, the
    barrier weight w, the per-sample loss L, and the gradient norm before clipping."""

    h: torch.Tensor
    w: torch.Tensor
    loss: torch.Tensor
    grad_norm: torch.Tensor


def draw_noise(x0: torch.Tensor, kind: str, ot: str | None,
               gens: dict[str, torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """t ~ the timestep distribution `kind` (stream "timesteps") and ε ~ N(0, I) like x0 (stream
    "noise"), ε reordered by minibatch OT coupling to x0 when `ot` is set."""
    t = sample_timesteps(x0.shape[0], kind, generator=gens["timesteps"])
    noise = torch.randn(x0.shape, generator=gens["noise"])
    if ot:
        noise = ot_couple(x0, noise, method=ot)
    return t, noise


def draw_batch(data: PreEncoded, order: BatchOrder, gens: dict[str, torch.Generator], hp: Training) -> Batch:
    """The next batch of the data order with its timesteps, noise and condition dropout (stream "dropout")."""
    idx = order.next(hp.batch_size)
    x0 = data.latents[idx]
    t, noise = draw_noise(x0, hp.timesteps, hp.ot, gens)
    token_mask = drop_condition(data.token_mask[idx], hp.cond_dropout, gens["dropout"])
    dropped = data.token_mask[idx].any(dim=1) & ~token_mask.any(dim=1)
    return Batch(idx, x0, t, noise, data.tokens[idx], token_mask, data.seconds[idx], data.frame_mask[idx], dropped)


def weighted_step(forward, batch: Batch, arm: ArmInputs, opt: torch.optim.Optimizer, *, gens: dict[str, torch.Generator],
                  tmatched: dict[str, torch.Tensor], place: Placement = Placement(),
                  grad_clip: float | None = None) -> StepOut:
    """One training step of the paper's objective (docs/design.md §1.4, §2), on this process's slice:

        x_t  = (1 − t)·x0 + t·ε,        v = model(x_t, t, tokens, token_mask, seconds)
        L[b] = mean over valid (c, frame) of (v − (ε − x0))²
        w[b] = barrier weight of the arm, detached except for eisbach_grad;
               eisbach: (1 − h[b] + 1e−6)^λ, h = normalised temporal entropy of mean_c v²
        loss = mean_b w[b]·L[b];   backward, clip the gradient norm to `grad_clip` if set, `opt` step

    `gens["shuffle"]` and `tmatched` are the barrier's own state (eisbach_shuffle, eisbach_tmatched).
    Under data parallelism the batch-coupled arms weigh the whole batch (`_gather`), and DDP
    averages the processes' gradients into the whole batch's mean."""
    mine, dev = place.mine(len(batch.idx)), place.device
    x0, noise, t = batch.x0[mine].to(dev), batch.noise[mine].to(dev), batch.t[mine].to(dev)
    frame_mask = batch.frame_mask.to(dev)
    with place.autocast():
        v = forward(noise_data(x0, noise, t), t, batch.tokens[mine].to(dev), batch.token_mask[mine].to(dev),
                    batch.seconds[mine].to(dev))
    v = v.float()
    per_sample = per_sample_loss(v, velocity_target(x0, noise), frame_mask[mine])
    v_all = _gather(v, place.world)
    textures = None if arm.textures is None else [arm.textures[i] for i in batch.idx.tolist()]
    if arm.arm == "eisbach_grad":  # per sample, differentiated through this process's v
        w = barrier_weights(v, arm.arm, lam=arm.lam, t=t, mask=frame_mask[mine], generator=gens["shuffle"],
                            state=tmatched, textures=None if textures is None else textures[mine], constant=arm.constant,
                            oracle_factor=arm.oracle_factor)
    else:  # detached; the batch-coupled arms (norm, shuffle, tmatched) see the whole batch
        w = barrier_weights(v_all, arm.arm, lam=arm.lam, t=batch.t.to(dev), mask=frame_mask, generator=gens["shuffle"],
                            state=tmatched, textures=textures, constant=arm.constant,
                            oracle_factor=arm.oracle_factor)[mine]
    loss = weighted_loss(w, per_sample)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = _clip_gradients(opt, grad_clip)
    opt.step()
    with torch.no_grad():
        return StepOut(h=temporal_entropy(v_all, frame_mask).cpu(), w=_gather(w.float(), place.world).cpu(),
                       loss=_gather(per_sample, place.world).cpu(), grad_norm=grad_norm)


def _clip_gradients(opt: torch.optim.Optimizer, grad_clip: float | None) -> torch.Tensor:
    """The total gradient norm of the optimizer's parameters, after scaling the gradients down to
    `grad_clip` when it is set and exceeded."""
    params = [p for group in opt.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if grad_clip:
        torch.nn.utils.clip_grads_with_norm_(params, float(grad_clip), grad_norm)
    return grad_norm


# --------------------------------------------------------------------------------------------
# the loop


def train_run(cfg: Profile, data: PreEncoded, out_dir: str | Path, *, arm: str = "none", seed: int = 0,
              adapter: str | None = "dora", steps: int | None = None, base_dir: str | Path | None = None,
              progress: bool = True, stop_after: int | None = None) -> Path:
    """Train one run into `out_dir` and return it; a finished run (done.json) is returned at once and an
    interrupted one resumes from its newest checkpoint.

    adapter=None pretrains a base (every parameter, cfg.pretrain); "dora"/"lora" fine-tunes an
    adapter on the base at `base_dir` (default: cfg model.base_dir, else <runs_dir>/base) with
    cfg.finetune. `steps` overrides the profile's step count. `stop_after` (for tests) stops after
    that step as if the process were killed: whatever was checkpointed stays, nothing else.
    """
    out_dir = Path(out_dir)
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
    if adapter is not None and adapter not in ADAPTER_KINDS:
        raise ValueError(f"unknown adapter {adapter!r}; use dora, lora or None (base pretraining)")
    hp = cfg.training(adapter).with_steps(steps)
    if is_finished(out_dir):
        done = read_done(out_dir)
        if int(done.get("steps", -1)) != hp.steps:
            print(f"{out_dir} is finished with {done.get('steps')} steps (asked {hp.steps}); kept as is")
        return out_dir

    place, model, arm_inputs, meta = _set_up(cfg, data, out_dir, hp, arm, seed, adapter, base_dir, progress)
    state = _resume(out_dir, model, adapter, new_run_state(model, hp, seed, len(data), place), place.lead)
    forward = _forward(model, hp, place)
    log = RunLog(out_dir.name, adapter, arm, seed, data, arm_inputs.textures, every=hp.log_every,
                 last=hp.steps)
    bar = Progress(total=hp.steps, initial=state.step, desc=out_dir.name, disable=not (progress and place.lead),
                   leave=False)
    checkpoint_steps = set(hp.checkpoint_steps)
    for step in range(state.step + 1, hp.steps + 1):
        t0 = time.perf_counter()
        lr = learning_rate(hp, step)
        for group in state.opt.param_groups:
            group["lr"] = lr
        batch = draw_batch(data, state.order, state.gens, hp)
        out = weighted_step(forward, batch, arm_inputs, state.opt, gens=state.gens, tmatched=state.tmatched,
                            place=place, grad_clip=hp.grad_clip)
        state.step = step
        log.add(step, batch, out, lr, time.perf_counter() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{log.steps[-1]['loss']:.4f}")
        if step in checkpoint_steps:
            if place.lead:
                _save_checkpoint(out_dir, model, adapter, state, log)
            log.clear()
            place.sync()
        if stop_after is not None and step >= stop_after:
            bar.close()
            return out_dir
    bar.close()
    if place.lead:
        _finish(out_dir, model, adapter, meta)
    place.sync()
    return out_dir


def learning_rate(hp: Training, step: int) -> float:
    """The constant learning rate `lr`, after a linear warm-up over the first `warmup_steps` steps (if any)."""
    return hp.lr * min(1.0, step / hp.warmup_steps) if hp.warmup_steps else hp.lr


@dataclass
class RunState:
    """Everything of a run that changes from step to step besides the weights (state.pt of the newest
    checkpoint): the steps done, the optimizer, the random streams, eisbach_tmatched's running bins and
    the data order."""

    step: int
    opt: torch.optim.Optimizer
    gens: dict[str, torch.Generator]
    tmatched: dict[str, torch.Tensor]
    order: BatchOrder

    def state_dict(self) -> dict:
        return {"step": self.step, "optimizer": self.opt.state_dict(),
                "generators": {k: g.get_state() for k, g in self.gens.items()},
                "tmatched": {k: v.clone() for k, v in self.tmatched.items()}, "order": self.order.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.opt.load_state_dict(state["optimizer"])
        for k, g in self.gens.items():
            g.set_state(state["generators"][k])
        self.tmatched = {k: v.clone() for k, v in state["tmatched"].items()}
        self.order.load_state_dict(state["order"])


def new_run_state(model: torch.nn.Module, hp: Training, seed: int, n_clips: int, place: Placement) -> RunState:
    """Step 0: AdamW over the trainable parameters (ε 1e-8, fused on CUDA), the seed's generators, empty
    tmatched bins and the first permutation of the data order."""
    opt = torch.optim.AdamW(_trainable(model), lr=hp.lr, betas=tuple(hp.betas),
                            weight_decay=hp.weight_decay, eps=1e-8, **({"fused": True} if place.cuda else {}))
    gens = make_generators(seed)
    return RunState(0, opt, gens, new_tmatched_state(), BatchOrder(n_clips, gens["data"]))


class RunLog:
    """The log rows since the last checkpoint: one per sample of every `every`-th step (and the last),
    one per step; `write` puts them in the checkpoint's chunks log/samples_N.parquet, log/steps_N.parquet."""

    def __init__(self, run: str, adapter: str | None, arm: str, seed: int, data: PreEncoded,
                 textures: list[str] | None, every: int, last: int):
        self.run, self.adapter, self.arm, self.seed, self.every, self.last = run, adapter or "none", arm, int(seed), every, last
        self.ids = list(map(str, data.manifest["id"]))
        self.textures = textures  # each clip's texture label (ArmInputs.textures), or None
        self.samples: list[dict] = []
        self.steps: list[dict] = []

    def add(self, step: int, batch: Batch, out: StepOut, lr: float, elapsed: float) -> None:
        if (step - 1) % self.every == 0 or step == self.last:
            nsum = batch.noise.double().sum(dim=(1, 2))
            for j, i in enumerate(batch.idx.tolist()):
                row = {"run": self.run, "adapter": self.adapter, "arm": self.arm, "seed": self.seed, "step": step,
                       "id": self.ids[i]}
                if self.textures is not None:
                    row["texture"] = self.textures[i]
                row.update({"t": float(batch.t[j]), "h": float(out.h[j]), "w": float(out.w[j]),
                            "loss": float(out.loss[j]), "dropped": bool(batch.dropped[j]), "noise_sum": float(nsum[j])})
                self.samples.append(row)
        w, loss, h = out.w, out.loss, out.h
        self.steps.append({"run": self.run, "arm": self.arm, "seed": self.seed, "step": step,
                           "loss": float((w * loss).mean()), "loss_unweighted": float(loss.mean()),
                           "w_mean": float(w.mean()), "h_mean": float(h.mean()), "lr": lr,
                           "grad_norm": float(out.grad_norm), "samples_per_s": len(batch.idx) / elapsed})

    def write(self, log_dir: Path, step: int) -> None:
        log_dir.mkdir(exist_ok=True)
        _atomic_parquet(pd.DataFrame(self.samples), log_dir / log_chunk("samples", step))
        _atomic_parquet(pd.DataFrame(self.steps), log_dir / log_chunk("steps", step))

    def clear(self) -> None:
        self.samples, self.steps = [], []


def _set_up(cfg: Profile, data: PreEncoded, out_dir: Path, hp: Training, arm: str, seed: int, adapter: str | None,
            base_dir: str | Path | None, progress: bool) -> tuple[Placement, EisbachDiT, ArmInputs, dict]:
    """Check the data, place this process, build the model at step 0 (on its device, in train mode),
    collect the arm's inputs and write run.json (or check that the folder holds this run)."""
    if len(data) == 0:
        raise ValueError("the training data is empty (0 clips)")
    if hp.batch_size > len(data):
        print(f"note: batch_size {hp.batch_size} > {len(data)} clips; batches repeat clips across epochs")
    place = _placement(cfg, hp.batch_size)
    textures = list(map(str, data.manifest["texture"])) if "texture" in data.manifest.columns else None
    arm_config: dict = {}
    if arm == "oracle_texture":
        if textures is None:
            raise ValueError("arm 'oracle_texture' needs texture labels: the data's manifest has no 'texture' column")
        arm_config = {"oracle_weights": oracle_weights(cfg.finetune.oracle_factor)}
        barrier_weights(torch.zeros(len(textures), 1, 1), arm, textures=textures)  # unknown labels raise now
    model, base_used = _build_model(cfg, data, adapter, seed, hp, base_dir)
    if arm == "constant":
        if adapter is None:
            raise ValueError("arm 'constant' needs a base model (its weight is the base's mean eisbach weight); "
                             "pretrain with arm 'none'")
        arm_config = constant_weight(cfg, data, base_used, lam=hp.lam, timesteps=hp.timesteps,
                                     progress=progress and place.lead)
    meta = {"arm": arm, "seed": int(seed), "adapter": adapter, "base_dir": base_used, "data": data_fingerprint(data),
            "model": {k: v for k, v in model.transformer.config.items() if not k.startswith("_")},
            "n_clips": len(data), "hyperparameters": hp.record(), "parameters": count_parameters(model)}
    if arm_config:
        meta["arm_config"] = arm_config
    if place.lead:
        out_dir.mkdir(parents=True, exist_ok=True)
        _check_run_meta(out_dir, meta)
    model.to(place.device).train()
    return place, model, ArmInputs(arm, hp.lam, textures, arm_config.get("weight"),
                                   cfg.finetune.oracle_factor), meta


def _placement(cfg: Profile, batch_size: int) -> Placement:
    """This process's device and rank (`resolve_device`, `distributed`); the batch must split evenly."""
    device = resolve_device(cfg)
    rank, world = distributed(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes")
    return Placement(device, rank, world)


def _resume(out_dir: Path, model: EisbachDiT, adapter: str | None, state: RunState, lead: bool) -> RunState:
    """Load the newest checkpoint that has a state.pt into `model` and `state`, dropping log chunks written
    after it; without one, the run starts at step 0 and an old log folder is removed."""
    ckpts = list_checkpoints(out_dir)
    resumable = [s for s, f in ckpts.items() if (f / "state.pt").exists()]
    if not resumable:
        if lead:
            shutil.rmtree(out_dir / LOG_DIR, ignore_errors=True)
        return state
    folder = ckpts[resumable[-1]]
    _load_weights(model, adapter, folder)
    state.load_state_dict(torch.load(folder / "state.pt", weights_only=True))
    if lead:
        _drop_stale_logs(out_dir, state.step)
    return state


def _forward(model: EisbachDiT, hp: Training, place: Placement):
    """The callable the step runs: the model, with gradient checkpointing (CUDA, `grad_checkpointing`),
    wrapped in DistributedDataParallel on several processes, compiled (CUDA, `compile`)."""
    if place.cuda and hp.grad_checkpointing:
        model.transformer.enable_gradient_checkpointing()
    forward = model
    if place.world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[place.device.index] if place.cuda else None)
    return torch.compile(forward) if (place.cuda and hp.compile) else forward


def _check_run_meta(out_dir: Path, meta: dict) -> None:
    """Write run.json, or check that an existing one describes the same run (arm, seed, adapter, data,
    model config and the RESUME_KEYS hyper-parameters; the step count and checkpoints may change, so a
    run can be extended); a mismatch raises instead of mixing two runs in one folder."""
    path = out_dir / RUN_META
    if path.exists():
        old = json.loads(path.read_text())
        def same(a, b) -> bool:
            return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

        diff = [k for k in ("arm", "seed", "adapter", "data", "model") if not same(old.get(k), meta[k])]
        diff += [f"hyperparameters.{k}" for k in RESUME_KEYS
                 if not same(old.get("hyperparameters", {}).get(k), meta["hyperparameters"].get(k))]
        if diff:
            raise ValueError(f"{out_dir} holds a different run ({', '.join(diff)} differ); use another folder or delete it")
    else:
        atomic_json(path, meta)


def _finish(out_dir: Path, model: EisbachDiT, adapter: str | None, meta: dict) -> Path:
    """Final weights at the run folder's top level, the whole log in two files, then done.json."""
    model.cpu()
    _save_weights(model, adapter, out_dir)
    samples, steps = read_log(out_dir, "samples"), read_log(out_dir, "steps")
    _atomic_parquet(samples, out_dir / log_file("samples"))
    _atomic_parquet(steps, out_dir / log_file("steps"))
    tail = steps.tail(max(1, len(steps) // 10))
    summary = {**meta, "steps": int(meta["hyperparameters"]["steps"]), "final_loss": float(tail["loss"].mean()),
               "final_loss_unweighted": float(tail["loss_unweighted"].mean()),
               "mean_samples_per_s": float(steps["samples_per_s"].median()),
               "checkpoints": sorted(list_checkpoints(out_dir)), "torch": torch.__version__}
    atomic_json(out_dir / DONE, summary)  # written last: its presence marks the run finished
    return out_dir


# --------------------------------------------------------------------------------------------
# the grid and the base


def shard_items(items: list, shard: str = "0/1") -> list:
    """Shard "i/n": items k with k % n == i (the n shards partition the list)."""
    try:
        i, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/2), got {shard!r}") from None
    if n <= 0 or not 0 <= i < n:
        raise ValueError(f"shard {shard!r}: need n > 0 and 0 <= i < n")
    return [item for k, item in enumerate(items) if k % n == i]


def _finetune_split(data: PreEncoded) -> PreEncoded:
    splits = set(data.manifest["split"]) if "split" in data.manifest.columns else {"finetune"}
    return data if splits == {"finetune"} else data.split("finetune")


def _grid_worker(cfg: Profile, data: PreEncoded, items: list[dict]) -> None:
    """One worker process of `run_grid`: one torch thread, its runs in order, no progress bars."""
    torch.set_num_threads(1)
    base = base_dir_for(cfg)
    for item in items:
        train_run(cfg, data, item["run_dir"], arm=item["arm"], seed=item["seed"], adapter=item["adapter"],
                  base_dir=base, progress=False)


def _run_grid_workers(cfg: Profile, data: PreEncoded, items: list[dict], workers: int, progress: bool) -> None:
    """Train `items` in `workers` spawned processes (worker i takes shard_items(items, "i/workers"), one torch thread, the
    environment's OMP/MKL thread counts set to 1 while they start) and wait for all; the parent
    shows the finished runs (done.json) as they appear. A failed worker raises RuntimeError naming
    its shard and exit code, after the others have finished (their runs are kept)."""
    failed = run_workers(_grid_worker, [(cfg, data, shard_items(items, f"{i}/{workers}")) for i in range(workers)],
                         [f"grid {i}/{workers}" for i in range(workers)],
                         lambda: len(finished_runs([it["run_dir"] for it in items])), len(items),
                         f"grid ({workers} workers)", progress)
    if failed:
        raise RuntimeError(f"run_grid: worker {', '.join(failed)} failed; its traceback is above. Finished runs are "
                           f"kept; run the grid again to resume")


def run_grid(cfg: Profile, data: PreEncoded, shard: str = "0/1", progress: bool = True,
             workers: int | None = None) -> list[Path]:
    """Train this shard's runs of the grid on the `finetune` split (selected here when `data` holds
    several splits), skipping finished runs and resuming interrupted ones. Returns the run folders.

    `workers` (default `finetune.workers`, config.Finetune) > 1 on the CPU: the shard's
    unfinished runs are split over that many spawned one-thread processes (`_run_grid_workers`).
    Every run depends only on (cfg, data, arm, seed), so the runs are the same as in one process
    with one thread (tests/test_train.py checks the adapters bit for bit). The `constant` arm's
    weight is computed here first, so the workers read it from its cache instead of racing."""
    items = shard_items(grid_items(cfg), shard)
    data = _finetune_split(data)
    base = base_dir_for(cfg)
    load_base(base)  # fail at once, naming the files, when there is no base
    workers = cfg.finetune.workers if workers is None else int(workers)
    todo = [it for it in items if not is_finished(it["run_dir"])]
    if workers > 1 and len(todo) > 1 and resolve_device(cfg).type == "cpu":
        if any(it["arm"] == "constant" for it in todo):
            constant_weight(cfg, data, str(base.resolve()), lam=cfg.finetune.lam, timesteps=cfg.finetune.timesteps,
                            progress=progress)
        # the workers share out the unfinished runs; an interrupted one resumes from its checkpoint
        _run_grid_workers(cfg, data, todo, min(workers, len(todo)), progress)
        return [Path(it["run_dir"]) for it in items]
    out = []
    for item in Progress(items, desc=f"grid {shard}", disable=not progress):
        out.append(train_run(cfg, data, item["run_dir"], arm=item["arm"], seed=item["seed"], adapter=item["adapter"],
                             base_dir=base, progress=progress))
    return out


def pretrain(cfg: Profile, data: PreEncoded, progress: bool = True) -> Path:
    """Train the embedded base DiT on the `base` split into <runs_dir>/base (final weights in the
    diffusers layout, loadable with load_base); skipped when finished. With model.base_dir set (real
    Stable Audio 3 weights) there is nothing to pretrain and that directory is returned."""
    if cfg.model.base_dir:
        return Path(cfg.model.base_dir)
    if "split" in data.manifest.columns and set(data.manifest["split"]) != {"base"}:
        data = data.split("base")
    return train_run(cfg, data, Layout.of(cfg).base, arm="none", seed=int(cfg.seed),
                     adapter=None, progress=progress)


__all__ = ["train_run", "pretrain", "run_grid", "shard_items", "stream_seed", "BatchOrder", "STREAMS", "weighted_step"]
