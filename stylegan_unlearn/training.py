"""Training runs from options: the library of `train.py` / `stylegan-unlearn train` (reference options + `--mode`).

Modes:
* `train`       — ordinary StyleGAN2 training (`training_hooks.StyleGAN2Loss`), networks from `--cfg`.
* `adapt`       — Stage 1: fine-tune the `--resume` network on negative images with the EWC penalty
                  (`training_hooks.EWCLoss`); the result is one adapted network θ_N.
* `unlearn`     — Stage 2: fine-tune the `--resume` network on positive images with a repulsion term
                  away from the `--adapted` networks (`training_hooks.RepulsionLoss`).
* `extrapolate` — the parameter-space baseline θ_G + γ(θ_G − mean θ_N); no training, writes one pkl.

adapt/unlearn/extrapolate start from `--resume` and take the G/D architecture from that pkl; adapt and
unlearn start G at its G_ema. Where the user gave no value they follow the official Adapt-then-Unlearn
recipe, the one table `stylegan_unlearn.method.recipe` that the patched reference train.py reads too (batch 16,
lr 0.002, R1 γ 10, path length 2, style mixing 0.9, EMA decay 0.5^(32/10000) per step, no augmentation;
adapt 2000 iterations = 32 kimg, unlearn 1000 iterations = 16 kimg), except that R1 γ, path length and
style mixing are the pretraining's where its training_options.json lies beside `--resume`
(`--loss-settings`), and the run prints each choice.
Small-network knobs for tiny models and MNIST: `--cbase`, `--cmax`, `--map`, `--zdim`, `--wdim`,
`--mbstd-group` (train mode only).

`DEFAULTS` is the one table of the options and their defaults (the command gives each its click option
with that default); `train(mode=..., outdir=..., **options)` runs one training from options named as the
command's and returns the run directory; `trained_network(run_dir)` is the network it produced.
Everything raises ordinary exceptions (`UserError`, a ValueError, for bad options).
"""
import json
import math
import os
import re
import sys
from typing import Any, Collection, Dict, List, Optional, Tuple

import torch

import dnnlib
from stylegan_unlearn.data import ImageDataset, check_dataset_matches_network
from stylegan_unlearn.device import DEFAULT_DEVICE, resolve_device
from stylegan_unlearn.fileio import atomic_write_bytes, atomic_write_text, check_writable_dir
from stylegan_unlearn.loop.launch import choose_device_type, launch_training, torchrun_environment
from stylegan_unlearn.method import options as method_options
from stylegan_unlearn.method import recipe
from stylegan_unlearn.method.architecture import check_adapted_networks
from stylegan_unlearn.method.negative_fakes import load_negative_images
from stylegan_unlearn.method.extrapolate import extrapolate
from stylegan_unlearn.method.params import gather_aligned, select_params
from stylegan_unlearn.pkl import NETWORK_KEYS, check_network_file, load_networks, network_pkl_bytes

__all__ = ["MODES", "DEFAULTS", "UserError", "training_options", "build_training_options", "recipe_report",
           "run_training", "train", "trained_network"]

MODES = ("train", "adapt", "unlearn", "extrapolate")
CFG_SPECS = {
    #            ref_gpus, kimg,   mb, mbstd, fmaps,  lrate,  gamma, ema, ramp, map
    "auto":      (-1,  25000,  -1,  -1,  -1,     -1,     -1,    -1,  0.05, 2),
    "stylegan2": (8,   25000,  32,  4,   1,      0.002,  10,    10,  None, 8),
    "paper256":  (8,   25000,  64,  8,   0.5,    0.0025, 1,     20,  None, 8),
    "paper512":  (8,   25000,  64,  8,   1,      0.0025, 0.5,   20,  None, 8),
    "paper1024": (8,   25000,  32,  4,   1,      0.002,  2,     10,  None, 8),
    "cifar":     (2,   100000, 64,  32,  1,      0.0025, 0.01,  500, 0.05, 2),
}
REFERENCE_REG_INTERVALS = (4, 16)  # the reference train.py's G / D lazy-regularisation intervals (train mode)
GENERATOR_CLASS = "stylegan_unlearn.networks.stylegan2.Generator"
DISCRIMINATOR_CLASS = "stylegan_unlearn.networks.stylegan2.Discriminator"
AUGMENT_CLASS = "stylegan_unlearn.loop.augment.DiffAugment"
AUGPIPE_CHOICES = ("xflip", "translation", "cutout", "color")


