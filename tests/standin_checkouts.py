"""Stand-in reference checkouts for the patcher tests.

The `train.py` files are written here from the documented anchors (`shared/docs/train-py-anchors.md`)
and the documented options, defaults and behaviour (`shared/docs/reference-interfaces.md` §5.1, §6:
dry run prints 'Training options:' and the options JSON; a real run makes `<outdir>/<id:05d>-<desc>`
with `training_options.json`); they are not reference code. The stand-ins stop where the reference
would launch its training loop.

`write_reference_environment` adds what a checkout brings besides `train.py`: its own `torch_utils`
and `dnnlib` packages (here: copies of this project's, placed in the checkout so that they come first
on `sys.path`, as a reference checkout's do) and a `training/networks.py` whose classes are not ours
(the project's network code under the reference module name, so pkls written with it carry a
reference-family source).
"""
import shutil
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

ADA_TRAIN_PY = textwrap.dedent("""\
    '''Stand-in for a stylegan2-ada-pytorch train.py: same anchors, documented options and behaviour.'''
    import json
    import os
    import re

    import click

    import dnnlib

    opt = click.option
    # --cfg: (ref_gpus, kimg, batch, lrate, gamma, ema_kimg, ema_rampup); 'auto' is computed, here for 256x256 data.
    PRESETS = {'stylegan2': (8, 25000, 32, 0.002, 10, 10, None), 'paper256': (8, 25000, 64, 0.0025, 1, 20, None),
               'cifar': (2, 100000, 64, 0.0025, 0.01, 500, 0.05)}
    BGC = 'xflip rotate90 xint scale rotate aniso xfrac brightness contrast lumaflip hue saturation'.split()


    class UserError(Exception):
        pass


    def preset(cfg, gpus, res=256):
        if cfg != 'auto':
            return dnnlib.EasyDict(zip(('ref_gpus', 'kimg', 'mb', 'lrate', 'gamma', 'ema', 'ramp'), PRESETS[cfg]))
        mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
        return dnnlib.EasyDict(ref_gpus=gpus, kimg=25000, mb=mb, lrate=0.0025, gamma=0.0002 * res ** 2 / mb,
                               ema=mb * 10 / 32, ramp=0.05)


    def adam(rate):
        return dnnlib.EasyDict(class_name='torch.optim.Adam', lr=rate, betas=[0, 0.99], eps=1e-8)


    def check(ok, message):
        if not ok:
            raise UserError(message)


    def setup_training_loop_kwargs(gpus=None, snap=None, metrics=None, seed=None, data=None, cfg=None, gamma=None,
                                   kimg=None, batch=None, aug=None, p=None, target=None, resume=None, workers=None):
        n = gpus or 1
        check(data is not None and os.path.exists(data), 'stand-in: --data is not an existing dataset')
        every = 50 if snap is None else snap
        spec = preset(cfg or 'auto', n)
        args = dnnlib.EasyDict(num_gpus=n, random_seed=seed or 0, image_snapshot_ticks=every,
                               network_snapshot_ticks=every)
        args.metrics = [m for m in (metrics or 'fid50k_full').split(',') if m != 'none']
        args.training_set_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=data)
        args.G_opt_kwargs, args.D_opt_kwargs = adam(spec.lrate), adam(spec.lrate)
        args.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=spec.gamma)
        if cfg == 'cifar':
            args.loss_kwargs.update(pl_weight=0, style_mixing_prob=0)
        args.update(total_kimg=spec.kimg if kimg is None else kimg, ema_kimg=spec.ema, ema_rampup=spec.ramp)
        args.batch_size, args.batch_gpu = (spec.mb, spec.mb // spec.ref_gpus) if batch is None else (batch, batch // n)
        check(args.batch_size % n == 0, 'stand-in: --batch is no multiple of --gpus')
        if gamma is not None:
            args.loss_kwargs.r1_gamma = gamma
        mode = aug or 'ada'
        check(p is None or mode == 'fixed', 'stand-in: --p needs --aug=fixed')
        check(target is None or mode == 'ada', 'stand-in: --target needs --aug=ada')
        check(mode != 'fixed' or p is not None, 'stand-in: --aug=fixed needs --p')
        if mode != 'noaug':
            args.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', **dict.fromkeys(BGC, 1))
            args.update(ada_target=0.6 if target is None else target) if mode == 'ada' else args.update(augment_p=p)
        if resume is not None:
            args.update(resume_pkl=resume, ada_kimg=100, ema_rampup=None)
        if workers is not None:
            args.data_loader_kwargs = dnnlib.EasyDict(num_workers=workers)
        cfg = cfg or 'auto'
        parts = [os.path.splitext(os.path.basename(data))[0], cfg + (str(n) if cfg == 'auto' else '')]
        parts += [f'{tag}{value:g}' for tag, value in dict(gamma=gamma, kimg=kimg, batch=batch).items()
                  if value is not None]
        parts += ([aug] if aug else []) + (['resumecustom'] if resume is not None else [])
        return '-'.join(parts), args


    def next_run_dir(outdir, desc):
        names = os.listdir(outdir) if os.path.isdir(outdir) else []
        numbers = [int(m.group()) for m in map(re.compile(r'[0-9]+').match, names) if m]
        return os.path.join(outdir, '%05d-%s' % (max(numbers, default=-1) + 1, desc))


    @click.command()
    @click.pass_context
    @opt('--outdir', required=True, help='stand-in')
    @opt('--gpus', type=int, help='stand-in (1)')
    @opt('--snap', type=int, help='stand-in (50)')
    @opt('--metrics', help='stand-in (fid50k_full)')
    @opt('--seed', type=int, help='stand-in (0)')
    @opt('-n', '--dry-run', is_flag=True, help='stand-in')
    @opt('--data', help='stand-in')
    @opt('--cfg', type=click.Choice(['auto', *PRESETS]), help='stand-in (auto)')
    @opt('--gamma', type=float, help='stand-in (preset)')
    @opt('--kimg', type=int, help='stand-in (preset)')
    @opt('--batch', type=int, help='stand-in (preset)')
    @opt('--aug', type=click.Choice(['noaug', 'ada', 'fixed']), help='stand-in (ada)')
    @opt('--p', type=float, help='stand-in')
    @opt('--target', type=float, help='stand-in (0.6)')
    @opt('--resume', help='stand-in')
    @click.option('--workers', help='Override number of DataLoader workers', type=int, metavar='INT')

    def main(ctx, outdir, dry_run, **config_kwargs):
        try:
            run_desc, args = setup_training_loop_kwargs(**config_kwargs)
        except UserError as err:
            ctx.fail(err)
        args.run_dir = next_run_dir(outdir, run_desc)
        text = json.dumps(args, indent=2)
        print('Training options:', text, sep='\\n')
        if not dry_run:
            os.makedirs(args.run_dir)
            with open(os.path.join(args.run_dir, 'training_options.json'), 'w') as f:
                f.write(text)
            print('stand-in: the training loop would start here')


    if __name__ == '__main__':
        main()
""")

