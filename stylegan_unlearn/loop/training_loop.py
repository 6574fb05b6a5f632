"""The StyleGAN2 training loop with the reference plugin seams, on CPU or CUDA, one or many processes.

Semantics follow the reference loop (phases Gmain/Greg/Dmain/Dreg with lazy regularisation and the
optimizer lr/beta rescaling, gradient accumulation over `batch_gpu` chunks, G EMA, snapshots, logs);
datasets, networks, augment pipe, loss and optimizers are all built with
`dnnlib.util.construct_class_by_name`, so any class honouring the reference interfaces plugs in. The loss
is constructed exactly like the reference: `(device=, G_mapping=, G_synthesis=, D=, augment_pipe=,
**loss_kwargs)`.

What the reference lacks and this loop adds: a device argument (CPU works), gradient averaging across
processes without DDP wrappers (losses see plain modules, so parameter names never gain a `module.`
prefix), strict name matching when loading `resume_pkl`, a resume sidecar that continues the image
counter, optimizer and loss state, and a guard that stops on non-finite gradients or parameters.
"""
import copy
import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import psutil
import torch

import dnnlib
from stylegan_unlearn import images as image_utils
from stylegan_unlearn.data import check_dataset_matches_network
from stylegan_unlearn.device import rank_device
from stylegan_unlearn.fileio import atomic_write_text, remove_orphaned_temp_files
from stylegan_unlearn.loop import snapshots
from stylegan_unlearn.pkl import NETWORK_KEYS, load_networks
from torch_utils import misc, training_stats

__all__ = ["training_loop", "NonFiniteError"]


class NonFiniteError(RuntimeError):
    """Training produced NaN/Inf gradients or parameters; the run stopped, earlier snapshots are intact."""


def _log(rank: int, *parts: Any) -> None:
    if rank == 0:
        print(*parts, flush=True)