# Float options that must be finite numbers, and the ones that must also be positive or non-negative.
FINITE_OPTIONS = ("kimg", "tick", "gamma", "glr", "dlr", "p", "target", "pl_weight", "style_mixing", "ema_kimg",
                  "ewc_lambda", "repulsion_weight", "alpha", "extrapolate_gamma", "negative_weight")
POSITIVE_OPTIONS = ("alpha",)
NON_NEGATIVE_OPTIONS = ("ewc_lambda", "repulsion_weight", "negative_weight")


# Every option of a training run with its default; None where the mode, the --cfg preset or the official
# recipe decides. `stylegan_unlearn.commands.train` gives each of these its click option with this default.
DEFAULTS: Dict[str, Any] = dict(
    outdir=None, mode="train", data=None, resume=None, gpus=1, device=DEFAULT_DEVICE, batch=None, batch_gpu=None,
    kimg=None, tick=None, snap=None, seed=0, cond=False, subset=None, mirror=False, cfg="auto", gamma=None,
    glr=None, dlr=None, aug="noaug", p=None, target=None, augpipe="translation,cutout,color", freezed=0, fp32=None,
    workers=min(3, os.cpu_count() or 1), cbase=None, cmax=None, map=None, zdim=None, wdim=None, mbstd_group=None,
    pl_weight=None, style_mixing=None, ema_kimg=None,
    **{entry.name: (() if entry.multiple else entry.default) for entry in method_options.OPTIONS},
    metrics="none", desc=None, dry_run=False,
)


class UserError(ValueError):
    """A problem with the command line or its inputs, reported as one sentence."""


def _check_numbers(opts: dnnlib.EasyDict) -> None:
    """Refuse NaN/Inf in every float option, α ≤ 0 (EL2 would attract) and negative λ or repulsion weights."""
    for name in FINITE_OPTIONS:
        value = opts.get(name)
        if value is None:
            continue
        option = "--" + name.replace("_", "-")
        if not math.isfinite(value):
            raise UserError(f"{option} must be a finite number, got {value}")
        if name in POSITIVE_OPTIONS and value <= 0:
            raise UserError(f"{option} must be positive, got {value:g} (α ≤ 0 turns the EL2 repulsion into an "
                            "attraction towards the adapted networks)")
        if name in NON_NEGATIVE_OPTIONS and value < 0:
            raise UserError(f"{option} must not be negative, got {value:g} (it would pull the network the "
                            "wrong way)")


def _check_negatives(opts: dnnlib.EasyDict, resume: Optional[Dict[str, Any]]) -> None:
    """--negatives belongs to unlearn, must open as a dataset and match the --resume generator's images."""
    if not opts.get("negatives"):
        if opts.get("negative_weight") is not None:
            raise UserError("--negative-weight needs --negatives=PATH (the negative images D should call fake)")
        return
    if opts.mode != "unlearn":
        raise UserError(f"--negatives is only used by --mode=unlearn, not --mode={opts.mode}")
    for path in opts.negatives:
        try:
            load_negative_images(path, resume["G"] if resume is not None else None)
        except (OSError, ValueError) as err:
            raise UserError(f"--negatives: {err}") from None


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _check_adapted(paths: List[str], resume_path: str, resume: Dict[str, Any], params: str) -> None:
    """Each --adapted pkl must load, match the --resume architecture and differ from it (else d = 0)."""
    for path in paths:
        if os.path.samefile(path, resume_path):
            raise UserError(f"--adapted '{path}' is the --resume network itself; pass a network made by "
                            "--mode=adapt (its distance to --resume would be 0)")
        adapted = load_networks(path, NETWORK_KEYS, option="--adapted")["G_ema"]
        for key in ("G", "G_ema"):
            named = select_params(resume[key], params)
            try:
                tensors = gather_aligned(adapted, [n for n, _ in named], [p.shape for _, p in named],
                                         f"--adapted network '{path}'")
            except ValueError as err:
                raise UserError(str(err)) from None
            if all(torch.equal(a.detach().cpu(), p.detach().cpu()) for a, (_, p) in zip(tensors, named)):
                raise UserError(f"--adapted '{path}' has the same weights as the --resume network's {key}; "
                                "pass a network made by --mode=adapt (its distance to --resume would be 0)")