SG3_TRAIN_PY = textwrap.dedent("""\
    '''Stand-in for a stylegan3 train.py: same anchors, documented options and behaviour.'''
    import json
    import os
    import re

    import click

    import dnnlib

    opt = click.option
    BGC = 'xflip rotate90 xint scale rotate aniso xfrac brightness contrast lumaflip hue saturation'.split()
    Count = click.IntRange(min=1)


    def launch_training(c, desc, outdir, dry_run):
        names = os.listdir(outdir) if os.path.isdir(outdir) else []
        numbers = [int(m.group()) for m in map(re.compile(r'[0-9]+').match, names) if m]
        c.run_dir = os.path.join(outdir, '%05d-%s' % (max(numbers, default=-1) + 1, desc))
        text = json.dumps(c, indent=2)
        print('Training options:', text, sep='\\n')
        if not dry_run:
            os.makedirs(c.run_dir)
            with open(os.path.join(c.run_dir, 'training_options.json'), 'w') as f:
                f.write(text)
            print('stand-in: the training loop would start here')


    def adam(rate):
        return dnnlib.EasyDict(class_name='torch.optim.Adam', lr=rate, betas=[0, 0.99], eps=1e-8)


    @click.command()
    @opt('--outdir', required=True, help='stand-in')
    @opt('--cfg', type=click.Choice(['stylegan3-t', 'stylegan3-r', 'stylegan2']), required=True, help='stand-in')
    @opt('--data', required=True, help='stand-in')
    @opt('--gpus', type=Count, required=True, help='stand-in')
    @opt('--batch', type=Count, required=True, help='stand-in')
    @opt('--gamma', type=click.FloatRange(min=0), required=True, help='stand-in')
    @opt('--aug', type=click.Choice(['noaug', 'ada', 'fixed']), default='ada', help='stand-in')
    @opt('--resume', help='stand-in')
    @opt('--p', type=float, default=0.2, help='stand-in')
    @opt('--target', type=float, default=0.6, help='stand-in')
    @opt('--batch-gpu', type=Count, help='stand-in')
    @opt('--glr', type=float, help='stand-in (0.002 stylegan2, else 0.0025)')
    @opt('--dlr', type=float, default=0.002, help='stand-in')
    @opt('--metrics', default='fid50k_full', help='stand-in')
    @opt('--kimg', type=Count, default=25000, help='stand-in')
    @opt('--tick', type=Count, default=4, help='stand-in')
    @opt('--snap', type=Count, default=50, help='stand-in')
    @opt('--seed', type=click.IntRange(min=0), default=0, help='stand-in')
    @click.option('-n','--dry-run', help='Print training options and exit',                         is_flag=True)

    def main(**kwargs):
        opts = dnnlib.EasyDict(kwargs)
        glr = opts.glr if opts.glr is not None else {'stylegan2': 0.002}.get(opts.cfg, 0.0025)
        c = dnnlib.EasyDict(num_gpus=opts.gpus, batch_size=opts.batch, batch_gpu=opts.batch_gpu or opts.batch // opts.gpus,
                            random_seed=opts.seed, G_opt_kwargs=adam(glr), D_opt_kwargs=adam(opts.dlr))
        c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss')
        c.loss_kwargs.update(r1_gamma=opts.gamma)
        c.update(ema_kimg=opts.batch * 10 / 32, total_kimg=opts.kimg, kimg_per_tick=opts.tick,
                 image_snapshot_ticks=opts.snap, network_snapshot_ticks=opts.snap)
        c.metrics = [m for m in opts.metrics.split(',') if m != 'none']
        if opts.cfg == 'stylegan2':
            c.loss_kwargs.update(style_mixing_prob=0.9, pl_weight=2, pl_no_weight_grad=True)
            c.G_reg_interval = 4
        if opts.aug != 'noaug':
            c.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', **dict.fromkeys(BGC, 1))
            c.update(ada_target=opts.target) if opts.aug == 'ada' else c.update(augment_p=opts.p)
        if opts.resume is not None:
            c.update(resume_pkl=opts.resume, ada_kimg=100, ema_rampup=None)
        desc = '-'.join([opts.cfg, os.path.basename(opts.data), f'gpus{opts.gpus}', f'batch{opts.batch}',
                         f'gamma{opts.gamma:g}'])
        launch_training(c=c, desc=desc, outdir=opts.outdir, dry_run=opts.dry_run)


    if __name__ == '__main__':
        main()
""")

TRAIN_PY = {"ada": ADA_TRAIN_PY, "sg3": SG3_TRAIN_PY}

NETWORKS_HEADER = ("# Stand-in for a reference training/networks.py (tests only): the project's network code under the\n"
                   "# reference module name, so its classes are not ours and its pkls carry a reference-family source.\n")


def write_reference_environment(root: Path) -> None:
    """Give the checkout at `root` its own `torch_utils`, `dnnlib` and `training/networks.py` (see module doc)."""
    for package in ("torch_utils", "dnnlib"):
        shutil.copytree(REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    training = root / "training"
    training.mkdir()
    (training / "__init__.py").write_text("")
    source = (REPO_ROOT / "stylegan_unlearn" / "networks" / "stylegan2.py").read_text()
    (training / "networks.py").write_text(NETWORKS_HEADER + source)