def _grid_shape(resolution: int) -> tuple:
    """Reference grid size (`7680 // W` by `4320 // H` cells), capped at 16x16 cells to keep snapshots cheap."""
    gw = int(np.clip(7680 // resolution, 7, 16))
    gh = int(np.clip(4320 // resolution, 4, 16))
    return gw, gh


def _setup_grid(training_set: Any, random_seed: int, grid_size: Optional[Sequence[int]]):
    """Pick real images for the grid; for labelled datasets one label per row, as in the reference."""
    gw, gh = grid_size if grid_size is not None else _grid_shape(training_set.resolution)
    rnd = np.random.RandomState(random_seed)
    order = np.arange(len(training_set))
    rnd.shuffle(order)
    if training_set.has_labels:
        by_label: Dict[tuple, List[int]] = {}
        for idx in order:
            by_label.setdefault(tuple(training_set.get_details(idx).raw_label.flatten()), []).append(int(idx))
        keys = sorted(by_label)
        picked = []
        for row in range(gh):
            members = by_label[keys[row % len(keys)]]
            picked += [members[col % len(members)] for col in range(gw)]
    else:
        picked = [int(order[i % len(order)]) for i in range(gw * gh)]
    reals, labels = zip(*[training_set[i] for i in picked])
    return (gw, gh), np.stack(reals), np.stack(labels)


def _save_image_grid(images: np.ndarray, path: str, grid: Sequence[int]) -> None:
    """Save NCHW uint8 images as a `gw x gh` grid PNG."""
    image_utils.save_grid(images.transpose(0, 2, 3, 1), path, cols=grid[0])


@torch.no_grad()
def _generate_grid(G_ema: torch.nn.Module, grid_z: List[torch.Tensor], grid_c: List[torch.Tensor]) -> np.ndarray:
    out = [G_ema(z=z, c=c, noise_mode="const").cpu() for z, c in zip(grid_z, grid_c)]
    return image_utils.to_uint8(torch.cat(out)).transpose(0, 3, 1, 2)


def _lazy_reg_optimizer(module: torch.nn.Module, opt_kwargs: dict, reg_interval: Optional[int]):
    """Build the optimizer for one network; with lazy regularisation scale lr and betas like the reference."""
    kwargs = dnnlib.EasyDict(copy.deepcopy(dict(opt_kwargs)))
    if "betas" in kwargs:
        kwargs.betas = [float(beta) for beta in kwargs.betas]
    if reg_interval is not None:
        if "lr" not in kwargs or "betas" not in kwargs:
            raise ValueError("optimizer kwargs need 'lr' and 'betas' when lazy regularisation is used")
        ratio = reg_interval / (reg_interval + 1)
        kwargs.lr = kwargs.lr * ratio
        kwargs.betas = [beta ** ratio for beta in kwargs.betas]
    return dnnlib.util.construct_class_by_name(module.parameters(), **kwargs)


def _sync_and_check_grads(module: torch.nn.Module, num_gpus: int, phase: str, cur_nimg: int) -> None:
    """Average gradients over processes, then stop on any non-finite value."""
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if num_gpus > 1:
        torch.distributed.all_reduce(flat)
        flat /= num_gpus
    if not torch.isfinite(flat).all():
        raise NonFiniteError(f"phase {phase} produced NaN/Inf gradients at kimg {cur_nimg / 1000:.3f}")
    if num_gpus > 1:
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()


def _ema_decay(batch_size: int, cur_nimg: int, ema_kimg: float, ema_rampup: Optional[float]) -> float:
    """Per-step decay of G_ema for a half-life of `ema_kimg` thousand images.

    With `ema_rampup`, the half-life is at most that fraction of the images seen so far, so that
    early in training the average does not drag along the random initial weights.
    """
    half_life = ema_kimg * 1000
    if ema_rampup is not None:
        half_life = min(half_life, ema_rampup * cur_nimg)
    return 0.5 ** (batch_size / max(half_life, 1e-8))


@torch.no_grad()
def _follow_generator(G_ema: torch.nn.Module, G: torch.nn.Module, decay: float) -> None:
    """Move every G_ema parameter towards G's, keeping `decay` of its own value; copy the buffers outright."""
    for averaged, current in zip(G_ema.parameters(), G.parameters()):
        averaged.copy_(torch.lerp(current, averaged, decay))
    for averaged, current in zip(G_ema.buffers(), G.buffers()):
        averaged.copy_(current)


def _check_params_finite(modules: Dict[str, torch.nn.Module], cur_nimg: int) -> None:
    for name, module in modules.items():
        flat = torch.cat([p.detach().flatten() for p in module.parameters()])
        if not torch.isfinite(flat).all():
            raise NonFiniteError(f"{name} has NaN/Inf parameters at kimg {cur_nimg / 1000:.3f}")


def _broadcast_module(module: Optional[torch.nn.Module]) -> None:
    if module is None:
        return
    for tensor in misc.params_and_buffers(module):
        torch.distributed.broadcast(tensor.data, src=0)


def _copy_strict(src: torch.nn.Module, dst: torch.nn.Module, what: str) -> None:
    """Copy weights by name; unlike the reference, name or shape mismatches are an error, not a silent skip."""
    src_tensors = dict(misc.named_params_and_buffers(src))
    missing, mismatched = [], []
    for name, tensor in misc.named_params_and_buffers(dst):
        if name not in src_tensors:
            if not name.endswith("resample_filter"):  # constants rebuilt from kwargs
                missing.append(name)
        elif tuple(src_tensors[name].shape) != tuple(tensor.shape):
            mismatched.append(f"{name} {list(src_tensors[name].shape)} vs {list(tensor.shape)}")
    if missing or mismatched:
        details = (missing + mismatched)[:3]
        raise ValueError(f"the resume pkl's {what} does not match the network being trained "
                         f"({len(missing)} missing, {len(mismatched)} differently shaped tensors, e.g. "
                         f"{'; '.join(details)}); build the run from the pkl's own architecture")
    misc.copy_params_and_buffers(src, dst, require_all=False)


# Loss classes that moved: sidecars that name the old place still continue their run.
MOVED_LOSS_CLASSES = {"stylegan_unlearn.mnist.balance.ClassBalanceLoss": "training_hooks.balance.ClassBalanceLoss"}


def _run_key(training_set_kwargs: dict, loss_kwargs: dict) -> Dict[str, Any]:
    """What must match for a sidecar to continue a run rather than seed a new one: loss class and data."""
    return dict(loss=loss_kwargs.get("class_name"), data=os.path.abspath(str(training_set_kwargs.get("path", ""))))


def _same_run(stored_key: Any, run_key: Dict[str, Any]) -> bool:
    """Whether a sidecar's run key is this run's (a loss class that moved counts as itself)."""
    if not isinstance(stored_key, dict):
        return False
    stored = dict(stored_key, loss=MOVED_LOSS_CLASSES.get(stored_key.get("loss"), stored_key.get("loss")))
    return stored == run_key


def _cpu_state(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _loss_state(loss: Any) -> Optional[Any]:
    if callable(getattr(loss, "state_dict", None)):
        return loss.state_dict()
    if isinstance(getattr(loss, "pl_mean", None), torch.Tensor):
        return dict(pl_mean=loss.pl_mean.detach().cpu())
    return None


def _load_loss_state(loss: Any, state: Optional[Any], device: torch.device) -> None:
    if state is None:
        return
    if callable(getattr(loss, "load_state_dict", None)):
        loss.load_state_dict(state)
    elif isinstance(state, dict) and "pl_mean" in state and isinstance(getattr(loss, "pl_mean", None), torch.Tensor):
        loss.pl_mean.copy_(state["pl_mean"].to(device))


def _worker_error(err: BaseException) -> Optional[BaseException]:
    """The original error of a DataLoader worker, without torch's wrapping traceback; None if not one."""
    text = str(err)
    if "in DataLoader worker process" not in text.split("\n", 1)[0]:
        return None
    prefix = f"{type(err).__name__}: "
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    if not last.startswith(prefix):
        return None
    try:
        return type(err)(last[len(prefix):])
    except Exception:
        return None


def _next_batch(iterator: Any) -> Any:
    """`next(iterator)`; an error raised in a DataLoader worker comes back as its own one-line message."""
    try:
        return next(iterator)
    except Exception as err:
        original = _worker_error(err)
        if original is None:
            raise
        raise original from None


def _remove_temp_files(rank: int, directories: Sequence[str]) -> None:
    """Delete temp files that a killed run's atomic writes left behind (see `fileio.remove_orphaned_temp_files`)."""
    for directory in dict.fromkeys(os.path.abspath(d) for d in directories):
        removed = remove_orphaned_temp_files(directory)
        if removed:
            _log(rank, f"Removed {len(removed)} temporary file(s) left in {directory} by an interrupted write")


def _optimizer_state_to(state: dict, device: torch.device) -> dict:
    return {k: (_optimizer_state_to(v, device) if isinstance(v, dict) else
                v.to(device) if isinstance(v, torch.Tensor) and k != "step" else v) for k, v in state.items()}


def training_loop(
    run_dir: str = ".",
    training_set_kwargs: dict = {},
    data_loader_kwargs: dict = {},
    G_kwargs: dict = {},
    D_kwargs: dict = {},
    G_opt_kwargs: dict = {},
    D_opt_kwargs: dict = {},
    augment_kwargs: Optional[dict] = None,
    loss_kwargs: dict = {},
    metrics: Sequence[str] = (),
    random_seed: int = 0,
    num_gpus: int = 1,
    rank: int = 0,
    batch_size: int = 4,
    batch_gpu: int = 4,
    ema_kimg: float = 10,
    ema_rampup: Optional[float] = None,
    G_reg_interval: Optional[int] = 4,
    D_reg_interval: Optional[int] = 16,
    augment_p: float = 0,
    ada_target: Optional[float] = None,
    ada_interval: int = 4,
    ada_kimg: float = 500,
    total_kimg: float = 25000,
    kimg_per_tick: float = 4,
    image_snapshot_ticks: Optional[int] = 50,
    network_snapshot_ticks: Optional[int] = 50,
    resume_pkl: Optional[str] = None,
    resume_G_from: str = "G",
    cudnn_benchmark: bool = True,
    allow_tf32: bool = False,
    abort_fn: Optional[Callable[[], bool]] = None,
    progress_fn: Optional[Callable[[float, float], None]] = None,
    device: Any = None,
    grid_size: Optional[Sequence[int]] = None,
    anchor_to_start: bool = False,
) -> Dict[str, Any]:
    """Train (or fine-tune) G and D; see the module docstring. Returns a summary dict (rank 0).

    `resume_G_from` ('G' or 'G_ema') picks which network of a fresh `resume_pkl` initialises the trained
    G (the official Adapt-then-Unlearn code adapts from `g_ema` and unlearns from `g`); a pkl with a resume
    sidecar always continues from its own G. `anchor_to_start` keeps the starting G/D weights in every resume
    sidecar, so that a resumed run rebuilds a loss anchored on them (needed for EWC).
    """
    start_time = time.time()
    device = torch.device(device) if device is not None else rank_device(rank)
    seed = random_seed * num_gpus + rank
    np.random.seed(seed % (1 << 31))
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
    if batch_size % (batch_gpu * num_gpus) != 0:
        raise ValueError(f"batch size {batch_size} must be a multiple of batch_gpu x gpus = {batch_gpu} x {num_gpus}")
    if resume_G_from not in ("G", "G_ema"):
        raise ValueError(f"resume_G_from must be 'G' or 'G_ema', got {resume_G_from!r}")

    # Resume state first: it decides where counters and samplers start.
    if rank == 0:
        _remove_temp_files(rank, [run_dir] + ([os.path.dirname(resume_pkl) or "."] if resume_pkl else []))
    resume_data, resume_state, has_sidecar = None, None, False
    if resume_pkl is not None:
        resume_data = load_networks(resume_pkl, NETWORK_KEYS)
        resume_state = snapshots.load_sidecar(resume_pkl, warn=lambda message: _log(rank, f"Warning: {message}"))
        has_sidecar = os.path.isfile(snapshots.sidecar_path(resume_pkl))  # an ignored one was warned about
        run_key = _run_key(training_set_kwargs, loss_kwargs)
        if resume_state is not None and not _same_run(resume_state.get("run_key"), run_key):
            _log(rank, f"'{resume_pkl}' was saved by a run with another loss or dataset; "
                       "starting a new run from its weights at kimg 0")
            resume_state = None
    cur_nimg = int(resume_state["cur_nimg"]) if resume_state else 0
    if resume_state:  # a different stream of randomness than the first run's, but reproducible
        np.random.seed((seed + cur_nimg) % (1 << 31))
        torch.manual_seed(seed + cur_nimg)

    # Data.
    _log(rank, "Loading training set...")
    training_set = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    sampler = misc.InfiniteSampler(dataset=training_set, rank=rank, num_replicas=num_gpus,
                                   seed=random_seed + cur_nimg)
    loader_kwargs = dict(data_loader_kwargs)
    if device.type != "cuda":
        loader_kwargs["pin_memory"] = False
    if not loader_kwargs.get("num_workers"):
        loader_kwargs.pop("prefetch_factor", None)
    training_set_iterator = iter(torch.utils.data.DataLoader(
        dataset=training_set, sampler=sampler, batch_size=batch_size // num_gpus, **loader_kwargs))
    _log(rank, f"Num images: {len(training_set)}  Image shape: {training_set.image_shape}  "
               f"Label shape: {training_set.label_shape}")

    # Networks.
    _log(rank, "Constructing networks...")
    common_kwargs = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution,
                         img_channels=training_set.num_channels)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    check_dataset_matches_network(training_set, G)
    G_ema = copy.deepcopy(G).eval()

    if resume_data is not None:
        _log(rank, f"Resuming from '{resume_pkl}'")
        g_source = "G" if resume_state else resume_G_from
        _copy_strict(resume_data[g_source], G, g_source)
        _copy_strict(resume_data["D"], D, "D")
        _copy_strict(resume_data["G_ema"], G_ema, "G_ema")
        if resume_state:
            _log(rank, f"Continuing at kimg {cur_nimg / 1000:.3f} with the saved optimizer and loss state")
        elif not has_sidecar:
            _log(rank, "The pkl has no resume state (no optimizer state, e.g. an official pkl): "
                       "optimizers start fresh at kimg 0")
        del resume_data

    # Augmentation.
    augment_pipe = None
    ada_stats = None
    if augment_kwargs is not None and (augment_p > 0 or ada_target is not None):
        augment_pipe = dnnlib.util.construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
        augment_pipe.p.copy_(torch.as_tensor(augment_p))
        if resume_state and resume_state.get("augment_p") is not None:
            augment_pipe.p.copy_(torch.as_tensor(resume_state["augment_p"]))
        if ada_target is not None:
            ada_stats = training_stats.Collector(regex="Loss/signs/real")

    if num_gpus > 1:
        for module in (G, D, G_ema, augment_pipe):
            _broadcast_module(module)

    # Loss and phases. The loss sees the networks at the run's starting weights (EWC anchors on them, and
    # its Fisher comes from them); a resumed run rebuilds it from the starting weights kept in the sidecar.
    _log(rank, "Setting up training phases...")
    initial_networks = resume_state.get("initial_networks") if resume_state else None
    if initial_networks is None and anchor_to_start:
        initial_networks = {name: _cpu_state(module) for name, module in (("G", G), ("D", D))}
    current = None
    if resume_state and initial_networks is not None:
        current = {name: _cpu_state(module) for name, module in (("G", G), ("D", D))}
        G.load_state_dict(initial_networks["G"])
        D.load_state_dict(initial_networks["D"])
    loss = dnnlib.util.construct_class_by_name(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                               augment_pipe=augment_pipe, **loss_kwargs)
    if current is not None:
        G.load_state_dict(current["G"])
        D.load_state_dict(current["D"])
    if not anchor_to_start:
        initial_networks = None
    phases = []
    for name, module, opt_kwargs, reg_interval in [("G", G, G_opt_kwargs, G_reg_interval),
                                                   ("D", D, D_opt_kwargs, D_reg_interval)]:
        opt = _lazy_reg_optimizer(module, opt_kwargs, reg_interval)
        if reg_interval is None:
            phases.append(dnnlib.EasyDict(name=name + "both", module=module, opt=opt, interval=1))
        else:
            phases.append(dnnlib.EasyDict(name=name + "main", module=module, opt=opt, interval=1))
            phases.append(dnnlib.EasyDict(name=name + "reg", module=module, opt=opt, interval=reg_interval))
    optimizers = {"G": phases[0].opt, "D": phases[-1].opt}
    batch_idx = 0
    if resume_state:
        for key, opt in optimizers.items():
            opt.load_state_dict(resume_state["optimizers"][key])
            opt.state.update({p: _optimizer_state_to(s, device) for p, s in opt.state.items()})
        _load_loss_state(loss, resume_state.get("loss"), device)
        batch_idx = int(resume_state.get("batch_idx", 0))

    # Image grid.
    grid_z = grid_c = None
    grid = None
    if rank == 0:
        grid, reals, labels = _setup_grid(training_set, random_seed, grid_size)
        _save_image_grid(reals, os.path.join(run_dir, "reals.png"), grid)
        grid_z = torch.randn([labels.shape[0], G.z_dim], device=device).split(batch_gpu)
        grid_c = torch.from_numpy(labels).to(device).split(batch_gpu)
        if not resume_state:
            _save_image_grid(_generate_grid(G_ema, grid_z, grid_c), os.path.join(run_dir, "fakes_init.png"), grid)

    # Logs.
    stats_collector = training_stats.Collector(regex=".*")
    stats_jsonl = open(os.path.join(run_dir, "stats.jsonl"), "at") if rank == 0 else None

    if metrics:
        _log(rank, f"Note: this loop does not compute metrics during training ({', '.join(metrics)}); "
                   "run `stylegan-unlearn evaluate` on the snapshots")
    _log(rank, f"Training for {total_kimg:g} kimg...")
    cur_tick = int(resume_state.get("cur_tick", 0)) if resume_state else 0
    tick_start_nimg = cur_nimg
    tick_start_time = time.time()
    maintenance_time = tick_start_time - start_time
    last_snapshot = None
    summary: Dict[str, Any] = {}
    if progress_fn is not None:
        progress_fn(cur_nimg / 1000, total_kimg)

    def save_network_snapshot() -> Optional[str]:
        if rank != 0:
            return None
        data = snapshots.snapshot_modules(dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe),
                                          training_set_kwargs)
        state = dict(cur_nimg=cur_nimg, cur_tick=cur_tick + 1, batch_idx=batch_idx,
                     optimizers={k: opt.state_dict() for k, opt in optimizers.items()},
                     loss=_loss_state(loss),
                     augment_p=float(augment_pipe.p) if augment_pipe is not None else None,
                     initial_networks=initial_networks,
                     run_key=_run_key(training_set_kwargs, loss_kwargs),
                     random_seed=random_seed, batch_size=batch_size, num_gpus=num_gpus)
        path = snapshots.snapshot_path(run_dir, cur_nimg)
        snapshots.save_snapshot(path, data, state)
        return path

    try:
        while True:
            # Fetch data: one real batch for all phases, latents and labels per phase.
            phase_real_img, phase_real_c = _next_batch(training_set_iterator)
            phase_real_img = (phase_real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu)
            phase_real_c = phase_real_c.to(device).split(batch_gpu)
            all_gen_z = torch.randn([len(phases) * batch_size, G.z_dim], device=device)
            all_gen_z = [z.split(batch_gpu) for z in all_gen_z.split(batch_size)]
            all_gen_c = [training_set.get_label(np.random.randint(len(training_set)))
                         for _ in range(len(phases) * batch_size)]
            all_gen_c = torch.from_numpy(np.stack(all_gen_c)).to(device)
            all_gen_c = [c.split(batch_gpu) for c in all_gen_c.split(batch_size)]

            for phase, phase_gen_z, phase_gen_c in zip(phases, all_gen_z, all_gen_c):
                if batch_idx % phase.interval != 0:
                    continue
                phase_start = time.perf_counter()
                phase.opt.zero_grad(set_to_none=True)
                phase.module.requires_grad_(True)
                rounds = list(zip(phase_real_img, phase_real_c, phase_gen_z, phase_gen_c))
                for round_idx, (real_img, real_c, gen_z, gen_c) in enumerate(rounds):
                    loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z,
                                              gen_c=gen_c, sync=(round_idx == len(rounds) - 1), gain=phase.interval)
                phase.module.requires_grad_(False)
                _sync_and_check_grads(phase.module, num_gpus, phase.name, cur_nimg)
                phase.opt.step()
                training_stats.report0("Timing/" + phase.name, (time.perf_counter() - phase_start) * 1000)

            _follow_generator(G_ema, G, _ema_decay(batch_size, cur_nimg, ema_kimg, ema_rampup))

            cur_nimg += batch_size
            batch_idx += 1

            # ADA heuristic.
            if ada_stats is not None and batch_idx % ada_interval == 0:
                ada_stats.update()
                adjust = np.sign(ada_stats["Loss/signs/real"] - ada_target) * (batch_size * ada_interval) / (ada_kimg * 1000)
                augment_pipe.p.copy_((augment_pipe.p + adjust).clamp(min=0))

            done = cur_nimg >= total_kimg * 1000
            if not done and cur_tick != 0 and cur_nimg < tick_start_nimg + kimg_per_tick * 1000:
                continue

            # Tick.
            _check_params_finite(dict(G=G, D=D), cur_nimg)
            tick_end_time = time.time()
            tick_kimg = (cur_nimg - tick_start_nimg) / 1000
            sec_per_tick = tick_end_time - tick_start_time
            sec_per_kimg = sec_per_tick / max(tick_kimg, 1e-8)
            eta = max(total_kimg * 1000 - cur_nimg, 0) / 1000 * sec_per_kimg
            fields = [
                f"tick {training_stats.report0('Progress/tick', cur_tick):<5d}",
                f"kimg {training_stats.report0('Progress/kimg', cur_nimg / 1e3):<8.3f}",
                f"time {dnnlib.util.format_time(training_stats.report0('Timing/total_sec', tick_end_time - start_time)):<12s}",
                f"sec/tick {training_stats.report0('Timing/sec_per_tick', sec_per_tick):<7.1f}",
                f"sec/kimg {training_stats.report0('Timing/sec_per_kimg', sec_per_kimg):<7.2f}",
                f"maintenance {training_stats.report0('Timing/maintenance_sec', maintenance_time):<6.1f}",
                f"cpumem {training_stats.report0('Resources/cpu_mem_gb', psutil.Process(os.getpid()).memory_info().rss / 2**30):<6.2f}",
            ]
            if device.type == "cuda":
                fields.append(f"gpumem {training_stats.report0('Resources/peak_gpu_mem_gb', torch.cuda.max_memory_allocated(device) / 2**30):<6.2f}")
                torch.cuda.reset_peak_memory_stats()
            fields.append(f"augment {training_stats.report0('Progress/augment', float(augment_pipe.p) if augment_pipe is not None else 0):.3f}")
            fields.append(f"eta {dnnlib.util.format_time(eta)}")
            training_stats.report0("Timing/total_hours", (tick_end_time - start_time) / 3600)
            training_stats.report0("Timing/total_days", (tick_end_time - start_time) / 86400)
            _log(rank, " ".join(fields))

            if abort_fn is not None and abort_fn():
                done = True
                _log(rank, "Aborting...")

            # Snapshots.
            if rank == 0 and image_snapshot_ticks is not None and (done or cur_tick % image_snapshot_ticks == 0):
                _save_image_grid(_generate_grid(G_ema, grid_z, grid_c),
                                 snapshots.image_grid_path(run_dir, cur_nimg), grid)
            if network_snapshot_ticks is not None and (done or cur_tick % network_snapshot_ticks == 0):
                if num_gpus > 1:
                    for module in (G, D, G_ema):
                        misc.check_ddp_consistency(module, ignore_regex=r".*\.[^.]+_(avg|ema)")
                path = save_network_snapshot()
                if path is not None:
                    last_snapshot = path
                    _log(rank, f"Saved {path}")

            # Statistics.
            stats_collector.update()
            if stats_jsonl is not None:
                # Only statistics reported in this run (a process may have run other losses before).
                reported = {name: value for name, value in stats_collector.as_dict().items() if value["num"] > 0}
                stats_jsonl.write(json.dumps(dict(reported, timestamp=time.time())) + "\n")
                stats_jsonl.flush()
            if progress_fn is not None:
                progress_fn(cur_nimg / 1000, total_kimg)

            cur_tick += 1
            tick_start_nimg = cur_nimg
            tick_start_time = time.time()
            maintenance_time = tick_start_time - tick_end_time
            if done:
                break
    except NonFiniteError as err:
        where = f"the last good snapshot is {last_snapshot}" if last_snapshot else "no snapshot was written yet"
        message = f"{err}; training stopped ({where}). Lower the learning rate or the loss weights and resume."
        _log(rank, message)
        raise NonFiniteError(message) from None
    finally:
        if stats_jsonl is not None:
            stats_jsonl.close()

    if num_gpus > 1:
        for module in (G, D, G_ema):
            misc.check_ddp_consistency(module, ignore_regex=r".*\.[^.]+_(avg|ema)")
        _log(rank, f"All {num_gpus} processes hold identical G, D and G_ema parameters")
    _log(rank, "Exiting...")
    summary.update(cur_nimg=cur_nimg, last_snapshot=last_snapshot, run_dir=run_dir)
    if rank == 0:
        atomic_write_text(os.path.join(run_dir, "final.json"), json.dumps(summary, indent=2))
    return summary