def _plain(value: Any) -> Any:
    """Nested dicts/lists of JSON-serialisable values (EasyDicts, tuples and numpy scalars converted)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _next_run_dir(outdir: str, desc: str) -> str:
    ids = [int(m.group()) for m in (re.match(r"^\d+", name) for name in os.listdir(outdir)
                                    if os.path.isdir(os.path.join(outdir, name))) if m]
    return os.path.join(outdir, f"{max(ids, default=-1) + 1:05d}-{desc}")


def _network_init_kwargs(module: Any, what: str, path: str) -> Dict[str, Any]:
    kwargs = getattr(module, "init_kwargs", None)
    if kwargs is None:
        raise UserError(f"{what} in '{path}' does not record its constructor arguments; it cannot be fine-tuned "
                        "here (convert it with `stylegan-unlearn convert` first)")
    kwargs = _plain(dict(kwargs))
    for key in ("c_dim", "img_resolution", "img_channels"):  # filled in from the dataset by the loop
        kwargs.pop(key, None)
    return kwargs


def _set_fp32(kwargs: Dict[str, Any], generator: bool) -> None:
    target = kwargs.setdefault("synthesis_kwargs", {}) if generator and "synthesis_kwargs" in kwargs else kwargs
    target["num_fp16_res"] = 0
    target["conv_clamp"] = None


def _cfg_spec(cfg: str, gpus: int, resolution: int) -> dnnlib.EasyDict:
    ref_gpus, kimg, mb, mbstd, fmaps, lrate, gamma, ema, ramp, map_ = CFG_SPECS[cfg]
    spec = dnnlib.EasyDict(ref_gpus=ref_gpus, kimg=kimg, mb=mb, mbstd=mbstd, fmaps=fmaps, lrate=lrate, gamma=gamma,
                           ema=ema, ramp=ramp, map=map_)
    if cfg == "auto":
        spec.ref_gpus = gpus
        spec.mb = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
        spec.mbstd = min(spec.mb // gpus, 4)
        spec.fmaps = 1 if resolution >= 512 else 0.5
        spec.lrate = 0.002 if resolution >= 1024 else 0.0025
        spec.gamma = 0.0002 * (resolution ** 2) / spec.mb
        spec.ema = spec.mb * 10 / 32
    return spec


def _recipe_decisions(opts: dnnlib.EasyDict, given: Optional[Collection[str]]) -> List[recipe.Decision]:
    """adapt/unlearn: each official-recipe setting for this run, the user's value where one was given.

    `given` names the options the user set (an option given at its default value still wins); None counts
    every option that is not None as given.
    """
    values = {entry.name: opts.get(entry.name) for entry in recipe.RECIPE}
    if given is None:
        given = {name for name, value in values.items() if value is not None}
    pretraining, _ = _pretraining(opts)
    return recipe.decide(opts.mode, values, {name for name in values if name in given}, pretraining)


def _pretraining(opts: dnnlib.EasyDict) -> Tuple[Dict[str, float], Optional[str]]:
    """The --resume pkl's pretraining loss settings and their file, unless --loss-settings=recipe."""
    if opts.get("loss_settings", "pretraining") == "recipe" or not opts.get("resume"):
        return {}, None
    try:
        return recipe.pretraining_values(opts.resume)
    except ValueError as err:
        raise UserError(str(err)) from None


def _stage_settings(opts: dnnlib.EasyDict, given: Optional[Collection[str]]) -> Dict[str, Any]:
    """Recipe name -> value for adapt/unlearn runs; empty for the other modes."""
    if opts.mode not in recipe.STAGES:
        return {}
    return {d.setting.name: d.value for d in _recipe_decisions(opts, given)}


def recipe_report(opts: dnnlib.EasyDict, given: Optional[Collection[str]] = None) -> List[str]:
    """The lines an adapt/unlearn run prints about what it took from the official recipe, and why."""
    if opts.mode not in recipe.STAGES:
        return []
    return recipe.report_lines(opts.mode, _recipe_decisions(opts, given), set(opts), _pretraining(opts)[1],
                               opts.get("loss_settings", "pretraining"))


def build_training_options(opts: dnnlib.EasyDict,
                           given: Optional[Collection[str]] = None) -> Tuple[str, dnnlib.EasyDict]:
    """Turn the options into (run description, `training_loop` kwargs). Raises UserError (a ValueError).

    `opts` holds every option of `DEFAULTS` (see `training_options`); `given` names those the user set
    (see `_recipe_decisions`).
    """
    mode = opts.mode
    args = dnnlib.EasyDict()
    params = opts.params or (method_options.default("params", mode) if mode != "train" else None)
    gpus = opts.gpus
    if gpus < 1:
        raise UserError("--gpus must be at least 1")

    if mode != "train" and not opts.resume:
        raise UserError(f"--mode={mode} needs --resume=PKL: the pretrained network to start from")
    if mode in ("unlearn", "extrapolate") and not opts.adapted:
        raise UserError(f"--mode={mode} needs at least one --adapted=PKL (a network from --mode=adapt)")
    if mode in ("train", "adapt") and opts.adapted:
        raise UserError(f"--adapted is only used by --mode=unlearn/extrapolate, not --mode={mode}")
    if opts.data is None and mode != "extrapolate":
        raise UserError(f"--mode={mode} needs --data: a dataset folder or zip "
                        f"({'negative' if mode == 'adapt' else 'positive' if mode == 'unlearn' else 'training'} images)")
    _check_numbers(opts)
    for path in opts.adapted:
        check_network_file(path, "--adapted network")

    resume = None
    if opts.resume:
        check_network_file(opts.resume, "--resume network")
        resume = load_networks(opts.resume, NETWORK_KEYS, option="--resume")
    if opts.adapted and resume is not None:
        check_adapted_networks(opts.resume, opts.adapted, resume_G=resume["G"])
        _check_adapted(opts.adapted, opts.resume, resume, params)
    _check_negatives(opts, resume)

    # Dataset.
    if mode == "extrapolate":
        args.mode = mode
        args.resume_pkl = os.path.abspath(opts.resume)
        args.adapted = [os.path.abspath(p) for p in opts.adapted]
        args.extrapolate_gamma = opts.extrapolate_gamma
        args.params = params
        name = os.path.splitext(os.path.basename(opts.resume))[0]
        return f"extrapolate-{name}-gamma{opts.extrapolate_gamma:g}" + (f"-{opts.desc}" if opts.desc else ""), args

    c_dim = resume["G"].c_dim if resume is not None else None
    args.training_set_kwargs = dnnlib.EasyDict(class_name="stylegan_unlearn.data.ImageDataset",
                                               path=os.path.abspath(opts.data), use_labels=True, max_size=None,
                                               xflip=False)
    if opts.cond and c_dim:
        args.training_set_kwargs.label_dim = int(c_dim)
    args.training_set_kwargs.use_labels = bool(opts.cond)
    try:
        dataset = ImageDataset(**{k: v for k, v in args.training_set_kwargs.items() if k != "class_name"})
        if opts.cond and not dataset.has_labels:
            raise UserError("--cond=1 requires labels in dataset.json, but the dataset has none")
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    args.training_set_kwargs.resolution = dataset.resolution
    args.training_set_kwargs.max_size = len(dataset)
    if opts.subset is not None:
        if not 1 <= opts.subset <= len(dataset):
            raise UserError(f"--subset must be between 1 and {len(dataset)}")
        args.training_set_kwargs.max_size = opts.subset
        args.training_set_kwargs.random_seed = opts.seed
    if opts.mirror:
        args.training_set_kwargs.xflip = True
    desc = dataset.name + ("-cond" if opts.cond else "") + (f"-subset{opts.subset}" if opts.subset else "") + \
        ("-mirror" if opts.mirror else "")

    args.data_loader_kwargs = dnnlib.EasyDict(pin_memory=True, num_workers=opts.workers, prefetch_factor=2)
    args.random_seed = opts.seed
    stage = _stage_settings(opts, given)
    metrics = stage.get("metrics", opts.metrics)
    args.metrics = [] if metrics in (None, "", "none") else [m.strip() for m in metrics.split(",")]
    args.anchor_to_start = mode == "adapt"
    args.resume_G_from = "G_ema" if mode in recipe.STAGES else "G"

    # Networks and hyper-parameters.
    fp32 = opts.fp32
    if fp32 is None:
        fp32 = resolve_device(opts.device, num_devices=gpus).type != "cuda"
    if resume is not None:
        try:
            check_dataset_matches_network(dataset, resume["G"])
        except ValueError as err:
            raise UserError(str(err)) from None
        # Every architecture kwarg of the resume pkl is kept (conv_clamp changes the function, so it stays
        # even with --fp32). On a CPU our networks compute in float32 whatever num_fp16_res says; only an
        # explicit --fp32=1 turns the pkl's fp16 blocks off for a GPU run.
        args.G_kwargs = dnnlib.EasyDict(class_name=GENERATOR_CLASS, **_network_init_kwargs(resume["G"], "G", opts.resume))
        args.D_kwargs = dnnlib.EasyDict(class_name=DISCRIMINATOR_CLASS, **_network_init_kwargs(resume["D"], "D", opts.resume))
        if opts.fp32:
            args.G_kwargs.setdefault("synthesis_kwargs", {})["num_fp16_res"] = 0
            args.D_kwargs["num_fp16_res"] = 0
        for option in ("cbase", "cmax", "map", "zdim", "wdim"):
            if opts.get(option) is not None:
                raise UserError(f"--{option} cannot change the architecture of the --resume network; drop it")
    if mode == "train":
        spec = _cfg_spec(opts.cfg, gpus, dataset.resolution)
        batch, batch_gpu_default, kimg, gamma = spec.mb, spec.mb // spec.ref_gpus, spec.kimg, spec.gamma
        lr_G = lr_D = spec.lrate
        ema_kimg, ema_rampup = spec.ema, spec.ramp
        tick, snap = 4, 50
        style_mixing, pl_weight = (0, 0) if opts.cfg == "cifar" else (0.9, 2)
        if resume is None:
            args.G_kwargs = dnnlib.EasyDict(
                class_name=GENERATOR_CLASS, z_dim=opts.zdim or 512, w_dim=opts.wdim or 512,
                mapping_kwargs=dnnlib.EasyDict(num_layers=opts.map if opts.map is not None else spec.map),
                synthesis_kwargs=dnnlib.EasyDict(channel_base=opts.cbase or int(spec.fmaps * 32768),
                                                 channel_max=opts.cmax or 512, num_fp16_res=4, conv_clamp=256))
            args.D_kwargs = dnnlib.EasyDict(
                class_name=DISCRIMINATOR_CLASS, block_kwargs=dnnlib.EasyDict(), mapping_kwargs=dnnlib.EasyDict(),
                epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=opts.mbstd_group or spec.mbstd),
                channel_base=opts.cbase or int(spec.fmaps * 32768), channel_max=opts.cmax or 512,
                num_fp16_res=4, conv_clamp=256)
            if opts.cfg == "cifar":
                args.D_kwargs.architecture = "orig"
            if fp32:
                _set_fp32(args.G_kwargs, generator=True)
                _set_fp32(args.D_kwargs, generator=False)
        desc += f"-{opts.cfg}" + (str(gpus) if opts.cfg == "auto" else "")
    else:
        batch, batch_gpu_default, kimg, gamma = stage["batch"], None, stage["kimg"], stage["gamma"]
        lr_G, lr_D = stage["glr"], stage["dlr"]
        ema_kimg, ema_rampup = None, None
        tick, snap = stage["tick"], stage["snap"]
        style_mixing, pl_weight = stage["style_mixing"], stage["pl_weight"]
    if opts.freezed:
        args.D_kwargs.setdefault("block_kwargs", {})["freeze_layers"] = opts.freezed
        desc += f"-freezed{opts.freezed}"

    if opts.batch is not None:
        batch = opts.batch
        batch_gpu_default = None
    if batch < 1 or batch % gpus != 0:
        raise UserError(f"--batch={batch} must be a positive multiple of --gpus={gpus}")
    args.batch_size = batch
    num_images = args.training_set_kwargs.max_size * (2 if opts.mirror else 1)
    if batch > num_images:
        _warn(f"--batch={batch} is larger than the dataset ({num_images} images in '{opts.data}'): every batch "
              "repeats images; pass a smaller --batch or add images")
    args.batch_gpu = opts.batch_gpu or batch_gpu_default or batch // gpus
    if args.batch_size % (args.batch_gpu * gpus) != 0:
        raise UserError(f"--batch={batch} must be a multiple of --batch-gpu x --gpus = {args.batch_gpu} x {gpus}")
    if stage:
        ema_kimg = stage["ema_kimg"]  # the official per-step decay at this run's batch
    if opts.get("ema_kimg") is not None:
        ema_kimg = opts.ema_kimg
    if opts.get("pl_weight") is not None:
        pl_weight = opts.pl_weight
    if opts.get("style_mixing") is not None:
        style_mixing = opts.style_mixing
    args.ema_kimg, args.ema_rampup = ema_kimg, (None if resume is not None else ema_rampup)
    args.G_reg_interval, args.D_reg_interval = \
        (stage["G_reg_interval"], stage["D_reg_interval"]) if stage else REFERENCE_REG_INTERVALS
    glr = opts.glr if opts.glr is not None else lr_G
    dlr = opts.dlr if opts.dlr is not None else lr_D
    args.G_opt_kwargs = dnnlib.EasyDict(class_name="torch.optim.Adam", lr=glr, betas=[0.0, 0.99], eps=1e-8)
    args.D_opt_kwargs = dnnlib.EasyDict(class_name="torch.optim.Adam", lr=dlr, betas=[0.0, 0.99], eps=1e-8)
    if opts.gamma is not None:
        gamma = opts.gamma
        desc += f"-gamma{gamma:g}"
    args.total_kimg = opts.kimg if opts.kimg is not None else kimg
    if opts.kimg is not None:
        desc += f"-kimg{opts.kimg:g}"
    if opts.batch is not None:
        desc += f"-batch{opts.batch}"
    args.kimg_per_tick = opts.tick if opts.tick is not None else tick
    args.image_snapshot_ticks = args.network_snapshot_ticks = opts.snap if opts.snap is not None else snap
    if args.total_kimg <= 0 or args.kimg_per_tick <= 0 or args.network_snapshot_ticks < 1:
        raise UserError("--kimg and --tick must be positive and --snap at least 1")

    # Loss.
    args.loss_kwargs = dnnlib.EasyDict(class_name="training_hooks.StyleGAN2Loss", r1_gamma=gamma,
                                       style_mixing_prob=style_mixing, pl_weight=pl_weight)
    if mode == "adapt":
        args.loss_kwargs.update(class_name="training_hooks.EWCLoss", ewc_lambda=opts.ewc_lambda,
                                fisher_samples=opts.fisher_samples, params=params)
        desc += "-ewc" + f"{opts.ewc_lambda:g}".replace("+", "")
    elif mode == "unlearn":
        args.loss_kwargs.update(class_name="training_hooks.RepulsionLoss",
                                adapted=[os.path.abspath(p) for p in opts.adapted], repulsion=opts.repulsion,
                                distance=opts.distance, params=params)
        if opts.repulsion_weight is not None:
            args.loss_kwargs.repulsion_weight = opts.repulsion_weight
        if opts.alpha is not None:
            args.loss_kwargs.alpha = opts.alpha
        if opts.negatives:
            args.loss_kwargs.negatives = [os.path.abspath(p) for p in opts.negatives]
            desc += "-negfake"
        if opts.negative_weight is not None:
            args.loss_kwargs.negative_weight = opts.negative_weight
        desc += f"-{opts.repulsion}-k{len(opts.adapted)}"

    # Augmentation.
    args.augment_kwargs = None
    args.augment_p = 0
    args.ada_target = None
    aug = stage.get("aug", opts.aug)
    if aug != "noaug":
        names = [n.strip() for n in opts.augpipe.split(",") if n.strip()]
        unknown = [n for n in names if n not in AUGPIPE_CHOICES]
        if unknown or not names:
            raise UserError(f"--augpipe takes a comma list of {', '.join(AUGPIPE_CHOICES)}; got '{opts.augpipe}'")
        args.augment_kwargs = dnnlib.EasyDict(class_name=AUGMENT_CLASS, **{n: 0 for n in AUGPIPE_CHOICES})
        args.augment_kwargs.update({n: 1 for n in names})
        desc += f"-{aug}"
        if aug == "fixed":
            if opts.p is None:
                raise UserError("--aug=fixed needs --p (the augmentation probability)")
            args.augment_p = opts.p
        else:
            args.ada_target = opts.target if opts.target is not None else 0.6
            args.ada_kimg = 100 if resume is not None else 500
    elif opts.p is not None or opts.target is not None:
        raise UserError("--p and --target need --aug=fixed or --aug=ada")

    if resume is not None:
        args.resume_pkl = os.path.abspath(opts.resume)
        desc += "-resumecustom" if mode == "train" else ""
    if opts.desc:
        desc += f"-{opts.desc}"
    return f"{mode}-{desc}", args


def _extrapolated_pkl(args: dnnlib.EasyDict) -> bytes:
    """The extrapolated network pkl's bytes (computed and checked before anything is written)."""
    pretrained = load_networks(args.resume_pkl, NETWORK_KEYS, option="--resume")
    adapted = [load_networks(p, NETWORK_KEYS, option="--adapted") for p in args.adapted]
    result = extrapolate(pretrained, adapted, args.extrapolate_gamma, params=args.params)
    return network_pkl_bytes(result, "the extrapolated network")


def _write_extrapolated(payload: bytes, args: dnnlib.EasyDict, run_dir: str) -> str:
    path = os.path.join(run_dir, f"extrapolated-gamma{args.extrapolate_gamma:g}.pkl")
    atomic_write_bytes(path, payload)
    return path


def _print_recipe(opts: dnnlib.EasyDict, given: Optional[Collection[str]]) -> None:
    for line in recipe_report(opts, given):
        print(line)


def _print_dry_run(run_dir: str, args: dnnlib.EasyDict) -> None:
    print("Training options:")
    print(json.dumps(_plain(args), indent=2))
    print()
    print(f"Output directory:   {run_dir}")
    if "training_set_kwargs" in args:
        print(f"Training data:      {args.training_set_kwargs.path}")
        print(f"Training duration:  {args.total_kimg:g} kimg")
        print(f"Number of images:   {args.training_set_kwargs.max_size}")
        print(f"Image resolution:   {args.training_set_kwargs.resolution}")
        print(f"Conditional model:  {args.training_set_kwargs.use_labels}")
        print(f"Dataset x-flips:    {args.training_set_kwargs.xflip}")
    print()


def run_training(opts: dnnlib.EasyDict, given: Optional[Collection[str]] = None) -> str:
    """Validate options, create the run directory and train; returns the run directory.

    `opts` holds every option of `DEFAULTS` (see `training_options`); `given` names those the user set.
    Raises UserError / ValueError / OSError before anything is written, and the loop's errors
    (`LaunchError`, `NonFiniteError`) after.
    """
    env = torchrun_environment()
    rank = env["rank"] if env else 0
    if env is not None:
        if opts.gpus not in (1, env["world_size"]):
            raise UserError(f"torchrun started {env['world_size']} processes but --gpus={opts.gpus}; "
                            "leave --gpus out under torchrun")
        opts.gpus = env["world_size"]
    desc, args = build_training_options(opts, given)
    device_type = choose_device_type(opts.device, opts.gpus) if args.get("mode") != "extrapolate" else "cpu"
    check_writable_dir(opts.outdir, "--outdir")
    extrapolated = _extrapolated_pkl(args) if args.get("mode") == "extrapolate" and not opts.dry_run else None

    if not os.path.isdir(opts.outdir):
        if opts.dry_run:
            run_dir = os.path.join(opts.outdir, f"00000-{desc}")
        else:
            os.makedirs(opts.outdir, exist_ok=True)
    if os.path.isdir(opts.outdir):
        run_dir = _next_run_dir(opts.outdir, desc)
    if env is not None and env["world_size"] > 1:
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(env["local_rank"])
        torch.distributed.init_process_group(backend=backend, init_method="env://")
        shared = [run_dir]
        torch.distributed.broadcast_object_list(shared, src=0)
        run_dir = shared[0]

    if opts.dry_run:
        if rank == 0:
            _print_recipe(opts, given)
            _print_dry_run(run_dir, args)
            print("Dry run; exiting.")
        return run_dir

    if rank == 0:
        _print_recipe(opts, given)
        _print_dry_run(run_dir, args)
        print("Creating output directory...")
        os.makedirs(run_dir, exist_ok=False)
        atomic_write_text(os.path.join(run_dir, "training_options.json"),
                          json.dumps(dict(_plain(args), mode=opts.mode, num_gpus=opts.gpus), indent=2))
    if env is not None and env["world_size"] > 1:
        torch.distributed.barrier()

    if extrapolated is not None:
        path = _write_extrapolated(extrapolated, args, run_dir)
        print(f"Wrote {path}")
        return run_dir

    args.run_dir = run_dir
    if opts.mode == "adapt":
        args.loss_kwargs.fisher_cache = os.path.join(run_dir, "fisher.pt")
    if rank == 0:
        print("Launching processes...")
    launch_training(dict(args), num_gpus=opts.gpus, device_type=device_type)
    return run_dir


def training_options(**options: Any) -> dnnlib.EasyDict:
    """Every option of `DEFAULTS`, with `options` (named as the command's: `mode`, `data`, `resume`, ...) set;
    an option given as None keeps its default."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UserError(f"unknown training option(s) {', '.join(unknown)}; see `stylegan-unlearn train --help`")
    opts = dnnlib.EasyDict(DEFAULTS, **{name: value for name, value in options.items() if value is not None})
    opts.adapted = [str(path) for path in (opts.adapted or ())]
    negatives = opts.negatives or ()
    opts.negatives = [str(negatives)] if isinstance(negatives, (str, os.PathLike)) else [str(p) for p in negatives]
    return opts


def train(**options: Any) -> str:
    """Run one training (`mode='train' | 'adapt' | 'unlearn' | 'extrapolate'`) from options; returns the run dir.

    Options are named as the command's (`outdir`, `data`, `resume`, `adapted=[...]`, `kimg`, `batch`, ...);
    an option passed with a value other than None counts as given, so it wins over the official recipe, as
    on the command line. The run happens in this process (`gpus` > 1 spawns more). Get the result with
    `trained_network(run_dir)`.
    """
    opts = training_options(**options)
    return run_training(opts, given={name for name, value in options.items() if value is not None})


def trained_network(run_dir: str) -> str:
    """The network a finished run produced: its last snapshot, or the extrapolated pkl (FileNotFoundError if none)."""
    final = os.path.join(run_dir, "final.json")
    if os.path.isfile(final):
        with open(final, encoding="utf-8") as f:
            snapshot = json.load(f).get("last_snapshot")
        if snapshot:
            return snapshot
    extrapolated = sorted(name for name in os.listdir(run_dir)
                          if name.startswith("extrapolated-") and name.endswith(".pkl"))
    if extrapolated:
        return os.path.join(run_dir, extrapolated[-1])
    raise FileNotFoundError(f"run directory {run_dir} holds no finished network (no final.json snapshot, "
                            "no extrapolated pkl)")
